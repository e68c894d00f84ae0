"""The server runs a configured monitor on its schedule, in a thread beside the event loop,
and stops it on shutdown."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.conftest import Packages
from server.helpers import endpoint
from shipyard.service.config import MonitorConfig


def _history(log_dir: Path, name: str) -> list[dict[str, Any]]:
    path = log_dir / "monitor" / f"endpoint={name}" / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_scheduled_monitor_flags_drifted_traffic_and_stops_with_the_server(
        serve: Callable[..., Any], packages: Packages) -> None:
    monitor = MonitorConfig(every=0.2, last=60, min_rows=30)
    shifted = packages.iris_x.sample(60, random_state=0) * 1.6
    with serve(endpoint("iris", packages.iris), monitor=monitor,
               flush_interval_s=0.05) as served:
        scheduler = served.plane.monitor
        assert scheduler is not None and scheduler.running
        for start in range(0, 60, 10):
            rows = shifted.iloc[start:start + 10].to_dict(orient="records")
            response = served.client.post("/v1/endpoints/iris/predict",
                                          json={"instances": rows})
            assert response.status_code == 200, response.text

        def analysed() -> bool:
            return any(r["rows"] == 60 and r.get("drift") for r in
                       _history(served.log_dir, "iris"))

        assert _wait_for(analysed), _history(served.log_dir, "iris")
        # the app still answers while the monitor thread works
        assert served.client.get("/v2/health/ready").status_code == 200
    assert not scheduler.running
    record = next(r for r in _history(served.log_dir, "iris") if r["rows"] == 60)
    assert record["metrics"]["drift_share"] >= 0.5
    assert record["metrics"]["dataset_drift"] == 1.0


def test_no_monitor_section_starts_no_monitor(serve: Callable[..., Any],
                                              packages: Packages) -> None:
    with serve(endpoint("iris", packages.iris)) as served:
        assert served.plane.monitor is None
    assert not (served.log_dir / "monitor").exists()
