"""A real ``shipyard serve`` process: OIP conformance with Triton's own client, the sync
``shipyard.Client``, and a clean SIGTERM shutdown."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

import shipyard
from server.helpers import LiveServer, assert_matches_local, live_server, local, oip_columns
from shipyard.client import ServerError
from shipyard.stores.predictions import read_log

CUSTOMER_TYPES = {"age": "INT64", "income": "FP64", "visits": "INT64", "city": "BYTES",
                  "plan": "BYTES"}


@pytest.fixture(scope="module")
def server(packages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("live")
    with live_server(tmp, packages.iris, packages.customers, packages.cancer) as running:
        yield running


@pytest.fixture
def client(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(server.host_port)
    yield c
    c.close()


# -- Open Inference Protocol through tritonclient --------------------------------------------------


def test_triton_health_and_metadata(client) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    assert not client.is_model_ready("iris", "2")
    assert client.get_server_metadata() == {"name": "shipyard", "version": shipyard.__version__,
                                            "extensions": ["binary_tensor_data"]}
    meta = client.get_model_metadata("customers")
    assert meta["name"] == "customers" and meta["versions"] == ["1"]
    assert {t["name"]: t["datatype"] for t in meta["inputs"]} == CUSTOMER_TYPES
    assert client.get_model_metadata("cancer", "1")["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("cancer", "2")
    assert missing.value.status() == "404"
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_metadata("nope")
    assert unknown.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_infer_tabular_fp64(client, packages, binary) -> None:
    frame = packages.iris_x.iloc[[0, 55, 101, 149]]
    expected = local(packages.iris, frame)
    inputs = []
    for column in frame.columns:
        tensor = triton.InferInput(column, [len(frame)], "FP64")
        tensor.set_data_from_numpy(frame[column].to_numpy(np.float64), binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput("label", binary_data=binary),
               triton.InferRequestedOutput("probabilities", binary_data=binary)]
    result = client.infer("iris", inputs, outputs=outputs, request_id=f"triton-{binary}")
    assert result.get_response()["id"] == f"triton-{binary}"
    assert result.get_response()["model_version"] == "1"
    np.testing.assert_array_equal(result.as_numpy("label"), expected.predictions)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected.probabilities,
                               rtol=1e-9)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_infer_mixed_columns_with_strings(client, packages, binary) -> None:
    frame = packages.customers_x.head(6)
    expected = local(packages.customers, frame)
    inputs = []
    for column, datatype in CUSTOMER_TYPES.items():
        values = (frame[column].to_numpy(dtype=object) if datatype == "BYTES"
                  else frame[column].to_numpy())
        tensor = triton.InferInput(column, [len(frame), 1], datatype)
        tensor.set_data_from_numpy(values.reshape(-1, 1), binary_data=binary)
        inputs.append(tensor)
    result = client.infer("customers", inputs, model_version="1")
    np.testing.assert_array_equal(result.as_numpy("label"), expected.predictions)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected.probabilities,
                               rtol=1e-9)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_infer_tensor_fp32(client, packages, binary) -> None:
    rows = packages.cancer_x[10:15]
    expected = local(packages.cancer, rows)
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    result = client.infer("cancer", [tensor],
                          outputs=[triton.InferRequestedOutput("probabilities",
                                                               binary_data=binary)])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected.probabilities,
                               rtol=1e-9)
    with pytest.raises(InferenceServerException) as bad_shape:
        narrow = triton.InferInput("input", [5, 29], "FP32")
        narrow.set_data_from_numpy(rows[:, :29], binary_data=binary)
        client.infer("cancer", [narrow])
    assert bad_shape.value.status() == "422"
    assert "expected shape (N, 30), got (5, 29)" in bad_shape.value.message()


# -- shipyard.Client against the live server -------------------------------------------------------


@pytest.mark.parametrize("rid", ["снег", "line\nbreak", "tab\there", "naïve", "a b/c"])
def test_any_infer_id_comes_back_and_the_header_stays_valid(server, packages, rid) -> None:
    """An infer body's ``id`` may be any string: the answer's ``id`` is exactly it, and the
    X-Request-Id header carries it as it is when a header can, else percent-encoded (it once
    gave a 500, or with a line break a dropped connection)."""
    body = {"id": rid, "inputs": oip_columns(packages.iris_x.head(1))}
    with httpx.Client(timeout=30) as http:
        answer = http.post(f"{server.url}/v2/models/iris/infer", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == rid
        header = answer.headers["x-request-id"]
        assert header == (rid if rid in ("naïve", "a b/c") else quote(rid))
        follow = http.get(f"{server.url}/v2/health/live")  # the connection still serves
        assert follow.status_code == 200


def test_client_predicts_feeds_back_and_lists(server, packages) -> None:
    frame = packages.customers_x.head(4)
    expected = local(packages.customers, frame)
    with shipyard.Client(server.url) as api:
        assert api.ready()
        assert [e["name"] for e in api.endpoints()] == ["iris", "customers", "cancer"]
        for data in (frame, {c: frame[c].to_numpy() for c in frame.columns},
                     frame.to_dict("records")):
            result = api.predict("customers", data)
            assert_matches_local(result, expected)
        named = api.predict("customers", frame, request_id="client-1")
        assert named["request_id"] == "client-1"
        assert api.feedback("customers", "client-1", labels=np.array([0, 1, 2, 1])) == {
            "accepted": 4, "requests": 1}
        with pytest.raises(ServerError) as again:  # labelled already
            api.feedback("customers", "client-1", 2)
        assert again.value.status == 409 and "client-1" in str(again.value)
        assert api.feedback("customers", "client-1", 2, replace=True) == {
            "accepted": 1, "requests": 1}
        tensor = api.predict("cancer", packages.cancer_x[:3])
        assert_matches_local(tensor, local(packages.cancer, packages.cancer_x[:3]))


def test_client_raises_server_error_with_problems(server, packages) -> None:
    bad = packages.customers_x.head(2).drop(columns="plan").assign(age=["x", "y"])
    with shipyard.Client(server.url) as api:
        with pytest.raises(ServerError) as invalid:
            api.predict("customers", bad)
        with pytest.raises(ServerError) as nulls:
            api.predict("iris", packages.iris_x.head(1).assign(**{
                packages.iris_x.columns[0]: np.nan}))
        with pytest.raises(ServerError) as unknown:
            api.predict("nope", bad)
        with pytest.raises(ServerError) as feedback:
            api.feedback("customers", "", 1)
    assert invalid.value.status == 422
    assert [p["field"] for p in invalid.value.problems] == ["", "age"]
    assert "missing input columns: ['plan']" in invalid.value.problems[0]["message"]
    assert str(invalid.value).startswith("HTTP 422: input does not match the model signature")
    assert nulls.value.status == 422
    assert nulls.value.problems[0]["field"] == packages.iris_x.columns[0]
    assert unknown.value.status == 404 and unknown.value.problems == []
    assert feedback.value.status == 400


def test_client_sends_missing_values_as_null(server, packages) -> None:
    """NaN / pd.NA in numpy arrays, dicts of arrays and DataFrames travel as JSON null, so the
    server names the missing value (422) instead of failing to read the body."""
    import pandas as pd

    rows = packages.cancer_x[:2].copy()
    rows[1, 4] = np.nan
    frame = packages.customers_x.head(2).astype({"age": "Int64"})
    frame.loc[frame.index[0], "age"] = pd.NA
    with shipyard.Client(server.url) as api:
        assert_matches_local(api.predict("cancer", {"input": packages.cancer_x[:2]}),
                             local(packages.cancer, packages.cancer_x[:2]))
        for data, endpoint_name, field in ((rows, "cancer", "input"),
                                           ({"input": rows}, "cancer", "input"),
                                           (frame, "customers", "age")):
            with pytest.raises(ServerError) as missing:
                api.predict(endpoint_name, data)
            assert missing.value.status == 422, missing.value
            assert [p["field"] for p in missing.value.problems] == [field]
            assert "missing value" in missing.value.problems[0]["message"]


# -- shutdown -------------------------------------------------------------------------------------


def test_sigterm_flushes_the_log_and_exits_zero(packages, tmp_path: Path) -> None:
    with live_server(tmp_path, packages.iris) as running, shipyard.Client(running.url) as api:
        answer = api.predict("iris", packages.iris_x.head(2), request_id="before-term")
        assert answer["request_id"] == "before-term"
        running.process.send_signal(signal.SIGTERM)
        try:
            code = running.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not stop within 15 s of SIGTERM")
        output = running.output.read_text(errors="replace")
        assert code == 0, output
        assert "Application shutdown complete" in output
        logged = read_log(running.log_dir, "iris").column("request_id").to_pylist()
        assert logged == ["before-term", "before-term"]
