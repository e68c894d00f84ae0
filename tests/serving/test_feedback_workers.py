"""Feedback on a real ``shipyard serve --workers 2``: every connection is fresh, so the kernel
hands predictions and their labels to either worker.

Every real id is taken exactly once, whichever worker answered it; forged ids are refused;
two labels for one request racing through the two workers give one 200 and one 409; the log
holds exactly the labels the server took, so the monitor's realised accuracy is computed from
admitted labels only."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml

from serving.helpers import ROOT, IrisModels, ServerProcess, metric, rows_payload
from shipyard.stores.feedback import effective_labels
from shipyard.stores.predictions import read_log

REQUESTS = 40  # predictions labelled at once
RACES = 12  # requests labelled twice at once


def _fresh(base: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """One request on its own connection (so either worker may take it)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        return client.post(path, json=body)


def _predict(base: str, x: Any) -> str:
    answer = _fresh(base, "/v1/endpoints/iris/predict", rows_payload(x))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["request_id"])


def _label(base: str, request_id: str, labels: list[int]) -> int:
    return _fresh(base, "/v1/endpoints/iris/feedback",
                  {"request_id": request_id, "labels": labels}).status_code


def _settled_scrape(base: str) -> str:
    """/metrics once the other worker's snapshot (at most a second old) holds the races."""
    deadline = time.monotonic() + 10
    while True:
        scrape = httpx.get(f"{base}/metrics", timeout=10).text
        if metric(scrape, "shipyard_feedback_rows_total", endpoint="iris",
                  outcome="duplicate") >= RACES or time.monotonic() > deadline:
            return scrape
        time.sleep(0.25)


def test_feedback_through_two_workers(tmp_path: Path, iris: IrisModels) -> None:
    log_dir = tmp_path / "logs"
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "endpoints": [{"name": "iris", "model": str(iris.v1_dir)}],
        "log_dir": str(log_dir), "flush_interval_s": 0.2}))
    server = ServerProcess(["--config", str(config), "--workers", "2"],
                           home=tmp_path / "home", out=tmp_path / "server.out")
    taken: dict[str, list[int]] = {}  # request id -> the labels the server took
    try:
        server.wait_ready()
        base = server.base
        with ThreadPoolExecutor(16) as pool:
            # each prediction labelled at once, both on fresh connections
            def predict_and_label(n: int) -> tuple[str, list[int], int]:
                x = iris.x[n:n + 2]
                request_id = _predict(base, x)
                labels = [n % 3, (n + 1) % 3]
                return request_id, labels, _label(base, request_id, labels)

            results = list(pool.map(predict_and_label, range(REQUESTS)))
            assert [status for *_, status in results] == [200] * REQUESTS, results
            taken.update((rid, labels) for rid, labels, _ in results)

            forged = list(pool.map(lambda n: _label(base, f"{n:032x}", [0]), range(10)))
            assert forged == [404] * 10

            # two labels for one request at once, through any two connections
            raced = list(pool.map(lambda n: _predict(base, iris.x[n:n + 1]), range(RACES)))

            def race(request_id: str) -> list[tuple[int, int]]:
                return list(enumerate(pool.map(
                    lambda label: _label(base, request_id, [label]), (0, 1))))

            for request_id, outcome in zip(raced, map(race, raced), strict=True):
                assert sorted(status for _, status in outcome) == [200, 409], outcome
                taken[request_id] = [next(lab for lab, status in outcome if status == 200)]
        scrape = _settled_scrape(base)
        # some labels reached the worker that had not answered their request
        across = sum(metric(scrape, "shipyard_feedback_ids_total", endpoint="iris", found=w)
                     for w in ("log", "log_after_wait"))
        assert across > 0, scrape
        assert metric(scrape, "shipyard_feedback_rows_total", endpoint="iris",
                      outcome="duplicate") == RACES
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        server.stop()
    feedback = read_log(log_dir, "iris", kind="feedback")
    rows = [(r["request_id"], r["row"]) for r in feedback.to_pylist()]
    assert len(rows) == len(set(rows)) == sum(len(v) for v in taken.values())
    labels = {(r["request_id"], r["row"]): r["label"]
              for r in effective_labels(feedback).to_pylist()}
    assert labels == {(rid, row): label for rid, values in taken.items()
                      for row, label in enumerate(values)}
    _check_realised_accuracy(log_dir, iris, taken)


def _check_realised_accuracy(log_dir: Path, iris: IrisModels,
                             taken: dict[str, list[int]]) -> None:
    """``shipyard monitor run`` joins exactly the admitted labels."""
    predictions = read_log(log_dir, "iris").to_pylist()
    predicted = {(r["request_id"], r["row"]): r["output.label"] for r in predictions}
    pairs = [(predicted[(rid, row)], label) for rid, values in taken.items()
             for row, label in enumerate(values)]
    expected = sum(p == t for p, t in pairs) / len(pairs)
    run = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", "monitor", "run", "iris", "--log-dir",
         str(log_dir), "--reference", str(iris.v1_dir), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    realised = [w["performance"]["realised"] for w in json.loads(run.stdout)["windows"]
                if w.get("performance", {}).get("realised")]
    assert sum(r["rows"] for r in realised) == len(pairs), run.stdout[:2000]
    correct = sum(r["accuracy"] * r["rows"] for r in realised)
    assert abs(correct / len(pairs) - expected) < 1e-9, (realised, expected)
