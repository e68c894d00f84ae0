"""The event loop's own CPU per request on the simple-JSON predict route, without HTTP.

    .venv/bin/python bench/hotpath.py                  # 7 repetitions of 20000 requests
    .venv/bin/python bench/hotpath.py --requests 50000 --clients 64
    PYTHONPATH=OTHER/src .venv/bin/python bench/hotpath.py   # another checkout, to compare

The bench model of ``serving.py`` (trained here, packaged by shipyard) is served by
``create_app`` with the default config, so its real inference process answers. ``--clients``
coroutines call the ASGI app in a loop with an in-memory ``receive`` (the single-row body
``serving.py`` sends) and ``send``, and the script reports the CPU time of the event-loop
thread per request (``time.thread_time``): everything the server process does for a request
except uvicorn's HTTP parsing and socket writes, which are the same for every ASGI app (the
hello-world row of ``serving.py`` measures those). CPU time rather than wall time, so the
figure does not depend on how fast the inference process answers; the median and the
minimum of the repetitions are printed (the minimum is the least disturbed by a busy box).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


async def measure(package: Path, body: bytes, requests: int, clients: int, reps: int,
                  home: Path) -> list[float]:
    from shipyard.server.app import create_app
    from shipyard.service.config import ServeConfig
    from shipyard.service.dataplane import DataPlane

    config = ServeConfig.from_dict({"endpoints": [{"name": "bench", "model": str(package)}],
                                    "log_dir": str(home / "logs")})
    plane = DataPlane(config)
    app = create_app(plane)
    await plane.start()
    deadline = time.monotonic() + 120
    while any(e.current is None for e in plane.endpoints.values()):
        if time.monotonic() > deadline:
            raise SystemExit("the model did not load within 120 s")
        await asyncio.sleep(0.05)
    scope = {"type": "http", "method": "POST", "path": "/v1/endpoints/bench/predict",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    message = {"type": "http.request", "body": body, "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "http.response.start":
            statuses.append(event["status"])

    left = [0]

    async def client() -> None:
        while left[0] > 0:
            left[0] -= 1
            await app(dict(scope), receive, send)

    cpu_us: list[float] = []
    try:
        for rep in range(reps + 1):  # the first one warms up
            left[0] = requests
            statuses.clear()
            cpu = time.thread_time()
            await asyncio.gather(*(client() for _ in range(clients)))
            cpu = time.thread_time() - cpu
            if set(statuses) != {200}:
                raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")
            if rep:
                cpu_us.append(cpu / len(statuses) * 1e6)
    finally:
        await plane.close()
    return cpu_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="per repetition")
    parser.add_argument("--clients", type=int, default=64, help="concurrent callers")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions")
    args = parser.parse_args(argv)

    import uvloop

    import shipyard
    from serving import Bench

    with tempfile.TemporaryDirectory(prefix="shipyard-hotpath-") as tmp:
        root = Path(tmp)
        os.environ["SHIPYARD_HOME"] = str(root / "home")
        bench = Bench(root, 1, {})
        print("training the serving.py model ...", flush=True)
        bench.train()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bench.package_shipyard()
        cpu_us = uvloop.run(measure(bench.shipyard_dir, bench.instances_body(), args.requests,
                                    args.clients, args.reps, root))
    print(f"shipyard {shipyard.__version__} from {Path(shipyard.__file__).parent}")
    print(f"event-loop CPU per request ({args.clients} clients, {args.requests} requests x "
          f"{args.reps}): median {statistics.median(cpu_us):.1f} us, "
          f"min {min(cpu_us):.1f} us  (all: {', '.join(f'{c:.1f}' for c in cpu_us)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
