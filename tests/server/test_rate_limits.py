"""Rate limits on the inference routes (in memory): per key, per endpoint, a key's own rate,
anonymous clients by address; 429 with Retry-After and a body naming the limit; counted on
/metrics. The limits are slow (a token every 2 s or more), so a test's few requests all
land within the burst it sets, however slow the box."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from server.conftest import Packages
from server.helpers import endpoint, metric, metric_samples
from shipyard.service.config import ConfigError, ServeConfig

SLOW = {"rate": 0.5, "burst": 3}  # 3 at once, then one every 2 s
KEYS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "carol": "carol-secret-333"}


def _rows(packages: Packages) -> dict[str, Any]:
    return {"instances": packages.iris_x.head(1).to_dict("records")}


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[key]}"}


def test_a_key_over_its_limit_gets_429_with_retry_after_and_the_limit_named(
        serve: Callable[..., Any], packages: Packages) -> None:
    with serve(endpoint("iris", packages.iris), api_keys=KEYS,
               rate_limits={"per_key": SLOW, "keys": {"carol": {"rate": 0.5, "burst": 5}}}
               ) as s:
        post = s.client.post
        statuses = [post("/v1/endpoints/iris/predict", json=_rows(packages),
                         headers=_as("alice")).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = post("/v1/endpoints/iris/predict", json=_rows(packages),
                       headers=_as("alice"))
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        body = refused.json()
        assert body["limit"] == "per_key" and body["rate"] == 0.5 and body["burst"] == 3
        assert body["retry_after"] == int(refused.headers["retry-after"])
        assert "alice" in body["error"] and "iris" in body["error"]
        # bob has his own bucket; carol her own rate (a burst of 5)
        assert post("/v1/endpoints/iris/predict", json=_rows(packages),
                    headers=_as("bob")).status_code == 200
        carol = [post("/v1/endpoints/iris/predict", json=_rows(packages),
                      headers=_as("carol")).status_code for _ in range(6)]
        assert carol == [200] * 5 + [429]
        samples = metric_samples(s.client.get("/metrics", headers=_as(next(iter(KEYS)))).text)
        assert metric(samples, "shipyard_rate_limited_total", endpoint="iris", key="alice",
                      limit="per_key") == 1
        assert metric(samples, "shipyard_rate_limited_total", endpoint="iris", key="carol",
                      limit="per_key") == 1
        assert metric(samples, "shipyard_requests_total", endpoint="iris", model="iris",
                      version="1", status="429", protocol="json") == 2


def test_the_endpoint_limit_is_shared_by_every_key_and_covers_infer_and_feedback(
        serve: Callable[..., Any], packages: Packages) -> None:
    with serve(endpoint("iris", packages.iris), api_keys=KEYS,
               rate_limits={"per_endpoint": {"rate": 0.5, "burst": 4}}) as s:
        post = s.client.post
        ok = post("/v1/endpoints/iris/predict", json=_rows(packages), headers=_as("alice"))
        assert ok.status_code == 200
        infer = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64",
                             "data": [float(packages.iris_x[c].iloc[0])]}
                            for c in packages.iris_x.columns]}
        assert post("/v2/models/iris/infer", json=infer, headers=_as("bob")).status_code \
            == 200
        assert post("/v2/models/iris/versions/1/infer", json=infer,
                    headers=_as("carol")).status_code == 200
        label = {"request_id": ok.json()["request_id"], "label": 0}
        assert post("/v1/endpoints/iris/feedback", json=label,
                    headers=_as("alice")).status_code == 200
        for path, body in (("/v2/models/iris/infer", infer),
                           ("/v1/endpoints/iris/predict", _rows(packages)),
                           ("/v1/endpoints/iris/feedback", label)):
            refused = post(path, json=body, headers=_as("bob"))
            assert refused.status_code == 429, path
            assert refused.json()["limit"] == "per_endpoint"
            assert int(refused.headers["retry-after"]) >= 1
        samples = metric_samples(s.client.get("/metrics", headers=_as(next(iter(KEYS)))).text)
        assert metric(samples, "shipyard_rate_limited_total", endpoint="iris", key="bob",
                      limit="per_endpoint") == 3
        # the other routes are not limited
        assert s.client.get("/v2/models/iris", headers=_as("bob")).status_code == 200


def test_without_a_key_each_client_address_has_its_own_bucket(
        serve: Callable[..., Any], packages: Packages) -> None:
    with serve(endpoint("iris", packages.iris),
               rate_limits={"per_key": {"rate": 0.5, "burst": 2}}) as s:
        post = s.client.post
        assert [post("/v1/endpoints/iris/predict", json=_rows(packages)).status_code
                for _ in range(3)] == [200, 200, 429]
        # the test client's address is "testclient"; another address, another bucket
        hot = s.client.app
        assert hot.limiter is not None
        import asyncio

        asyncio.run(hot.limiter.check("iris", None, "10.0.0.9"))  # no RateLimitedError
        samples = metric_samples(s.client.get("/metrics", headers=_as(next(iter(KEYS)))).text)
        assert metric(samples, "shipyard_rate_limited_total", endpoint="iris",
                      key="anonymous", limit="per_key") == 1


def test_an_endpoints_own_limits_override_the_servers(
        serve: Callable[..., Any], packages: Packages) -> None:
    with serve(endpoint("iris", packages.iris,
                        rate_limits={"per_key": {"rate": 0.5, "burst": 1}}),
               endpoint("other", packages.iris),
               rate_limits={"per_key": {"rate": 0.5, "burst": 3}}) as s:
        post = s.client.post
        assert [post("/v1/endpoints/iris/predict", json=_rows(packages)).status_code
                for _ in range(2)] == [200, 429]
        assert [post("/v1/endpoints/other/predict", json=_rows(packages)).status_code
                for _ in range(4)] == [200, 200, 200, 429]


def test_no_limits_no_limiter(serve: Callable[..., Any], packages: Packages) -> None:
    with serve(endpoint("iris", packages.iris)) as s:
        assert s.client.app.limiter is None
        assert all(s.client.post("/v1/endpoints/iris/predict",
                                 json=_rows(packages)).status_code == 200 for _ in range(5))


@pytest.mark.parametrize("options, problem", [
    ({"rate_limits": {"per_key": {"rate": 0}}}, "rate must be a positive"),
    ({"rate_limits": {"per_key": {"rate": 5, "burst": 0}}}, "burst"),
    ({"rate_limits": {"per_kee": {"rate": 5}}}, "unknown rate_limits settings"),
    ({"rate_limits": {"per_key": {"rate": 5, "brust": 2}}}, "per_key must be"),
    ({"rate_limits": {"keys": {"a": "fast"}}}, "keys.a must be"),
    ({"rate_limit_store": "http://127.0.0.1:6379"}, "redis://"),
    ({"rate_limit_on_store_error": "maybe"}, "open"),
])
def test_invalid_rate_limit_settings_fail_at_load(options: dict[str, Any],
                                                  problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        ServeConfig.from_dict({"endpoints": [{"model": "/x/iris"}], **options})


def test_rate_limit_settings_round_trip_through_to_dict() -> None:
    config = ServeConfig.from_dict({
        "endpoints": [{"model": "/x/iris", "rate_limits": {"per_endpoint": 100},
                       "labels_only": True, "round": 3, "noise": 0.01}],
        "rate_limits": {"per_key": {"rate": 10, "burst": 20},
                        "keys": {"partner": {"rate": 50, "burst": 100}}},
        "rate_limit_store": "redis://127.0.0.1:6379/0", "rate_limit_on_store_error": "closed"})
    again = ServeConfig.from_dict(config.to_dict())
    assert again == config
    assert config.endpoints[0].rate_limits is not None
    assert config.endpoints[0].rate_limits.per_endpoint is not None
    assert config.endpoints[0].rate_limits.per_endpoint.burst == 100  # a second's worth
    assert "6379" not in repr(config)


def test_the_serve_yaml_examples_in_docs_security_md_load() -> None:
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        for variant in (block, block.replace("# rate_limit", "rate_limit")):
            ServeConfig.from_dict(yaml.safe_load(variant))
