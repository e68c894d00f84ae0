"""The HTTP admin API (``/v1/deployments``) through ``httpx.ASGITransport``: every route, the
admin keys, bad bodies named, the audit log's actor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.helpers import open_registry
from server.helpers import endpoint
from shipyard.registry import Registry
from shipyard.server.app import create_app
from shipyard.service.config import ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings

V1, V2 = "iris/1", "iris/2"
ADMIN, PLAIN = {"Authorization": "Bearer adm1n"}, {"X-API-Key": "s3cret"}


class Api:
    """Sends requests to one app (its lifespan not run: the admin API needs no model)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.request(method, path, **options)

        return asyncio.run(send())


@pytest.fixture
def reg(tmp_path: Path, packages: Any) -> Iterator[Registry]:
    registry = open_registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path, actor="server")
    registry.register(packages.iris)
    registry.register(packages.iris)
    yield registry
    registry.close()


@pytest.fixture
def make(tmp_path: Path, packages: Any, reg: Registry) -> Any:
    def build(**options: Any) -> Api:
        config = ServeConfig(endpoints=(endpoint("iris", packages.iris),),
                             log_dir=str(tmp_path / "logs"), **options)
        settings = Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")})
        return Api(create_app(DataPlane(config, settings, registry=reg)))

    return build


def shares(doc: dict[str, Any]) -> list[tuple[str, str, float]]:
    return [(t["version"], t["variant"], t["percent"]) for t in doc["traffic"]]


def test_every_route_when_no_keys_are_configured(make: Any, reg: Registry) -> None:
    api = make()
    assert api("GET", "/v1/deployments").json() == {"deployments": []}
    deployed = api("POST", "/v1/deployments/shop", json={"model": "models:/iris/1"})
    assert deployed.status_code == 200, deployed.text
    assert deployed.json()["revision"] == 1 and deployed.json()["policy"]["version"] == V1

    started = api("POST", "/v1/deployments/shop/rollouts", json={
        "kind": "canary", "to": "models:/iris/2", "steps": [10, 100], "interval_s": 60,
        "reason": "try v2"})
    assert started.status_code == 201, started.text
    assert (started.json()["kind"], started.json()["candidate"]) == ("canary", V2)
    again = api("POST", "/v1/deployments/shop/rollouts", json={"kind": "canary",
                                                              "to": "models:/iris/2"})
    assert again.status_code == 409 and "abort it first" in again.json()["error"]

    (listed,) = api("GET", "/v1/deployments").json()["deployments"]
    assert listed["endpoint"] == "shop" and listed["rollout"]["kind"] == "canary"
    assert shares(listed) == [(V1, "stable", 90.0), (V2, "canary", 10.0)]
    status = api("GET", "/v1/deployments/shop").json()
    assert status["rollout"]["plan"]["steps"] == [10, 100] and status["rollout"]["step"] == 0

    promoted = api("POST", "/v1/deployments/shop/promote", json={"reason": "fine"})
    assert promoted.status_code == 200 and shares(promoted.json()) == [(V2, "stable", 100.0)]
    rolled = api("POST", "/v1/deployments/shop/rollback")  # no body: a default reason
    assert rolled.status_code == 200 and shares(rolled.json()) == [(V1, "stable", 100.0)]

    api("POST", "/v1/deployments/shop/rollouts", json={"kind": "bluegreen",
                                                       "to": "models:/iris/2"})
    switched = api("POST", "/v1/deployments/shop/switch", json={})
    assert shares(switched.json()) == [(V1, "blue", 0.0), (V2, "green", 100.0)]
    aborted = api("POST", "/v1/deployments/shop/abort", json={"reason": "not today"})
    assert shares(aborted.json()) == [(V1, "stable", 100.0)]

    history = api("GET", "/v1/deployments/shop/history", params={"limit": 5}).json()
    assert [r["state"] for r in history["rollouts"]] == ["aborted", "promoted"]
    assert history["rollouts"][0]["reason"] == "not today"
    # with no keys, the changes are the server's own actor's
    assert {r.actor for r in reg.audit(action="deployment.policy")} == {"server"}


def test_ab_and_shadow_through_the_api(make: Any) -> None:
    api = make()
    api("POST", "/v1/deployments/shop", json={"model": "models:/iris/1"})
    started = api("POST", "/v1/deployments/shop/rollouts", json={
        "kind": "ab", "a": "models:/iris/1", "b": "models:/iris/2", "split": 20,
        "key": "header:X-User-Id", "mde": 0.05, "baseline": 0.9})
    assert started.status_code == 201, started.text
    assert started.json()["sample_plan"]["n_a"] > 0
    assert shares(api("GET", "/v1/deployments/shop").json()) == [(V1, "a", 80.0),
                                                                  (V2, "b", 20.0)]
    wrong = api("POST", "/v1/deployments/shop/promote", json={"winner": "c"})
    assert wrong.status_code == 400 and "winner" in wrong.json()["error"]
    won = api("POST", "/v1/deployments/shop/promote", json={"winner": "b"})
    assert shares(won.json()) == [(V2, "stable", 100.0)]

    shadow = api("POST", "/v1/deployments/shop/rollouts", json={
        "kind": "shadow", "candidate": "models:/iris/1", "percent": 50})
    assert shadow.status_code == 201, shadow.text
    assert api("GET", "/v1/deployments/shop").json()["traffic"][1] == {
        "version": V1, "variant": "shadow", "percent": 0.0, "copied_percent": 50.0}


def test_admin_key_required_when_keys_are_configured(make: Any, reg: Registry) -> None:
    api = make(api_keys={"ci": "s3cret"}, admin_api_keys={"ops": "adm1n"})
    assert api("GET", "/v1/deployments").status_code == 401
    assert api("GET", "/v1/deployments", headers={"X-API-Key": "wrong"}).status_code == 401
    forbidden = api("POST", "/v1/deployments/shop", json={"model": "models:/iris/1"},
                    headers=PLAIN)
    assert forbidden.status_code == 403 and "admin" in forbidden.json()["error"]
    assert api("GET", "/v1/deployments", headers=ADMIN).status_code == 200
    assert api("POST", "/v1/deployments/shop", json={"model": "models:/iris/1"},
               headers=ADMIN).status_code == 200
    (record,) = reg.audit(action="deployment.policy")
    assert record.actor == "api:ops"
    # the admin key opens the other guarded routes too; the plain key not the admin API
    assert api("GET", "/v1/endpoints", headers=ADMIN).status_code == 200
    assert api("GET", "/v1/endpoints", headers=PLAIN).status_code == 200
    assert api("GET", "/v1/endpoints").status_code == 401


def test_admin_keys_alone_guard_every_route(make: Any) -> None:
    api = make(admin_api_keys={"ops": "adm1n"})
    assert api("GET", "/v1/endpoints").status_code == 401  # any key: every route needs one
    assert api("GET", "/v1/endpoints", headers=ADMIN).status_code == 200
    assert api("GET", "/v1/deployments").status_code == 401
    assert api("GET", "/v1/deployments", headers=ADMIN).status_code == 200
    # api keys alone: the admin API is closed to them (no admin key exists)
    api = make(api_keys={"ci": "s3cret"})
    assert api("GET", "/v1/deployments", headers=PLAIN).status_code == 403


@pytest.mark.parametrize(("method", "path", "body", "status", "named"), [
    ("POST", "/v1/deployments/shop", {}, 400, "model"),
    ("POST", "/v1/deployments/shop", {"model": 3}, 400, "model"),
    ("POST", "/v1/deployments/shop", {"model": "models:/iris/1", "colour": 1}, 400, "colour"),
    ("POST", "/v1/deployments/shop", [1], 400, "object"),
    ("POST", "/v1/deployments/shop", {"model": "models:/iris/1", "reason": ""}, 400, "reason"),
    ("POST", "/v1/deployments/shop/rollouts", {"kind": "blue"}, 400, "kind"),
    ("POST", "/v1/deployments/shop/rollouts", {"kind": ["canary"]}, 400, "kind"),
    ("POST", "/v1/deployments/shop/rollouts",
     {"kind": "ab", "a": "models:/iris/1", "b": "models:/iris/2", "mde": 1e-300}, 400, "mde"),
    ("POST", "/v1/deployments/shop/rollouts", {"kind": "canary"}, 400, "'to'"),
    ("POST", "/v1/deployments/shop/rollouts", {"kind": "ab", "a": "models:/iris/1"}, 400,
     "'b'"),
    ("POST", "/v1/deployments/shop/rollouts",
     {"kind": "canary", "to": "models:/iris/2", "steps": [50, 20, 100]}, 400, "steps"),
    ("POST", "/v1/deployments/shop/rollouts",
     {"kind": "canary", "to": "models:/iris/2", "speed": 9}, 400, "speed"),
    ("POST", "/v1/deployments/shop/rollouts",
     {"kind": "canary", "to": "models:/iris/2", "interval_s": "10m"}, 400, "interval_s"),
    ("POST", "/v1/deployments/shop/rollouts",
     {"kind": "canary", "to": "models:/iris/2", "require_evaluation": "yes"}, 400,
     "require_evaluation"),
    ("POST", "/v1/deployments/shop/rollouts",
     {"kind": "shadow", "candidate": "models:/iris/2", "require_evaluation": True}, 400,
     "require_evaluation"),
    ("POST", "/v1/deployments/shop/rollouts", {"kind": "canary", "to": "models:/iris/2",
                                               "require_evaluation": True,
                                               "override_evaluation": ""}, 400,
     "override_evaluation"),
    ("POST", "/v1/deployments/shop/rollouts",
     {"kind": "canary", "to": "models:/iris/2", "require_evaluation": True}, 409,
     "has no evaluation with a gate"),
    ("POST", "/v1/deployments/shop/rollouts",
     {"kind": "canary", "to": "models:/iris/2", "override_evaluation": "no audit"}, 400,
     "give require_evaluation"),
    ("POST", "/v1/deployments/shop", {"model": "models:/iris/2", "require_evaluation": True},
     409, "deploying iris/2 on 'shop' requires a passed evaluation"),
    ("POST", "/v1/deployments/shop", {"model": "models:/iris/2", "require_evaluation": 1},
     400, "require_evaluation"),
    ("POST", "/v1/deployments/shop/abort", {"winner": "a"}, 400, "winner"),
    ("POST", "/v1/deployments/bad%20name", {"model": "models:/iris/1"}, 400, "endpoint"),
    ("POST", "/v1/deployments/shop", {"model": "models:/iris/9"}, 404, "no version 9"),
    ("POST", "/v1/deployments/shop/rollouts", {"kind": "canary", "to": "models:/iris/9"}, 404,
     "no version 9"),
    ("GET", "/v1/deployments/nowhere", None, 404, "nowhere"),
    ("GET", "/v1/deployments/nowhere/history", None, 404, "nowhere"),
    ("GET", "/v1/deployments/shop/history?limit=lots", None, 400, "limit"),
    ("POST", "/v1/deployments/shop/switch", {}, 409, "no running rollout"),
])
def test_bad_requests_are_named_4xx(make: Any, method: str, path: str, body: Any,
                                    status: int, named: str) -> None:
    api = make()
    assert api("POST", "/v1/deployments/shop", json={"model": "models:/iris/1"}).status_code \
        == 200
    answer = api(method, path, json=body) if body is not None else api(method, path)
    assert answer.status_code == status, answer.text
    assert named in answer.json()["error"], answer.text
    # nothing changed
    assert shares(api("GET", "/v1/deployments/shop").json()) == [(V1, "stable", 100.0)]


def test_a_required_evaluation_can_be_overridden_with_a_reason(make: Any,
                                                                 reg: Registry) -> None:
    api = make()
    assert api("POST", "/v1/deployments/shop", json={"model": "models:/iris/1"}).status_code \
        == 200
    started = api("POST", "/v1/deployments/shop/rollouts", json={
        "kind": "bluegreen", "to": "models:/iris/2", "require_evaluation": True,
        "override_evaluation": "evaluated by hand: ticket 7"})
    assert started.status_code == 201, started.text
    override = reg.audit(action="evaluation.override")
    assert [(o.version, o.after["reason"]) for o in override] == [
        (2, "evaluated by hand: ticket 7")]
    assert "has no evaluation with a gate" in override[0].after["missing"]


def test_malformed_json_is_400(make: Any) -> None:
    answer = make()("POST", "/v1/deployments/shop", content=b"{not json",
                    headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "JSON" in answer.json()["error"]
