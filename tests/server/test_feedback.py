"""Feedback cannot be forged or poison the metrics; one bad label loses nothing else.

Request ids are 128 random bits; a label needs a request the server (or another server
writing the same log directory) answered; a second label for a row needs ``replace``; labels
must fit the model's task. See ``shipyard.service.feedback``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.helpers import endpoint, metric, metric_samples, oip_columns
from shipyard.errors import Problem
from shipyard.packaging.signature import Signature
from shipyard.server.app import create_app
from shipyard.service.config import ServeConfig
from shipyard.service.dataplane import DataPlane, new_request_id
from shipyard.settings import Settings
from shipyard.stores.predictions import NothingLoggedError, read_log

FAST = {"flush_interval_s": 0.2}  # another process's log rows are on disk within ~0.5 s


def _predict(s: Any, rows: Any, request_id: str | None = None) -> str:
    headers = {"X-Request-Id": request_id} if request_id else {}
    answer = s.client.post("/v1/endpoints/iris/predict", headers=headers,
                           json={"instances": rows.to_dict("records")})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["request_id"])


def _labels(log_dir: Path) -> list[tuple[str, int, Any]]:
    try:
        table = read_log(log_dir, "iris", kind="feedback")
    except NothingLoggedError:
        return []
    return [(r["request_id"], r["row"], r["label"]) for r in table.to_pylist()]


def _rows(s: Any, outcome: str) -> float | None:
    samples = metric_samples(s.client.get("/metrics").text)
    return metric(samples, "shipyard_feedback_rows_total", endpoint="iris", outcome=outcome)


def test_request_ids_are_128_random_bits() -> None:
    ids = [new_request_id() for _ in range(4000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    # every one of the 32 hex digits varies: no per-process prefix, no counter
    for position in range(32):
        assert len({i[position] for i in ids}) == 16, position
    bits = sum(bin(int(i, 16)).count("1") for i in ids) / (128 * len(ids))
    assert 0.49 < bits < 0.51


def test_feedback_for_an_id_never_answered_is_refused_and_never_logged(
        serve: Any, packages: Any) -> None:
    with serve(endpoint("iris", packages.iris), **FAST) as s:
        real = _predict(s, packages.iris_x.head(2))
        forged = s.client.post("/v1/endpoints/iris/feedback",
                               json={"request_id": "never-answered", "label": 0})
        assert forged.status_code == 404
        assert "'never-answered'" in forged.json()["error"]
        # one forged id refuses the whole request: the real label is not logged either
        mixed = s.client.post("/v1/endpoints/iris/feedback", json={"feedback": [
            {"request_id": real, "labels": [0, 1]}, {"request_id": "guess", "label": 2}]})
        assert mixed.status_code == 404 and "'guess'" in mixed.json()["error"]
        assert _rows(s, "unknown_request") == 4.0  # every row of a refused request
        taken = s.client.post("/v1/endpoints/iris/feedback",
                              json={"request_id": real, "labels": [0, 1]})
        assert taken.status_code == 200 and taken.json() == {"accepted": 2, "requests": 1}
    assert _labels(s.log_dir) == [(real, 0, 0), (real, 1, 1)]


def test_a_client_id_of_an_oip_request_is_a_real_id(serve: Any, packages: Any) -> None:
    with serve(endpoint("iris", packages.iris), **FAST) as s:
        answer = s.client.post("/v2/models/iris/infer", json={
            "id": "oip-42", "inputs": oip_columns(packages.iris_x.head(2))})
        assert answer.status_code == 200 and answer.json()["id"] == "oip-42"
        taken = s.client.post("/v1/endpoints/iris/feedback",
                              json={"request_id": "oip-42", "labels": [0, 0]})
        assert taken.status_code == 200, taken.text
    assert _labels(s.log_dir) == [("oip-42", 0, 0), ("oip-42", 1, 0)]


def test_a_second_label_is_refused_unless_it_replaces_the_first(
        serve: Any, packages: Any) -> None:
    with serve(endpoint("iris", packages.iris), **FAST) as s:
        rid = _predict(s, packages.iris_x.head(1), "order-7")
        post = s.client.post
        assert post("/v1/endpoints/iris/feedback", json={"request_id": rid, "label": 0}
                    ).status_code == 200
        again = post("/v1/endpoints/iris/feedback", json={"request_id": rid, "label": 2})
        assert again.status_code == 409 and "'order-7'" in again.json()["error"]
        twice = post("/v1/endpoints/iris/feedback", json={"feedback": [
            {"request_id": "order-7", "label": 1, "replace": True},
            {"request_id": "order-7", "label": 1}]})
        assert twice.status_code == 409
        from shipyard.stores.feedback import effective_labels

        replaced = post("/v1/endpoints/iris/feedback",
                        json={"request_id": rid, "label": 1, "replace": True})
        assert replaced.status_code == 200
        bad = post("/v1/endpoints/iris/feedback",
                   json={"request_id": rid, "label": 1, "replace": "yes"})
        assert bad.status_code == 400
        assert _rows(s, "replaced") == 1.0 and _rows(s, "accepted") == 1.0
        assert _rows(s, "duplicate") == 3.0
    feedback = read_log(s.log_dir, "iris", kind="feedback")
    assert feedback.column("label").to_pylist() == [0, 1]
    assert effective_labels(feedback).to_pylist() == [
        {"request_id": "order-7", "row": 0, "label": 1}]


def test_a_label_seen_on_disk_is_a_duplicate_after_a_restart(serve: Any, packages: Any,
                                                             tmp_path: Path) -> None:
    config = ServeConfig(endpoints=(endpoint("iris", packages.iris),),
                         log_dir=str(tmp_path / "shared"), **FAST)
    settings = Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")})
    with TestClient(create_app(DataPlane(config, settings))) as first:
        rid = first.post("/v1/endpoints/iris/predict", json={
            "instances": packages.iris_x.head(1).to_dict("records")}).json()["request_id"]
        assert first.post("/v1/endpoints/iris/feedback",
                          json={"request_id": rid, "label": 0}).status_code == 200
    with TestClient(create_app(DataPlane(config, settings))) as second:  # a restart
        again = second.post("/v1/endpoints/iris/feedback",
                            json={"request_id": rid, "label": 2})
        assert again.status_code == 409, again.text


def test_labels_must_fit_the_model_task(serve: Any, packages: Any) -> None:
    with serve(endpoint("iris", packages.iris), **FAST) as s:
        rid = _predict(s, packages.iris_x.head(2))
        post = s.client.post
        for labels, bad in (([1, True], "True"), ([0, 7], "7"), (["setosa", 0], "'setosa'")):
            answer = post("/v1/endpoints/iris/feedback",
                          json={"request_id": rid, "labels": labels})
            assert answer.status_code == 422, labels
            body = answer.json()
            assert f"{bad} is not a class label" in body["error"], body
            assert body["problems"][0]["field"].startswith("feedback[0].labels[")
        extra = post("/v1/endpoints/iris/feedback", json={"request_id": rid,
                                                           "labels": [0, 1, 2]})
        assert extra.status_code == 422 and "has 2 row(s); got 3" in extra.json()["error"]
        assert _rows(s, "invalid_label") == 9.0
        # 1.0 is class 1: stored as the class label itself, an int like the predictions
        ok = post("/v1/endpoints/iris/feedback", json={"request_id": rid, "labels": [1.0, 2]})
        assert ok.status_code == 200, ok.text
    assert _labels(s.log_dir) == [(rid, 0, 1), (rid, 1, 2)]


def test_regression_labels_are_finite_numbers() -> None:
    from shipyard.service.feedback_labels import checked_labels

    signature = Signature("tabular", (), task="regression")
    problems: list[Problem] = []
    assert checked_labels(signature, [1, 2.5, None], "f", problems) == [1.0, 2.5, None]
    assert not problems
    checked_labels(signature, [True, "3", 1e400], "f", problems)
    assert [p.field for p in problems] == ["f[0]", "f[1]", "f[2]"]
    assert "True is not a finite number" in str(problems[0])


Pair = tuple[TestClient, TestClient, DataPlane]


@pytest.fixture
def two_servers(packages: Any, tmp_path: Path) -> Iterator[Pair]:
    """Two servers (each with its own inference process) writing one log directory, as two
    workers of ``--workers 2`` or two replicas do."""
    config = ServeConfig(endpoints=(endpoint("iris", packages.iris),),
                         log_dir=str(tmp_path / "shared"), **FAST)
    settings = Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")})
    plane_b = DataPlane(config, settings)
    with TestClient(create_app(DataPlane(config, settings))) as a, \
            TestClient(create_app(plane_b)) as b:
        yield a, b, plane_b


def test_an_id_answered_by_one_worker_is_taken_by_another(two_servers: Pair,
                                                          packages: Any) -> None:
    a, b, plane_b = two_servers
    rows = packages.iris_x.head(3).to_dict("records")
    rid = a.post("/v1/endpoints/iris/predict", json={"instances": rows}).json()["request_id"]
    # at once: A's inference process has not written the row yet; B waits for the flush
    taken = b.post("/v1/endpoints/iris/feedback", json={"request_id": rid,
                                                         "labels": [0, 1, 2]})
    assert taken.status_code == 200, taken.text
    assert taken.json() == {"accepted": 3, "requests": 1}
    forged = b.post("/v1/endpoints/iris/feedback", json={"request_id": rid[::-1],
                                                          "label": 0})
    assert forged.status_code == 404
    samples = metric_samples(b.get("/metrics").text)
    found = sum(metric(samples, "shipyard_feedback_ids_total", endpoint="iris", found=where)
                or 0.0 for where in ("log", "log_after_wait"))
    assert found == 1.0
    # once B's log has the label on disk, A refuses a second one
    plane_b.log.flush()
    again = a.post("/v1/endpoints/iris/feedback", json={"request_id": rid, "label": 0})
    assert again.status_code == 409, again.text
