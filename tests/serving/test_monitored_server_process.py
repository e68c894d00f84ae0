"""``shipyard serve --config`` with a monitor section, as a real process: the monitor runs on
its schedule, and SIGTERM stops it cleanly (exit 0, nothing on stderr but uvicorn's lines:
no traceback, no DataSketches objects reported leaked at interpreter exit)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import yaml

from serving.helpers import IrisModels, ServerProcess, rows_payload


def test_scheduled_monitor_in_a_served_process_stops_cleanly(tmp_path: Path,
                                                            iris: IrisModels) -> None:
    log_dir = tmp_path / "logs"
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "log_dir": str(log_dir), "flush_interval_s": 0.1,
        "monitor": {"every": "1s", "last": 40, "min_rows": 20},
        "endpoints": [{"name": "iris", "model": str(iris.v1_dir)}]}))
    server = ServerProcess(["--config", str(config)], home=tmp_path / "home",
                           out=tmp_path / "server.out")
    try:
        server.wait_ready()
        for start in range(0, 40, 10):
            response = httpx.post(f"{server.base}/v1/endpoints/iris/predict",
                                  json=rows_payload(iris.x[start:start + 10] * 1.5), timeout=10)
            assert response.status_code == 200, response.text
        history = log_dir / "monitor" / "endpoint=iris" / "history.jsonl"
        deadline = time.monotonic() + 30
        records: list[dict[str, object]] = []
        while time.monotonic() < deadline and not any(r["rows"] == 40 for r in records):
            time.sleep(0.2)
            if history.exists():
                records = [json.loads(line) for line in history.read_text().splitlines()]
        assert any(r["rows"] == 40 and r.get("drift") for r in records), server.output()
        server.signal(signal.SIGTERM)
        assert server.wait() == 0, server.output()
    finally:
        server.stop()
    output = server.out.read_text(errors="replace")
    assert "Traceback" not in output
    assert "nanobind" not in output and "leaked" not in output, output[-2000:]
