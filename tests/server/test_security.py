"""The security suite (issue 17): API keys with scopes, from serve.yaml and the registry.

No key, a wrong key, a revoked key, an expired key, a key in the wrong place: 401. A key whose
scope or endpoint does not allow the route (a predict key on an admin route or on /metrics):
403. Keys created or revoked while the server runs take effect within one poll interval; a
key's first use is audited once, with its name; the key's secret is never stored."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from server.helpers import endpoint
from shipyard.registry import Registry
from shipyard.registry.schema import api_keys
from shipyard.settings import Settings

POLL_S = 0.2


def _registry(tmp_path: Path) -> Registry:
    return Registry(settings=Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")}),
                    actor="tester")


def _key(secret: str) -> dict[str, str]:
    return {"X-API-Key": secret}


def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(POLL_S / 4)


def test_scopes_endpoints_and_the_wrong_keys(serve: Any, packages: Any, tmp_path: Path
                                             ) -> None:
    with _registry(tmp_path) as reg:
        secrets = {name: reg.api_keys.create(name, scope, endpoint=ep)[1]
                   for name, scope, ep in (("app", "predict", None), ("labels", "feedback", None),
                                           ("grafana", "read", None), ("ops", "admin", None),
                                           ("iris-only", "predict", "iris"))}
        expiring, soon = reg.api_keys.create(
            "soon", "predict", expires_at=datetime.now(UTC) + timedelta(hours=1))
        revoked = reg.api_keys.create("gone", "predict")[1]
        reg.api_keys.revoke("gone")
    body = {"instances": packages.iris_x.head(2).to_dict("records")}
    infer = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64",
                         "data": [float(packages.iris_x[c].iloc[0])]}
                        for c in packages.iris_x.columns]}
    with serve(endpoint("iris", packages.iris), endpoint("cancer", packages.cancer),
               poll_interval_s=POLL_S) as s:
        c = s.client
        predict = "/v1/endpoints/iris/predict"
        ok = c.post(predict, json=body, headers=_key(secrets["app"]))
        assert ok.status_code == 200, ok.text
        assert c.post("/v2/models/iris/infer", json=infer,
                      headers={"Authorization": f"Bearer {secrets['app']}"}).status_code == 200
        assert c.get("/v2/models/iris", headers=_key(secrets["app"])).status_code == 200
        request_id = ok.json()["request_id"]
        # 401: no key, a wrong key, a revoked key, a key in the wrong place
        for headers, params, words in (
                ({}, {}, "needs an API key"),
                (_key(secrets["app"] + "x"), {}, "invalid or revoked"),
                (_key(revoked), {}, "'gone' has been revoked"),
                ({"Authorization": secrets["app"]}, {}, "needs an API key"),  # no "Bearer "
                ({"Authorization": f"Basic {secrets['app']}"}, {}, "needs an API key"),
                ({}, {"api_key": secrets["app"]}, "needs an API key"),  # the query string
                ({"Cookie": f"shipyard_ui_key={secrets['app']}"}, {}, "needs an API key")):
            r = c.post(predict, json=body, headers=headers, params=params)
            assert r.status_code == 401, (headers, params, r.text)
            assert words in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
            assert secrets["app"] not in r.text
        # 403: the scope or the endpoint does not allow the route
        for path, method, secret, words in (
                ("/v1/deployments", "GET", secrets["app"], "needs admin"),
                ("/v1/deployments/iris/promote", "POST", secrets["app"], "needs admin"),
                ("/v1/deployments", "GET", secrets["grafana"], "needs admin"),
                ("/metrics", "GET", secrets["app"], "needs read"),
                ("/openapi.json", "GET", secrets["labels"], "needs read"),
                (predict, "POST", secrets["grafana"], "needs predict"),
                (predict, "POST", secrets["labels"], "needs predict"),
                ("/v1/endpoints/iris/feedback", "POST", secrets["app"], "needs feedback"),
                ("/v1/endpoints/cancer/predict", "POST", secrets["iris-only"], "'iris' only"),
                ("/v1/endpoints", "GET", secrets["iris-only"], "needs read")):
            r = c.request(method, path, json=body, headers=_key(secret))
            assert r.status_code == 403, (path, r.text)
            assert words in r.json()["error"], (path, r.json())
        # allowed: each scope on its own routes; admin on all of them
        assert c.post(predict, json=body, headers=_key(secrets["iris-only"])).status_code == 200
        assert c.get("/metrics", headers=_key(secrets["grafana"])).status_code == 200
        assert c.get("/v1/endpoints", headers=_key(secrets["grafana"])).status_code == 200
        fb = c.post("/v1/endpoints/iris/feedback", json={"request_id": request_id, "label": 0},
                    headers=_key(secrets["labels"]))
        assert fb.status_code == 200, fb.text
        for path, method in (("/v1/deployments", "GET"), ("/metrics", "GET"),
                             (predict, "POST"), ("/v1/endpoints", "GET")):
            r = c.request(method, path, json=body if method == "POST" else None,
                          headers=_key(secrets["ops"]))
            assert r.status_code == 200, (path, r.text)
        # health stays open
        assert c.get("/v2/health/live").status_code == 200
        # an expired key: 401, saying so (its expiry moved to the past, as time would)
        assert c.post(predict, json=body, headers=_key(soon)).status_code == 200
        with _registry(tmp_path) as reg, reg.engine.begin() as conn:
            conn.execute(sa.update(api_keys).where(api_keys.c.name == "soon").values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        _eventually(lambda: c.post(predict, json=body, headers=_key(soon)).status_code == 401,
                    "the key expires")
        assert "expired" in c.post(predict, json=body, headers=_key(soon)).json()["error"]
    assert expiring.expires_at is not None


def test_keys_created_and_revoked_while_serving(serve: Any, packages: Any, tmp_path: Path
                                                ) -> None:
    body = {"instances": packages.iris_x.head(1).to_dict("records")}
    with _registry(tmp_path) as reg:
        reg.api_keys.create("first", "predict")  # keys exist: every route needs one
        with serve(endpoint("iris", packages.iris), poll_interval_s=POLL_S) as s:
            c = s.client
            predict = "/v1/endpoints/iris/predict"
            assert c.post(predict, json=body).status_code == 401
            _, secret = reg.api_keys.create("late", "predict")
            _eventually(lambda: c.post(predict, json=body,
                                       headers=_key(secret)).status_code == 200,
                        "a new key is accepted")
            for _ in range(3):
                assert c.post(predict, json=body, headers=_key(secret)).status_code == 200
            reg.api_keys.revoke("late")
            _eventually(lambda: c.post(predict, json=body,
                                       headers=_key(secret)).status_code == 401,
                        "a revoked key is refused")
            # every key revoked: the routes stay closed (a revocation never opens them)
            reg.api_keys.revoke("first")
            time.sleep(3 * POLL_S)
            assert c.post(predict, json=body).status_code == 401
            assert c.get("/metrics").status_code == 401
        records = reg.audit()
        late = [(r.action, r.actor, r.after or r.before) for r in records
                if (r.after or r.before or {}).get("name") == "late"]
        assert [a for a, _, _ in late] == ["key.create", "key.first_use", "key.revoke"]
        assert all(actor == "tester" for action, actor, _ in late if action != "key.first_use")
        assert late[1][2]["where"]  # which server saw it first
        listed = {k.name: k for k in reg.api_keys.all()}
        assert listed["late"].state() == "revoked" and listed["late"].first_used_at
        assert listed["first"].state() == "revoked" and listed["first"].first_used_at is None
        # the secret is never stored: only its hash, and a prefix to tell keys apart
        with reg.engine.connect() as conn:
            rows = [tuple(map(str, r)) for r in conn.exec_driver_sql("SELECT * FROM api_keys")]
        assert not any(secret in v for row in rows for v in row)
        assert any(secret[:10] in v for row in rows for v in row)


def test_config_keys_and_open_routes(serve: Any, packages: Any) -> None:
    """serve.yaml's keys keep working (api_keys: every scope but admin); open_routes keeps
    the routes it names open."""
    body = {"instances": packages.iris_x.head(1).to_dict("records")}
    with serve(endpoint("iris", packages.iris), api_keys={"app": "k-app"},
               admin_api_keys={"ops": "k-ops"}, open_routes=["metrics", "docs"]) as s:
        c = s.client
        assert c.get("/metrics").status_code == 200
        assert c.get("/docs").status_code == 200
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/v1/deployments", headers=_key("k-app")).status_code == 403
        assert c.get("/v1/deployments", headers=_key("k-ops")).status_code == 200
        assert c.post("/v1/endpoints/iris/predict", json=body,
                      headers=_key("k-app")).status_code == 200
        document = c.get("/openapi.json", headers=_key("k-app")).json()
        assert "security" not in document["paths"]["/metrics"]["get"]
        assert "security" in document["paths"]["/v1/endpoints"]["get"]


def test_admin_keys_alone_close_the_inference_routes(serve: Any, packages: Any) -> None:
    body = {"instances": packages.iris_x.head(1).to_dict("records")}
    with serve(endpoint("iris", packages.iris), admin_api_keys={"ops": "k-ops"}) as s:
        assert s.client.post("/v1/endpoints/iris/predict", json=body).status_code == 401
        assert s.client.post("/v1/endpoints/iris/predict", json=body,
                             headers=_key("k-ops")).status_code == 200


@pytest.mark.parametrize("bad", [["metrics", "everything"], "metrics"])
def test_open_routes_are_checked(bad: Any, packages: Any) -> None:
    from shipyard.service.config import ConfigError, ServeConfig

    with pytest.raises(ConfigError, match="open_routes"):
        ServeConfig(endpoints=(endpoint("iris", packages.iris),), open_routes=bad)
