"""Hypothesis-generated request bodies that know the model's column names and the OIP
datatypes (which schemathesis, working from the generic OpenAPI document, rarely hits): any
body is answered 200, 400 or 422, never 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.helpers import Served, endpoint
from shipyard.protocol.codec import NUMPY_OF

# FP16/FP32 JSON data beyond the type's range is refused (422), never cast to inf
pytestmark = pytest.mark.filterwarnings("error:overflow encountered:RuntimeWarning")

COLUMNS = ["age", "income", "visits", "city", "plan"]
DATATYPES = [*NUMPY_OF, "BYTES"]
OK = {200, 400, 422}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["paris", "pro", "", "oslo", "1.5", "2024-01-01"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(COLUMNS), inner, max_size=3)),
    max_leaves=12)
names = st.one_of(st.sampled_from(COLUMNS), st.text(max_size=4))
# a client may send any JSON value where a name or a datatype belongs
any_names = st.one_of(names, values)
datatypes = st.one_of(st.sampled_from(DATATYPES), values)
shapes = st.lists(st.integers(-1, 4), min_size=0, max_size=3)


def tensors(binary: bool) -> st.SearchStrategy[dict[str, Any]]:
    base = {"name": names, "datatype": datatypes, "shape": shapes}
    if binary:
        base["parameters"] = st.fixed_dictionaries(
            {"binary_data_size": st.integers(-1, 40)})
    else:
        base["data"] = values
    return st.fixed_dictionaries(base)


@pytest.fixture(scope="module")
def served(packages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from starlette.testclient import TestClient

    from shipyard.server.app import create_app
    from shipyard.service.config import ServeConfig
    from shipyard.service.dataplane import DataPlane
    from shipyard.settings import Settings

    tmp = tmp_path_factory.mktemp("fuzz")
    config = ServeConfig(endpoints=(endpoint("customers", packages.customers,
                                             unknown_categories="reject"),),
                         log_dir=str(tmp / "logs"), flush_interval_s=3600.0)
    plane = DataPlane(config, Settings.from_env({"SHIPYARD_HOME": str(tmp)}))
    with TestClient(create_app(plane)) as client:
        yield Served(client, plane, tmp / "logs")


FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(inputs=st.lists(tensors(binary=False), max_size=6),
       outputs=st.one_of(st.none(), st.lists(st.fixed_dictionaries({"name": any_names}),
                                             max_size=2)))
def test_oip_json_bodies_never_5xx(served, inputs, outputs) -> None:
    body: dict[str, Any] = {"inputs": inputs}
    if outputs is not None:
        body["outputs"] = outputs
    response = served.client.post("/v2/models/customers/infer", content=json.dumps(body))
    assert response.status_code in OK, (body, response.text)


@FUZZ
@given(inputs=st.lists(tensors(binary=True), min_size=1, max_size=5),
       payload=st.binary(max_size=80))
def test_oip_binary_bodies_never_5xx(served, inputs, payload) -> None:
    head = json.dumps({"inputs": inputs}).encode()
    response = served.client.post("/v2/models/customers/infer", content=head + payload,
                                  headers={"Inference-Header-Content-Length": str(len(head))})
    assert response.status_code in OK, (inputs, payload, response.text)


@FUZZ
@given(key=st.sampled_from(["inputs", "instances", "dataframe_split", "dataframe_records"]),
       value=st.one_of(values, st.fixed_dictionaries(
           {"columns": st.lists(any_names, max_size=5), "data": values})))
def test_simple_bodies_never_5xx(served, key, value) -> None:
    response = served.client.post("/v1/endpoints/customers/predict",
                                  content=json.dumps({key: value}))
    assert response.status_code in OK, ({key: value}, response.text)
