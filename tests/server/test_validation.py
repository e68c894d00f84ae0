"""Bad input is a 4xx naming every problem, never a 5xx; body limits; API keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.helpers import assert_matches_local, binary_request, endpoint, le_bytes, local
from shipyard.errors import InputValidationError
from shipyard.packaging import validation
from shipyard.packaging.signature import ColumnSpec, Signature
from shipyard.protocol import codec

CUSTOMER = {"age": 41, "income": 52.5, "visits": 3, "city": "lyon", "plan": "pro"}


def problems(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"].startswith("input does not match the model signature")
    return body["problems"]  # type: ignore[no-any-return]


def test_missing_extra_and_mistyped_columns_in_one_422(serve, packages) -> None:
    row = {k: v for k, v in CUSTOMER.items() if k != "plan"}
    row.update(age="forty", colour="blue")
    with serve(endpoint("customers", packages.customers)) as s:
        found = problems(s.client.post("/v1/endpoints/customers/predict",
                                       json={"instances": [row]}))
        oip = problems(s.client.post("/v2/models/customers/infer", json={"inputs": [
            {"name": "age", "shape": [1], "datatype": "BYTES", "data": ["forty"]},
            {"name": "income", "shape": [1], "datatype": "FP64", "data": [1.0]},
            {"name": "visits", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "city", "shape": [1], "datatype": "BYTES", "data": ["lyon"]},
            {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["blue"]}]}))
    for listed in (found, oip):
        assert len(listed) == 3, listed
        missing, extra, mistyped = listed
        assert missing["field"] == "" and "missing input columns: ['plan']" in missing["message"]
        assert extra["field"] == "" and "unexpected input columns: ['colour']" in extra["message"]
        assert mistyped["field"] == "age"
        assert mistyped["message"].startswith("expected int64, got "), mistyped
        assert "str" in mistyped["message"]


def test_wrong_tensor_shape(serve, packages) -> None:
    rows = packages.cancer_x[:2]
    with serve(endpoint("cancer", packages.cancer)) as s:
        narrow = problems(s.client.post("/v1/endpoints/cancer/predict",
                                        json={"inputs": rows[:, :29].tolist()}))
        flat = problems(s.client.post("/v1/endpoints/cancer/predict",
                                      json={"inputs": {"input": rows[0].tolist()}}))
        oip_count = problems(s.client.post("/v2/models/cancer/infer", json={"inputs": [
            {"name": "input", "shape": [2, 30], "datatype": "FP32",
             "data": rows.ravel().tolist()[:-1]}]}))
        oip_shape = problems(s.client.post("/v2/models/cancer/infer", json={"inputs": [
            {"name": "input", "shape": [2, 29], "datatype": "FP32",
             "data": rows[:, :29].ravel().tolist()}]}))
        oip_bad_shape = problems(s.client.post("/v2/models/cancer/infer", json={"inputs": [
            {"name": "input", "shape": [2, -30], "datatype": "FP32", "data": [1.0]}]}))
    assert narrow == [{"field": "input", "message": "expected shape (N, 30), got (2, 29)"}]
    assert flat == [{"field": "input",
                     "message": "expected 2-D input with shape (N, 30), got shape (30,)"}]
    assert oip_count == [{"field": "input", "message": "shape [2, 30] holds 60 values, got 59"}]
    assert oip_shape == [{"field": "input", "message": "expected shape (N, 30), got (2, 29)"}]
    assert oip_bad_shape[0]["field"] == "input"
    assert "non-negative integers" in oip_bad_shape[0]["message"]


def test_nulls_and_nan_in_non_nullable_inputs(serve, packages) -> None:
    columns = list(packages.iris_x.columns)
    rows = packages.iris_x.head(2).to_dict("records")
    rows[1][columns[2]] = None
    with serve(endpoint("iris", packages.iris), endpoint("customers", packages.customers)) as s:
        iris = problems(s.client.post("/v1/endpoints/iris/predict", json={"instances": rows}))
        strings = problems(s.client.post("/v1/endpoints/customers/predict", json={
            "instances": [{**CUSTOMER, "city": None}, CUSTOMER]}))
        values = packages.iris_x.head(2).to_numpy().copy()
        values[0, 0] = np.nan
        body, headers = binary_request([(c, "FP64", [2], le_bytes(values[:, i], "float64"))
                                        for i, c in enumerate(columns)])
        binary_nan = problems(s.client.post("/v2/models/iris/infer", content=body,
                                            headers=headers))
    message = "1 missing value(s) (null/NaN), but this input is not nullable"
    assert iris == [{"field": columns[2], "message": message}]
    assert strings == [{"field": "city", "message": message}]
    assert binary_nan == [{"field": columns[0], "message": message}]


def test_unknown_categories_rejected_or_passed(serve, packages) -> None:
    row = {**CUSTOMER, "city": "oslo"}
    expected = local(packages.customers, [row])
    with serve(endpoint("strict", packages.customers, unknown_categories="reject"),
               endpoint("lenient", packages.customers, unknown_categories="pass")) as s:
        strict = s.client.post("/v1/endpoints/strict/predict", json={"instances": [row]})
        known = s.client.post("/v1/endpoints/strict/predict", json={"instances": [CUSTOMER]})
        oip = s.client.post("/v2/models/strict/infer", json={"inputs": [
            {"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64",
             "data": [v]} for k, v in row.items()]})
        lenient = s.client.post("/v1/endpoints/lenient/predict", json={"instances": [row]})
    for response in (strict, oip):
        (problem,) = problems(response)
        assert problem["field"] == "city"
        assert problem["message"].startswith("unknown categories ['oslo']")
    assert known.status_code == 200
    assert lenient.status_code == 200
    assert_matches_local(lenient.json(), expected)


@pytest.mark.parametrize(("url", "content", "message"), [
    ("/v1/endpoints/iris/predict", b"{not json", "malformed JSON"),
    ("/v1/endpoints/iris/predict", b"", "empty request body"),
    ("/v1/endpoints/iris/predict", b"\xff\xfe", "malformed JSON"),
    ("/v1/endpoints/iris/predict", b'{"inputs": [1e400]}', "malformed JSON"),
    ("/v2/models/iris/infer", b'{"inputs": [', "malformed JSON"),
    ("/v2/models/iris/infer", b"", "empty request body"),
])
def test_malformed_json_is_400(served_iris, url, content, message) -> None:
    response = served_iris.client.post(url, content=content)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize(("url", "body", "message"), [
    ("/v1/endpoints/iris/predict", [1, 2, 3], "must be a JSON object"),
    ("/v1/endpoints/iris/predict", {"rows": [[1, 2, 3, 4]]}, "needs exactly one of"),
    ("/v1/endpoints/iris/predict", {"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]},
     "needs exactly one of"),
    ("/v1/endpoints/iris/predict", {"inputs": [[1, 2, 3, 4]], "extra": 1}, "unknown keys"),
    ("/v1/endpoints/iris/predict", {"instances": []}, "non-empty list of rows"),
    ("/v1/endpoints/iris/predict", {"instances": [[1, 2], [1, 2, 3]]}, "different lengths"),
    ("/v1/endpoints/iris/predict", {"inputs": {"a": 1}}, "must be a list of values"),
    ("/v1/endpoints/iris/predict", {"inputs": 5}, "'inputs' must be"),
    ("/v1/endpoints/iris/predict", {"dataframe_split": {"data": [[1]]}},
     "needs 'columns' and 'data'"),
    ("/v1/endpoints/iris/predict", {"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}},
     "row 0 must have 1 values"),
    ("/v1/endpoints/iris/predict", {"dataframe_split": {"columns": [1], "data": [[1]]}},
     "must be a list of names"),
    ("/v1/endpoints/iris/predict", {"instances": [{"a": [1]}, {"a": [1, 2]}]},
     "do not form columns"),
    ("/v1/endpoints/iris/predict", {"inputs": [{"a": None}, {"a": [[1], [2, 3]]}]},
     "do not form columns"),
    ("/v2/models/iris/infer", {"instances": [[1, 2, 3, 4]]}, "needs an 'inputs' list"),
    ("/v2/models/iris/infer", ["inputs"], "needs an 'inputs' list"),
    ("/v2/models/iris/infer", {"inputs": [5]}, "inputs[0] must be an object"),
    ("/v2/models/iris/infer", {"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]},
     "needs a 'name'"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64"}]},
     "neither 'data' nor binary data"),
])
def test_wrong_envelope_is_400(served_iris, url, body, message) -> None:
    response = served_iris.client.post(url, json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize(("tensor", "message"), [
    ({"datatype": "FP128", "data": [1.0]}, "unknown datatype 'FP128'"),
    ({"datatype": "FP64", "data": ["x"]}, "data does not match datatype FP64"),
    ({"datatype": "FP64", "data": {"a": 1}}, "data does not match datatype FP64"),
    ({"datatype": "FP64", "data": [[1.0], [2.0, 3.0]]}, "data does not match datatype FP64"),
    ({"datatype": "INT8", "data": [1000]}, "data does not match datatype INT8"),
    ({"datatype": "UINT64", "data": [-1]}, "data does not match datatype UINT64"),
    ({"datatype": "BOOL", "data": [True]}, "expected float64, got bool"),
])
def test_oip_tensor_data_problems_are_422(served_iris, packages, tensor, message) -> None:
    """Data that cannot become the declared datatype is the client's problem, never a 500."""
    column = packages.iris_x.columns[0]
    response = served_iris.client.post("/v2/models/iris/infer", json={"inputs": [
        {"name": column, "shape": [1], **tensor}]})
    found = problems(response)
    assert any(p["field"] == column and message in p["message"] for p in found), found


# -- body size -----------------------------------------------------------------------------------


def test_body_over_the_limit_is_413_with_and_without_content_length(serve, packages) -> None:
    rows = packages.iris_x.head(1).to_dict("records")
    big = b'{"instances": [' + b", ".join([b'{"a": 1}'] * 200) + b"]}"
    assert len(big) > 1024

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 100):
            yield big[start:start + 100]

    with serve(endpoint("iris", packages.iris), max_body_bytes=1024) as s:
        small = s.client.post("/v1/endpoints/iris/predict", json={"instances": rows})
        declared = s.client.post("/v1/endpoints/iris/predict", content=big)
        chunked = s.client.post("/v1/endpoints/iris/predict", content=chunks())
        oip = s.client.post("/v2/models/iris/infer", content=big)
        feedback = s.client.post("/v1/endpoints/iris/feedback", content=big)
    assert small.status_code == 200
    assert declared.status_code == 413
    assert declared.json()["error"] == (f"request body of {len(big)} bytes is over the "
                                        "1024-byte limit")
    assert chunked.request.headers.get("content-length") is None
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert chunked.status_code == 413
    assert chunked.json()["error"] == "request body is over the 1024-byte limit"
    assert oip.status_code == 413 and feedback.status_code == 413


# -- API keys ------------------------------------------------------------------------------------


def test_api_keys(serve, packages) -> None:
    body = {"instances": packages.iris_x.head(1).to_dict("records")}
    infer = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]}
                        for c in packages.iris_x.columns]}
    with serve(endpoint("iris", packages.iris), api_keys={"ci": "s3cret"}) as s:
        client = s.client
        denied = [
            client.post("/v1/endpoints/iris/predict", json=body),
            client.post("/v1/endpoints/iris/predict", json=body,
                        headers={"Authorization": "Bearer wrong"}),
            client.post("/v1/endpoints/iris/predict", json=body, headers={"X-API-Key": "wrong"}),
            client.post("/v1/endpoints/iris/predict", json=body,
                        headers={"Authorization": "s3cret"}),
            client.post("/v1/endpoints/iris/feedback", json={"request_id": "a", "label": 1}),
            client.get("/v1/endpoints"),
            client.get("/v2"),
            client.get("/v2/models/iris"),
            client.get("/v2/models/iris/ready"),
            client.post("/v2/models/iris/infer", json=infer),
            # once any key exists, every route but the health routes needs one
            client.get("/metrics"), client.get("/openapi.json"), client.get("/docs"),
        ]
        bearer = client.post("/v1/endpoints/iris/predict", json=body,
                             headers={"Authorization": "Bearer s3cret"})
        x_api_key = client.post("/v1/endpoints/iris/predict", json=body,
                                headers={"X-API-Key": "s3cret"})
        oip = client.post("/v2/models/iris/infer", json=infer,
                          headers={"Authorization": "Bearer s3cret"})
        listing = client.get("/v1/endpoints", headers={"X-API-Key": "s3cret"})
        open_routes = [client.get(url) for url in ("/v2/health/live", "/v2/health/ready")]
        open_routes += [client.get(url, headers={"X-API-Key": "s3cret"})
                        for url in ("/metrics", "/openapi.json", "/docs")]
    for response in denied:
        assert response.status_code == 401, response.request.url
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in response.json()["error"]
    for response in (bearer, x_api_key, oip, listing, *open_routes):
        assert response.status_code == 200, response.request.url


def test_openapi_declares_the_api_keys_it_enforces(serve, packages) -> None:
    """With keys configured the document declares Bearer and X-API-Key schemes; every route
    it marks as secured answers 401 without a key, and every route it leaves open answers
    without one. Without keys it declares none."""
    with serve(endpoint("iris", packages.iris), api_keys={"ci": "s3cret"}) as s:
        document = s.client.get("/openapi.json", headers={"X-API-Key": "s3cret"}).json()
        answers = {}
        for path, operations in document["paths"].items():
            url = path.replace("{name}", "iris").replace("{version}", "1")
            for method, op in operations.items():
                answers[method, path] = (op, s.client.request(method, url, json={}))
    with serve(endpoint("iris", packages.iris)) as s:
        open_document = s.client.get("/openapi.json").json()
    try:
        from openapi_spec_validator import validate

        validate(document)
    except ImportError:  # the OpenAPI 3.1 meta-schema schemathesis ships
        from schemathesis.specs.openapi.definitions import OPENAPI_31

        jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer",
                                 "description": schemes["bearer"]["description"]}
    assert (schemes["apiKey"]["type"], schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == (
        "apiKey", "header", "X-API-Key")
    secured = {key for key, (op, _) in answers.items() if "security" in op}
    assert secured == {key for key in answers if key[1] not in (
        "/v2/health/live", "/v2/health/ready")}
    for (method, path), (op, response) in answers.items():
        if (method, path) in secured:
            assert op["security"] == [{"bearer": []}, {"apiKey": []}]
            assert "401" in op["responses"]
            assert response.status_code == 401, (method, path)
        else:
            assert response.status_code != 401, (method, path)
    assert "securitySchemes" not in open_document["components"]
    assert not any("security" in op for ops in open_document["paths"].values()
                   for op in ops.values())


def test_api_keys_that_are_not_ascii(serve, packages) -> None:
    """A non-ASCII key is compared as the bytes sent (401 or 200), never a 500."""
    body = {"instances": packages.iris_x.head(1).to_dict("records")}
    secret = "s\u00e9cret-\u2603"
    with serve(endpoint("iris", packages.iris), api_keys={"ci": "s3cret", "ops": secret}) as s:
        def post(headers: dict[str, bytes]) -> Any:
            return s.client.post("/v1/endpoints/iris/predict", json=body, headers=headers)

        wrong = [post({"X-API-Key": "s3cr\u00e9t".encode("latin-1")}),
                 post({"Authorization": "Bearer \u00e9".encode("latin-1")}),
                 post({"X-API-Key": secret.encode("utf-8")[:-1]})]
        right = [post({"X-API-Key": secret.encode("utf-8")}),
                 post({"Authorization": b"Bearer " + secret.encode("utf-8")}),
                 post({"X-API-Key": b"s3cret"})]
    for response in wrong:
        assert response.status_code == 401, response.text
    for response in right:
        assert response.status_code == 200, response.text


def test_ragged_column_is_a_422_naming_the_column(serve, packages) -> None:  # type: ignore[no-untyped-def]
    with serve(endpoint("iris", packages.iris)) as s:
        response = s.client.post("/v1/endpoints/iris/predict",
                                 json={"inputs": {"a": [1, [2, 3]]}})
    assert response.status_code == 422, response.text
    assert {"field": "a", "message": "values must all have the same shape (got ragged nested "
                                     "lists)"} in response.json()["problems"]


# -- the fast path for plain numeric arrays answers exactly like the general one -------------

NUMERIC = ["float64", "float32", "int64", "int32", "uint8"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), want=st.sampled_from(NUMERIC), nullable=st.booleans(),
       kind=st.sampled_from(["tensor", "tabular"]), width=st.sampled_from([None, 1, 3]),
       given_dtype=st.sampled_from([*NUMERIC, "bool", "float16", "int8"]),
       shape=st.sampled_from([(0, 3), (1, 3), (2, 3), (2, 1), (3,), (2, 4), (1, 3, 1)]))
def test_plain_numeric_fast_path_equals_the_general_path(data, want, nullable, kind, width,
                                                         given_dtype, shape) -> None:
    spec_shape = (-1,) if width is None else (-1, width)
    signature = Signature(kind=kind, inputs=(ColumnSpec("x", want, spec_shape, nullable),))
    values = data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, -3.0, 7.0, np.nan]),
                                min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    arr = np.array(values, dtype="float64").reshape(shape)
    if given_dtype != "float64":
        arr = np.nan_to_num(arr).astype(given_dtype)
    fast = _outcome(lambda: validation.prepare(arr, signature))
    general = _outcome(lambda: validation._prepare_any(arr, signature, "pass"))
    assert type(fast) is type(general)
    if isinstance(general, list):
        assert fast == general
    else:
        assert fast.keys() == general.keys()
        for name in general:
            assert fast[name].dtype == general[name].dtype
            np.testing.assert_array_equal(fast[name], general[name])


def _outcome(call: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray] | list[Any]:
    try:
        return call()
    except InputValidationError as exc:
        return [(p.field, p.message) for p in exc.problems]


SCALARS = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.booleans(), st.none(),
                    st.sampled_from(["a", "1.5"]))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(SCALARS, min_size=0, max_size=3), min_size=1, max_size=3),
       key=st.sampled_from(["instances", "inputs"]))
def test_numeric_rows_fast_path_decodes_like_the_general_path(rows, key) -> None:
    """``simple_request`` takes a short cut for ``{"instances": [[numbers...], ...]}``; what it
    returns (or refuses) must not differ from the general rectangular-rows path."""
    def outcome(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except codec.BadRequestError as exc:
            return str(exc)

    fast = outcome(lambda: codec.simple_request({key: rows}))
    general = outcome(lambda: codec._rectangular(rows, key))
    assert type(fast) is type(general)
    if isinstance(general, str):
        assert fast == general
    else:
        assert fast.dtype == general.dtype and fast.shape == general.shape
        assert [repr(v) for v in fast.ravel()] == [repr(v) for v in general.ravel()]
