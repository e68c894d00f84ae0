"""Property-based requests generated from the served OpenAPI document (schemathesis): no
operation answers 5xx, every status is documented and every documented body matches.

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


@pytest.fixture(scope="module")
def api(packages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    config = ServeConfig(endpoints=(endpoint("customers", packages.customers),),
                         log_dir=str(tmp / "logs"))
    app = create_app(DataPlane(config, Settings.from_env({"SHIPYARD_HOME": str(tmp)})))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the lifespan
    assert app.state.plane.ready, "the model should be loaded before fuzzing"
    yield schema
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # flush the prediction log, stop the batchers


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_never_answers_5xx(api, method, path) -> None:
    operation = api[path][method]
    statuses: Counter[int] = Counter()

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS)
        statuses[response.status_code] += 1

    run()
    assert statuses, "no request was sent"
    assert all(status < 500 for status in statuses), statuses
