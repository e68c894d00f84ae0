"""Killing the inference process under load loses no answered request: every 200 a client
received is in the prediction log exactly once, replayed from the dead child's spool, and
nothing is counted dropped (issue 13, point 6). A child that dies while idle is restarted
without traffic, and readiness says not ready meanwhile."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import yaml

from serving.helpers import IrisModels, ServerProcess, children, cmdline, metric, rows_payload
from shipyard.stores.predictions import read_log

KILLS = 3
CLIENTS = 4


def inference_child(server: ServerProcess, not_pid: int | None = None,
                    limit_s: float = 60.0) -> int:
    """The pid of the server's (new) inference process, once it is up."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for pid in children(server.pid):
            if pid != not_pid and "raw_child" in cmdline(pid):
                return pid
        time.sleep(0.02)
    raise AssertionError(f"no new inference process:\n{server.output()}")


def test_killing_the_inference_process_loses_no_answered_request(
        tmp_path: Path, iris: IrisModels) -> None:
    config = tmp_path / "serve.yaml"
    # a long flush interval: each kill finds rows the child has not written yet
    config.write_text(yaml.safe_dump({"flush_interval_s": 2.0, "endpoints": [
        {"name": "iris", "model": str(iris.v1_dir)}]}))
    server = ServerProcess(["--config", str(config), "--log-dir", str(tmp_path / "logs")],
                           home=tmp_path / "home", out=tmp_path / "server.out")
    answered: list[str] = []
    stop = threading.Event()
    ids = itertools.count()

    def client(c: int) -> None:
        rows = rows_payload(iris.x[c:c + 1])
        with httpx.Client(base_url=server.base, timeout=30) as http:
            while not stop.is_set():
                rid = f"c{c}-{next(ids)}"
                try:
                    r = http.post("/v1/endpoints/iris/predict", json=rows,
                                  headers={"X-Request-Id": rid})
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    answered.append(rid)

    try:
        server.wait_ready()
        pid = inference_child(server)
        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            for _ in range(KILLS):
                time.sleep(0.8)
                os.kill(pid, signal.SIGKILL)
                pid = inference_child(server, not_pid=pid)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        scrape = httpx.get(f"{server.base}/metrics", timeout=10).text
        dropped = metric(scrape, "shipyard_prediction_log_rows_total", outcome="dropped")
        server.signal(signal.SIGTERM)
        assert server.wait(60) == 0
    finally:
        server.stop()
    output = (tmp_path / "server.out").read_text(errors="replace")
    table = read_log(tmp_path / "logs", "iris")
    rows = Counter(zip(table.column("request_id").to_pylist(), table.column("row").to_pylist(),
                       strict=True))
    assert max(rows.values()) == 1, [r for r, n in rows.items() if n > 1][:10]
    logged = {rid for rid, _ in rows}
    missing = set(answered) - logged
    assert len(answered) > 50 and np.unique(answered).size == len(answered), len(answered)
    # every answered row is logged, once: the spools of the dead children were replayed
    assert not missing, (len(missing), len(answered), sorted(missing)[:10])
    assert table.num_rows == len(answered), (table.num_rows, len(answered))
    assert dropped == 0, dropped
    assert "not logged:" not in output
    assert output.count("replayed from the spool") >= 1, output[-3000:]
    assert not list((tmp_path / "logs" / "spool").rglob("*.spool"))  # all written


def test_a_child_killed_while_idle_is_restarted_without_traffic(
        tmp_path: Path, iris: IrisModels) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"endpoints": [{"name": "iris",
                                                     "model": str(iris.v1_dir)}]}))
    server = ServerProcess(["--config", str(config), "--log-dir", str(tmp_path / "logs")],
                           home=tmp_path / "home", out=tmp_path / "server.out")
    try:
        server.wait_ready()
        pid = inference_child(server)
        os.kill(pid, signal.SIGKILL)
        statuses = set()
        deadline = time.monotonic() + 20
        new = None
        while time.monotonic() < deadline:  # no request but readiness probes
            statuses.add(httpx.get(f"{server.base}/v2/health/ready", timeout=5).status_code)
            new = next((p for p in children(server.pid)
                        if p != pid and "raw_child" in cmdline(p)), None)
            if new is not None and 503 in statuses and statuses_ready(server):
                break
            time.sleep(0.02)
        assert new is not None, f"no new inference process without traffic:\n{server.output()}"
        assert 503 in statuses, statuses  # not ready while it restarted
        assert statuses_ready(server)
        r = httpx.post(f"{server.base}/v1/endpoints/iris/predict",
                       json=rows_payload(iris.x[:1]), timeout=10)
        assert r.status_code == 200, r.text
    finally:
        server.stop()
    assert "died between batches" in (tmp_path / "server.out").read_text(errors="replace")


def statuses_ready(server: ServerProcess) -> bool:
    return httpx.get(f"{server.base}/v2/health/ready", timeout=5).status_code == 200
