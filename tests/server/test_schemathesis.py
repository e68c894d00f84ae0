"""Property-based requests generated from the served OpenAPI document (schemathesis): no
operation answers 5xx, every status is documented and every documented body matches. Three
ways: with no keys (all open), and with keys on (issue 17), presenting an admin key (every
route opens) or a registry key of scope predict (most routes answer 403, documented).

The installed schemathesis 4's pytest integration (``from_fixture`` + ``parametrize``) does not
work with pytest 9, so each operation runs its own hypothesis test over ``as_strategy()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.helpers import endpoint  # noqa: E402
from shipyard.server.app import create_app  # noqa: E402
from shipyard.server.openapi import openapi_document  # noqa: E402
from shipyard.service.config import ServeConfig  # noqa: E402
from shipyard.service.dataplane import DataPlane  # noqa: E402
from shipyard.settings import Settings  # noqa: E402

OPERATIONS = [(method.upper(), path)
              for path, methods in openapi_document(["customers"])["paths"].items()
              for method in methods]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module", params=["no keys", "admin key", "predict key"])
def api(request: pytest.FixtureRequest, packages: Any,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    settings_ = Settings.from_env({"SHIPYARD_HOME": str(tmp)})
    keys: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if request.param != "no keys":
        keys = {"api_keys": {"fuzz": "fuzz-key"}, "admin_api_keys": {"ops": "ops-key"}}
        headers = {"Authorization": "Bearer ops-key"}
        if request.param == "predict key":
            from shipyard.registry import Registry

            with Registry(settings=settings_) as reg:
                headers = {"X-API-Key": reg.api_keys.create("fuzzer", "predict")[1]}
    config = ServeConfig(endpoints=(endpoint("customers", packages.customers),),
                         log_dir=str(tmp / "logs"), **keys)
    app = create_app(DataPlane(config, settings_))
    reader = {"headers": {"Authorization": "Bearer ops-key"}} if keys else {}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app,  # starts the lifespan
                                            **reader)
    assert app.state.plane.ready, "the model should be loaded before fuzzing"
    yield schema, headers
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # flush the prediction log, stop the batchers


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_never_answers_5xx(api, method, path) -> None:
    schema, headers = api
    operation = schema[path][method]
    statuses: Counter[int] = Counter()

    # the keyed ways send the bodies the open way fuzzes with 40 examples; what they add is
    # the key check in front (admin: every route opens; predict: most answer 403, documented)
    @given(case=operation.as_strategy())
    @settings(max_examples=40 if not headers else 10, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS, **({"headers": headers} if headers
                                                              else {}))
        statuses[response.status_code] += 1

    run()
    assert statuses, "no request was sent"
    assert all(status < 500 for status in statuses), statuses
