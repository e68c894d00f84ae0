"""Overload: a full queue answers 503 with Retry-After, a missed deadline 504.

Built deterministically with the gated custom model: a request whose ``hold`` is set stays
inside ``predict`` until the test opens the gate, so the test knows the model is busy.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from server import custom_models as gated
from server.helpers import endpoint, metric, metric_samples

HELD = {"instances": [{"x": 1.5, "hold": 1}]}
FREE = {"instances": [{"x": 4.0, "hold": 0}]}


def wait_until(condition: Any, what: str, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


def test_custom_model_serves_when_not_held(serve, packages) -> None:
    with serve(endpoint("gated", packages.gated, inference="thread", trust=True)) as s:
        response = s.client.post("/v1/endpoints/gated/predict", json={
            "instances": [{"x": 1.5, "hold": 0}, {"x": -2.0, "hold": 0}]})
    assert response.status_code == 200
    assert response.json()["predictions"] == [3.0, -4.0]


@pytest.mark.usefixtures("gate")
def test_full_queue_is_503_with_retry_after(serve, packages) -> None:
    with serve(endpoint("gated", packages.gated, max_queue=1, inference="thread",
                        trust=True)) as s, \
            ThreadPoolExecutor(2) as pool:
        batcher = s.plane.endpoints["gated"].current.batcher  # type: ignore[union-attr]
        url = "/v1/endpoints/gated/predict"
        running: Future[Any] = pool.submit(s.client.post, url, json=HELD)
        assert gated.ENTERED.wait(20), "the held request never reached the model"
        queued: Future[Any] = pool.submit(s.client.post, url, json=FREE)
        wait_until(lambda: batcher.depth == 1, "the second request to queue")

        rejected = s.client.post(url, json=FREE)
        oip_rejected = s.client.post("/v2/models/gated/infer", json={"inputs": [
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]},
            {"name": "hold", "shape": [1], "datatype": "INT64", "data": [0]}]})
        during = metric_samples(s.client.get("/metrics").text)

        gated.GATE.set()
        first, second = running.result(30), queued.result(30)
        after = metric_samples(s.client.get("/metrics").text)
    for response in (rejected, oip_rejected):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "overloaded: queue full (1 requests waiting)"
    assert first.status_code == 200 and first.json()["predictions"] == [3.0]
    assert second.status_code == 200 and second.json()["predictions"] == [8.0]
    assert metric(during, "shipyard_queue_depth", endpoint="gated") == 1
    assert metric(after, "shipyard_queue_depth", endpoint="gated") == 0
    labels = {"endpoint": "gated", "model": "gated", "version": "1"}
    assert metric(after, "shipyard_requests_total", protocol="json", status="503",
                  **labels) == 1
    assert metric(after, "shipyard_requests_total", protocol="oip", status="503",
                  **labels) == 1
    assert metric(after, "shipyard_requests_total", protocol="json", status="200",
                  **labels) == 2


@pytest.mark.usefixtures("gate")
def test_missed_deadline_is_504_and_is_not_logged(serve, packages) -> None:
    with serve(endpoint("gated", packages.gated, timeout_s=0.2, inference="thread",
                        trust=True)) as s:
        timed_out = s.client.post("/v1/endpoints/gated/predict", json=HELD,
                                  headers={"X-Request-Id": "late"})
        gated.GATE.set()  # let the held model call finish before the app shuts down
        # the call ran past its deadline (batch_timeout_s defaults to timeout_s) and keeps
        # its slot until it returns: wait for the slot, not only for the batch task
        batcher = s.plane.endpoints["gated"].current.batcher
        wait_until(lambda: batcher.running == 0 and batcher.calling == 0,
                   "the held call to finish")
        after = s.client.post("/v1/endpoints/gated/predict", json=FREE,
                              headers={"X-Request-Id": "on-time"})
        samples = metric_samples(s.client.get("/metrics").text)
    assert timed_out.status_code == 504
    assert timed_out.json()["error"] == "timed out: no result within 0.2 s"
    assert after.status_code == 200 and after.json()["predictions"] == [8.0]
    assert metric(samples, "shipyard_requests_total", protocol="json", status="504",
                  endpoint="gated", model="gated", version="1") == 1
    from shipyard.stores.predictions import read_log

    logged = read_log(s.log_dir, "gated").column("request_id").to_pylist()
    assert logged == ["on-time"]
