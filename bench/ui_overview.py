"""Server time of the dashboard's overview page with 20 endpoints and 7 days of 15-minute
monitor windows each (672 stored windows an endpoint, each with drift for 20 features,
quality, performance and alerts), a registry holding the 20 deployments (4 in a canary), and
server errors logged in every endpoint's newest window.

Timed: one ``GET /ui/`` through the dashboard app (``shipyard ui``'s, in process over httpx's
ASGI transport, so routing and the worker thread are in it; no socket), from the request to
the whole body. ``cold``: the first request (every history tail parsed, every error segment
read); ``warm``: the median of the next requests (files unchanged: the per-file caches hold).
Prints the figures; the issue's budget is 200 ms.

    .venv/bin/python bench/ui_overview.py [--endpoints 20] [--days 7] [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

FEATURES = 20
EVERY = 900.0


def record(endpoint: str, end: float, i: int) -> dict[str, Any]:
    """A stored window shaped like the monitor's (``service/monitor.py``)."""
    drift = 0.1 + 0.3 * ((i // 96) % 2)
    columns = {f"f{j:02d}": {"method": "ks", "statistic": 0.05 + 0.01 * j,
                             "p_value": 0.5 / (1 + j), "p_adjusted": 0.6 / (1 + j),
                             "effect_size": 0.02 * j * drift, "effect_name": "wasserstein_norm",
                             "threshold": 0.1, "drifted": j * drift > 4, "name": f"f{j:02d}",
                             "kind": "numeric"} for j in range(FEATURES)}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
    metrics = {"rows": 4000, "requests": 400, "labelled": 1200, "p50_latency_ms": 2.5,
               "p99_latency_ms": 11.0 + i % 7, "drift_share": drift, "accuracy": 0.91,
               "estimated_accuracy": 0.9, "quality_issues": 1, "outlier_share": 0.01}
    return {
        "format": 1, "key": f"time:{end - EVERY}/{end}", "endpoint": endpoint,
        "window": {"kind": "time", "start": stamp, "end": stamp, "start_ts": end - EVERY,
                   "end_ts": end, "complete": True, "every": EVERY},
        "computed_at": stamp, "rows": 4000, "requests": 400, "labelled": 1200,
        "models": {f"{endpoint} v1": 3600, f"{endpoint} v2": 400},
        "latency": {"p50_ms": 2.5, "p99_ms": 11.0, "mean_ms": 3.1}, "metrics": metrics,
        "drift": {"dataset_drift": drift > 0.3, "drift_share": drift, "columns": columns},
        "output_drift": {"columns": {"prediction": {**columns["f01"], "name": "prediction"}}},
        "quality": {"flagged": 1, "findings": [
            {"column": f"f{j:02d}", "check": "missing", "value": 0.001 * j, "flagged": False}
            for j in range(FEATURES)]},
        "performance": {"realised": {"rows": 1200, "accuracy": 0.91, "f1": 0.9},
                        "estimated": {"rows": 4000, "accuracy": 0.9, "f1": 0.89},
                        "by_version": {"v1": {"accuracy": 0.91}, "v2": {"accuracy": 0.92}}},
        "seconds": 0.2, "alerts": []}


def build(root: Path, endpoints: int, days: int) -> tuple[Path, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import shipyard
    from shipyard.registry import Registry
    from shipyard.routing.plans import CanaryPlan
    from shipyard.settings import Settings
    from shipyard.stores.error_records import ErrorRecord
    from shipyard.stores.predictions import PredictionLog

    settings = Settings.from_env({"SHIPYARD_HOME": str(root / "home")})
    logs = root / "logs"
    newest = (time.time() // EVERY) * EVERY
    windows = int(days * 86400 / EVERY)
    x = np.random.default_rng(0).normal(size=(200, 4))
    y = (x[:, 0] > 0).astype(int)
    registry = Registry(settings=settings, auto_upgrade=True)
    for _ in (1, 2):  # versions 1 and 2
        registry.register(shipyard.package(LogisticRegression().fit(x, y), x, name="m"))
    log = PredictionLog(logs, flush_interval=3600)
    for e in range(endpoints):
        name = f"endpoint-{e:02d}"
        folder = logs / "monitor" / f"endpoint={name}"
        folder.mkdir(parents=True)
        with (folder / "history.jsonl").open("w") as out:
            for i in range(windows):
                out.write(json.dumps(record(name, newest - (windows - 1 - i) * EVERY, i),
                                     separators=(",", ":")) + "\n")
        state = {"format": 1, "evaluator": {"rules": {"drift_share > 0.3": {
            "firing": e % 3 == 0}, "accuracy < 0.8": {"firing": False}}}, "events": []}
        (folder / "alerts.json").write_text(json.dumps(state))
        registry.rollouts.deploy(name, "m/1", reason="bench")
        if e % 5 == 0:
            registry.rollouts.start_canary(name, "m/2", CanaryPlan(steps=(10.0, 100.0)),
                                           reason="bench")
        for k in range(5):
            log.append(ErrorRecord(newest - 60 - k, name, "m", 1, "stable", 1, f"r{e}-{k}",
                                   503, 4.0, None))
    log.flush()
    registry.close()
    return logs, settings


async def measure(app: Any, repeat: int) -> list[float]:
    import httpx

    times = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for _ in range(repeat + 1):
            started = time.perf_counter()
            answer = await client.get("/ui/")
            times.append(time.perf_counter() - started)
            assert answer.status_code == 200 and answer.text.count("data-endpoint=") > 0
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    from shipyard.server.dashboard import dashboard_app

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        logs, settings = build(Path(tmp), args.endpoints, args.days)
        size = sum(p.stat().st_size for p in logs.rglob("history.jsonl"))
        print(f"built {args.endpoints} endpoints x {int(args.days * 96)} windows "
              f"({size / 2**20:.0f} MiB of history) in {time.perf_counter() - started:.1f} s")
        times = asyncio.run(measure(dashboard_app(logs, settings), args.repeat))
    cold, warm = times[0], times[1:]
    print(f"overview HTML, server time: cold {cold * 1000:.1f} ms, warm median "
          f"{statistics.median(warm) * 1000:.1f} ms (p90 "
          f"{sorted(warm)[int(0.9 * (len(warm) - 1))] * 1000:.1f} ms, {len(warm)} requests); "
          f"budget 200 ms")


if __name__ == "__main__":
    main()
