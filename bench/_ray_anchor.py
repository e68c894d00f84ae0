"""The anchor of bench/ray_serve.py: the bench model as a Ray Serve user writes it today, a
hand-written deployment with ``@serve.batch`` on the joblib file, on a local Ray started here.

    python bench/_ray_anchor.py --model model.joblib --port 8000 --replicas 1

Answers ``POST /`` with ``{"instances": [[...]]}`` as ``{"predictions": [label]}``; runs until
SIGTERM / SIGINT. Same Ray Serve options as ``shipyard serve --engine ray``: the replicas, 256
ongoing requests per replica, 1 CPU each, access log off.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

import joblib
import numpy as np
import ray
from ray import serve
from starlette.requests import Request

MAX_BATCH_SIZE = 32  # the same adaptive-batching limits as shipyard's defaults
MAX_BATCH_S = 0.002


@serve.deployment
class Model:
    def __init__(self, path: str) -> None:
        self.model = joblib.load(path)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=MAX_BATCH_S)
    async def predict(self, rows: list[list[float]]) -> list[int]:
        return [int(v) for v in self.model.predict(np.asarray(rows, dtype=np.float64))]

    async def __call__(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"predictions": [await self.predict(body["instances"][0])]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: stop.set())
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(Model.options(num_replicas=args.replicas, max_ongoing_requests=256,
                                ray_actor_options={"num_cpus": 1},
                                logging_config={"enable_access_log": False,
                                                "log_level": "WARNING"}
                                ).bind(args.model), name="anchor", route_prefix="/")
        print(f"anchor ready on http://127.0.0.1:{args.port}/", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
