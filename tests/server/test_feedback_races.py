"""Two labels for one request racing through two workers: exactly one is taken.

A label waits in its writer's buffer for up to a flush interval, so the other worker cannot
see it on disk yet; the claim both consult (``shipyard.stores.label_claims``) decides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.helpers import endpoint
from shipyard.server.app import create_app
from shipyard.service.config import ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings

Pair = tuple[TestClient, TestClient]


@pytest.fixture
def two_workers(packages: Any, tmp_path: Path) -> Iterator[Pair]:
    """Two servers on one log directory, as two workers of ``--workers 2``; their labels
    stay buffered (a long flush interval), as within any flush interval of a busy server."""
    config = ServeConfig(endpoints=(endpoint("iris", packages.iris),),
                         log_dir=str(tmp_path / "shared"), flush_interval_s=30.0)
    settings = Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")})
    with TestClient(create_app(DataPlane(config, settings))) as a, \
            TestClient(create_app(DataPlane(config, settings))) as b:
        yield a, b


def _answered(client: TestClient, packages: Any, request_id: str) -> None:
    answer = client.post("/v1/endpoints/iris/predict", headers={"X-Request-Id": request_id},
                         json={"instances": packages.iris_x.head(1).to_dict("records")})
    assert answer.status_code == 200, answer.text


def test_a_label_taken_by_one_worker_is_a_duplicate_on_the_other(two_workers: Pair,
                                                                 packages: Any) -> None:
    a, b = two_workers
    for client in (a, b):  # a client's own id, answered by both: each holds it in memory
        _answered(client, packages, "order-1")
    first = a.post("/v1/endpoints/iris/feedback", json={"request_id": "order-1", "label": 0})
    assert first.status_code == 200, first.text
    second = b.post("/v1/endpoints/iris/feedback", json={"request_id": "order-1", "label": 2})
    assert second.status_code == 409, second.text
    assert "'order-1'" in second.json()["error"]
    replaced = b.post("/v1/endpoints/iris/feedback",
                      json={"request_id": "order-1", "label": 2, "replace": True})
    assert replaced.status_code == 200, replaced.text


def test_a_refused_request_claims_nothing(tmp_path: Path) -> None:
    from shipyard.stores.label_claims import LabelClaims

    claims = LabelClaims(tmp_path, horizon_s=3600.0)
    assert claims.claim("ep", ["a"], [False]) == (set(), set())
    # "b" is new but "a" is refused: the request is refused whole, "b" stays unclaimed
    assert claims.claim("ep", ["a", "b"], [False, False]) == ({"a"}, {"a"})
    assert claims.claim("ep", ["b"], [False]) == (set(), set())
    assert claims.claim("ep", ["a", "b"], [True, True]) == ({"a", "b"}, set())
    assert claims.claim("other", ["a"], [False]) == (set(), set())  # per endpoint
    claims.close()
    again = LabelClaims(tmp_path, horizon_s=3600.0)  # another process, or after a restart
    assert again.claim("ep", ["a"], [False]) == ({"a"}, {"a"})
    again.close()
