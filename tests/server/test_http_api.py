"""Every route of the served app, in-process: simple JSON API, OIP, operations, the log."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

import shipyard
from server.helpers import (
    assert_matches_local,
    endpoint,
    local,
    metric,
    metric_samples,
    oip_columns,
)
from shipyard.stores.predictions import read_log

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


# -- simple JSON API -----------------------------------------------------------------------------


def envelopes(frame: Any) -> dict[str, dict[str, Any]]:
    """The same rows in every envelope the simple API accepts."""
    records = frame.to_dict("records")
    rows = frame.to_numpy(dtype=object).tolist()
    return {
        "inputs-columns": {"inputs": {c: frame[c].tolist() for c in frame.columns}},
        "inputs-records": {"inputs": records},
        "inputs-rows": {"inputs": rows},
        "instances-records": {"instances": records},
        "instances-rows": {"instances": rows},
        "dataframe_split": {"dataframe_split": {"columns": list(frame.columns), "data": rows}},
        "dataframe_records": {"dataframe_records": records},
    }


@pytest.mark.parametrize("model", ["iris", "customers"])
def test_predict_every_envelope_matches_local_predictions(serve, packages, model) -> None:
    path = getattr(packages, model)
    frame = getattr(packages, f"{model}_x").iloc[[0, 7, 60, 120, 149]].reset_index(drop=True)
    expected = local(path, frame)
    with serve(endpoint(model, path)) as s:
        for label, body in envelopes(frame).items():
            response = s.client.post(f"/v1/endpoints/{model}/predict", json=body)
            assert response.status_code == 200, (label, response.text)
            got = response.json()
            assert_matches_local(got, expected)
            assert got["model"] == model and got["version"] == 1, label
            assert set(got) == {"predictions", "probabilities", "model", "version",
                                "request_id"}, label


def test_tensor_model_predicts_like_local(serve, packages) -> None:
    rows = packages.cancer_x[:4]
    expected = local(packages.cancer, rows)
    with serve(endpoint("cancer", packages.cancer)) as s:
        for body in ({"inputs": rows.tolist()}, {"instances": rows.tolist()},
                     {"inputs": {"input": rows.tolist()}}):
            response = s.client.post("/v1/endpoints/cancer/predict", json=body)
            assert response.status_code == 200, response.text
            assert_matches_local(response.json(), expected)
            assert list(response.json()["probabilities"][0]) == ["0", "1"]


def test_every_output_of_a_multi_output_model_is_returned(serve, packages) -> None:
    rows = [{"a": 1.0, "b": 2.0}, {"a": -5.0, "b": 1.0}]
    expected = local(packages.scorer, rows)
    assert expected.to_dict()["outputs"] == {"score": [3.0, -4.0], "flag": [1, 0]}
    with serve(endpoint("scorer", packages.scorer, trust=True)) as s:
        simple = s.client.post("/v1/endpoints/scorer/predict", json={"instances": rows})
        oip = s.client.post("/v2/models/scorer/infer", json={"inputs": [
            {"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0, -5.0]},
            {"name": "b", "shape": [2], "datatype": "FP64", "data": [2.0, 1.0]}]})
    assert simple.status_code == 200, simple.text
    body = simple.json()
    assert body["predictions"] == [3.0, -4.0]  # the first output, as Prediction.predictions
    assert body["outputs"] == {"flag": [1, 0]}  # and every other output beside it
    assert "probabilities" not in body
    assert oip_outputs(oip.json()) == {
        "score": {"name": "score", "shape": [2], "datatype": "FP64", "data": [3.0, -4.0]},
        "flag": {"name": "flag", "shape": [2], "datatype": "INT64", "data": [1, 0]}}


def test_request_id_is_honoured_or_generated(serve, packages) -> None:
    body = {"instances": packages.iris_x.head(2).to_dict("records")}
    with serve(endpoint("iris", packages.iris)) as s:
        given = s.client.post("/v1/endpoints/iris/predict", json=body,
                              headers={"X-Request-Id": "order-42"})
        assert given.headers["x-request-id"] == "order-42"
        assert given.json()["request_id"] == "order-42"

        first = s.client.post("/v1/endpoints/iris/predict", json=body)
        second = s.client.post("/v1/endpoints/iris/predict", json=body)
        for response in (first, second):
            assert HEX_ID.match(response.headers["x-request-id"])
            assert response.json()["request_id"] == response.headers["x-request-id"]
        assert first.headers["x-request-id"] != second.headers["x-request-id"]

        oip = s.client.post("/v2/models/iris/infer",
                            json={"id": "oip-7", "inputs": oip_columns(packages.iris_x.head(1))})
        assert oip.json()["id"] == "oip-7" and oip.headers["x-request-id"] == "oip-7"
        by_header = s.client.post("/v2/models/iris/infer", headers={"X-Request-Id": "hdr-1"},
                                  json={"inputs": oip_columns(packages.iris_x.head(1))})
        assert by_header.json()["id"] == "hdr-1" == by_header.headers["x-request-id"]
        generated = s.client.post("/v2/models/iris/infer",
                                  json={"inputs": oip_columns(packages.iris_x.head(1))})
        assert HEX_ID.match(generated.json()["id"])
        assert generated.headers["x-request-id"] == generated.json()["id"]


def test_list_endpoints(serve, packages) -> None:
    with serve(endpoint("iris", packages.iris), endpoint("cancer", packages.cancer)) as s:
        response = s.client.get("/v1/endpoints")
    assert response.status_code == 200
    assert response.json() == {"endpoints": [
        {"name": "iris", "source": str(packages.iris), "ready": True, "model": "iris",
         "version": 1, "last_error": None},
        {"name": "cancer", "source": str(packages.cancer), "ready": True, "model": "cancer",
         "version": 1, "last_error": None},
    ]}


def test_unknown_endpoint_is_404(serve, packages) -> None:
    with serve(endpoint("iris", packages.iris)) as s:
        for method, url in [("POST", "/v1/endpoints/nope/predict"),
                            ("POST", "/v1/endpoints/nope/feedback"),
                            ("GET", "/v2/models/nope"), ("GET", "/v2/models/nope/ready"),
                            ("POST", "/v2/models/nope/infer"),
                            ("POST", "/v2/models/nope/versions/1/infer")]:
            response = s.client.request(method, url, json={"inputs": []})
            assert response.status_code == 404, url
            assert "unknown endpoint 'nope'" in response.json()["error"], url


def test_unknown_route_and_wrong_method_answer_json(serve, packages) -> None:
    with serve(endpoint("iris", packages.iris)) as s:
        missing = s.client.get("/v3/anything")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/json"
        assert missing.json() == {"error": "no route GET /v3/anything"}
        for method, url in [("GET", "/v1/endpoints/iris/predict"), ("DELETE", "/v2"),
                            ("POST", "/v2/health/ready"), ("PUT", "/v2/models/iris/infer")]:
            response = s.client.request(method, url)
            assert response.status_code == 405, url
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {"error": f"method {method} not allowed on {url}"}


# -- feedback ------------------------------------------------------------------------------------


def test_feedback_single_and_many_reach_the_log(serve, packages) -> None:
    rows = packages.iris_x.head(3)
    with serve(endpoint("iris", packages.iris)) as s:
        for request_id, n in (("r1", 3), ("r2", 3), ("r3", 1)):  # feedback needs answers
            predicted = s.client.post("/v1/endpoints/iris/predict", json={
                "instances": rows.head(n).to_dict("records")},
                headers={"X-Request-Id": request_id})
            assert predicted.status_code == 200
        one = s.client.post("/v1/endpoints/iris/feedback", json={"request_id": "r1",
                                                                  "label": 0})
        assert one.status_code == 200 and one.json() == {"accepted": 1, "requests": 1}
        many = s.client.post("/v1/endpoints/iris/feedback", json={"feedback": [
            {"request_id": "r2", "labels": [0, 1, 2]}, {"request_id": "r3", "label": 2}]})
        assert many.status_code == 200 and many.json() == {"accepted": 4, "requests": 2}
    feedback = read_log(s.log_dir, "iris", kind="feedback").to_pylist()
    got = sorted((r["request_id"], r["row"], r["label"]) for r in feedback)
    assert got == [("r1", 0, 0), ("r2", 0, 0), ("r2", 1, 1), ("r2", 2, 2), ("r3", 0, 2)]
    assert {r["endpoint"] for r in feedback} == {"iris"}


@pytest.mark.parametrize(("body", "message"), [
    ({}, "needs a non-empty string 'request_id'"),
    ({"request_id": "", "label": 1}, "needs a non-empty string 'request_id'"),
    ({"request_id": 5, "label": 1}, "needs a non-empty string 'request_id'"),
    ({"request_id": "a"}, "exactly one of 'label' or 'labels'"),
    ({"request_id": "a", "label": 1, "labels": [1]}, "exactly one of 'label' or 'labels'"),
    ({"request_id": "a", "labels": []}, "labels must be a non-empty list"),
    ({"request_id": "a", "labels": 3}, "labels must be a non-empty list"),
    ({"request_id": "a", "label": {"nested": 1}}, "labels must be a non-empty list"),
    ({"feedback": []}, "send {'request_id'"),
    ({"feedback": {"request_id": "a"}}, "send {'request_id'"),
    ({"feedback": [{"request_id": "a", "label": 1}, "x"]}, "feedback[1] needs"),
    ([1, 2], "needs a non-empty string 'request_id'"),
])
def test_feedback_errors_are_400(served_iris, body, message) -> None:
    response = served_iris.client.post("/v1/endpoints/iris/feedback", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_feedback_malformed_json_and_unknown_endpoint(serve, packages) -> None:
    with serve(endpoint("iris", packages.iris)) as s:
        bad = s.client.post("/v1/endpoints/iris/feedback", content=b"{oops")
        assert bad.status_code == 400 and "malformed JSON" in bad.json()["error"]
        unknown = s.client.post("/v1/endpoints/nope/feedback",
                                json={"request_id": "a", "label": 1})
        assert unknown.status_code == 404


# -- Open Inference Protocol ----------------------------------------------------------------------


def test_health_and_server_metadata(serve, packages) -> None:
    with serve(endpoint("iris", packages.iris)) as s:
        assert s.client.get("/v2/health/live").json() == {"live": True}
        ready = s.client.get("/v2/health/ready")
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        meta = s.client.get("/v2")
    assert meta.status_code == 200
    assert meta.json() == {"name": "shipyard", "version": shipyard.__version__,
                           "extensions": ["binary_tensor_data"]}


def test_not_ready_before_the_models_are_loaded(packages, tmp_path) -> None:
    from starlette.testclient import TestClient

    from shipyard.server.app import create_app
    from shipyard.service.config import ServeConfig
    from shipyard.service.dataplane import DataPlane
    from shipyard.settings import Settings

    config = ServeConfig(endpoints=(endpoint("iris", packages.iris),),
                         log_dir=str(tmp_path / "logs"))
    plane = DataPlane(config, Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")}))
    client = TestClient(create_app(plane))  # no `with`: the lifespan (model loading) never ran
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "not_ready": {"iris": "loading"}}
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": False}
    plane.executor.shutdown()


def test_endpoint_that_cannot_load_is_never_ready(serve, packages, tmp_path) -> None:
    ghost = tmp_path / "no-such-package"
    with serve(endpoint("iris", packages.iris), endpoint("ghost", ghost)) as s:
        ready = s.client.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert list(ready.json()["not_ready"]) == ["ghost"]  # named, with its load error
        assert ready.json()["not_ready"]["ghost"].startswith("could not load: ")
        listed = {e["name"]: e for e in s.client.get("/v1/endpoints").json()["endpoints"]}
        assert listed["iris"]["ready"] is True
        assert listed["ghost"]["ready"] is False and listed["ghost"]["model"] is None
        assert listed["ghost"]["last_error"]
        model_ready = s.client.get("/v2/models/ghost/ready")
        assert model_ready.status_code == 400
        assert model_ready.json() == {"name": "ghost", "ready": False}
        assert s.client.get("/v2/models/iris/ready").status_code == 200
        predict = s.client.post("/v1/endpoints/ghost/predict",
                                json={"instances": [{"a": 1}]})
        assert predict.status_code == 503  # not loaded: the server's side, not the caller's
        assert predict.headers["retry-after"]
        assert "no model loaded" in predict.json()["error"]
        samples = metric_samples(s.client.get("/metrics").text)
    assert metric(samples, "shipyard_model_load_failures_total", endpoint="ghost",
                  model=str(ghost)) == 1.0
    assert metric(samples, "shipyard_model_load_failures_total", endpoint="iris",
                  model=str(packages.iris)) is None


def test_model_metadata_with_and_without_version(serve, packages) -> None:
    columns = list(packages.iris_x.columns)
    with serve(endpoint("iris", packages.iris), endpoint("customers", packages.customers),
               endpoint("cancer", packages.cancer)) as s:
        plain = s.client.get("/v2/models/iris")
        versioned = s.client.get("/v2/models/iris/versions/1")
        customers = s.client.get("/v2/models/customers").json()
        cancer = s.client.get("/v2/models/cancer").json()
        for bad in ("2", "0", "abc", "-1", "²"):
            response = s.client.get(f"/v2/models/iris/versions/{bad}")
            assert response.status_code == 404, bad
            assert "error" in response.json()
    assert plain.status_code == 200 and versioned.json() == plain.json()
    meta = plain.json()
    assert meta["name"] == "iris" and meta["versions"] == ["1"]
    assert meta["platform"] == "shipyard_onnx"
    assert meta["inputs"] == [{"name": c, "datatype": "FP64", "shape": [-1]} for c in columns]
    assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]}]
    assert {t["name"]: t["datatype"] for t in customers["inputs"]} == {
        "age": "INT64", "income": "FP64", "visits": "INT64", "city": "BYTES",
        "plan": "BYTES"}
    assert cancer["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]


def test_model_ready_by_version(serve, packages) -> None:
    with serve(endpoint("iris", packages.iris)) as s:
        assert s.client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
        v1 = s.client.get("/v2/models/iris/versions/1/ready")
        assert v1.status_code == 200 and v1.json()["ready"] is True
        v2 = s.client.get("/v2/models/iris/versions/2/ready")
        assert v2.status_code == 400 and v2.json() == {"name": "iris", "ready": False}
        assert s.client.get("/v2/models/iris/versions/x/ready").status_code == 404


def oip_outputs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in body["outputs"]}


def test_infer_with_and_without_version(serve, packages) -> None:
    frame = packages.iris_x.iloc[[3, 70, 140]]
    expected = local(packages.iris, frame)
    request = {"inputs": oip_columns(frame)}
    with serve(endpoint("iris", packages.iris)) as s:
        plain = s.client.post("/v2/models/iris/infer", json=request)
        versioned = s.client.post("/v2/models/iris/versions/1/infer", json=request)
        wrong = s.client.post("/v2/models/iris/versions/2/infer", json=request)
    for response in (plain, versioned):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_name"] == "iris" and body["model_version"] == "1"
        outputs = oip_outputs(body)
        assert outputs["label"] == {"name": "label", "shape": [3], "datatype": "INT64",
                                    "data": expected.predictions.tolist()}
        proba = outputs["probabilities"]
        assert proba["shape"] == [3, 3] and proba["datatype"] == "FP64"
        assert proba["data"] == pytest.approx(expected.probabilities.ravel().tolist(),
                                              rel=1e-9)
    assert wrong.status_code == 404 and "serves version 1, not 2" in wrong.json()["error"]


def test_infer_columns_as_n_by_1_and_string_columns(serve, packages) -> None:
    frame = packages.customers_x.head(4)
    expected = local(packages.customers, frame)
    types = {"age": "INT64", "income": "FP64", "visits": "INT64", "city": "BYTES",
             "plan": "BYTES"}
    inputs = oip_columns(frame, types)
    for tensor in inputs:
        tensor["shape"] = [len(frame), 1]
    with serve(endpoint("customers", packages.customers)) as s:
        response = s.client.post("/v2/models/customers/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    assert oip_outputs(response.json())["label"]["data"] == expected.predictions.tolist()


def test_infer_tensor_model_json_and_binary(serve, packages) -> None:
    from server.helpers import binary_request, le_bytes

    rows = packages.cancer_x[:3]
    expected = local(packages.cancer, rows)
    with serve(endpoint("cancer", packages.cancer)) as s:
        as_json = s.client.post("/v2/models/cancer/infer", json={"inputs": [
            {"name": "input", "shape": [3, 30], "datatype": "FP32",
             "data": rows.ravel().tolist()}]})
        body, headers = binary_request([("input", "FP32", [3, 30], le_bytes(rows, "float32"))])
        as_binary = s.client.post("/v2/models/cancer/infer", content=body, headers=headers)
    for response in (as_json, as_binary):
        assert response.status_code == 200, response.text
        outputs = oip_outputs(response.json())
        assert outputs["label"]["data"] == expected.predictions.tolist()
        assert outputs["probabilities"]["data"] == pytest.approx(
            expected.probabilities.ravel().tolist(), rel=1e-9)


def test_infer_binary_strings_and_numbers(serve, packages) -> None:
    from server.helpers import binary_request, le_bytes

    frame = packages.customers_x.head(3)
    expected = local(packages.customers, frame)

    def strings(values: list[str]) -> bytes:
        return b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)

    tensors = [("age", "INT64", [3], le_bytes(frame["age"], "int64")),
               ("income", "FP64", [3], le_bytes(frame["income"], "float64")),
               ("visits", "INT64", [3], le_bytes(frame["visits"], "int64")),
               ("city", "BYTES", [3], strings(frame["city"].tolist())),
               ("plan", "BYTES", [3], strings(frame["plan"].tolist()))]
    body, headers = binary_request(tensors)
    with serve(endpoint("customers", packages.customers)) as s:
        response = s.client.post("/v2/models/customers/infer", content=body, headers=headers)
        short = s.client.post("/v2/models/customers/infer", content=body[:-3], headers=headers)
        liar = s.client.post("/v2/models/customers/infer", content=body,
                             headers={**headers, "Inference-Header-Content-Length": "99999"})
    assert response.status_code == 200, response.text
    assert oip_outputs(response.json())["label"]["data"] == expected.predictions.tolist()
    assert short.status_code == 400 and "binary_data_size" in short.json()["error"]
    assert liar.status_code == 400
    assert "Inference-Header-Content-Length" in liar.json()["error"]


def test_infer_requested_outputs(serve, packages) -> None:
    frame = packages.iris_x.head(2)
    expected = local(packages.iris, frame)
    with serve(endpoint("iris", packages.iris)) as s:
        only = s.client.post("/v2/models/iris/infer", json={
            "inputs": oip_columns(frame), "outputs": [{"name": "probabilities"}]})
        unknown = s.client.post("/v2/models/iris/infer", json={
            "inputs": oip_columns(frame), "outputs": [{"name": "logits"}]})
    assert only.status_code == 200
    assert [o["name"] for o in only.json()["outputs"]] == ["probabilities"]
    assert only.json()["outputs"][0]["data"] == pytest.approx(
        expected.probabilities.ravel().tolist(), rel=1e-9)
    assert unknown.status_code == 400
    assert "unknown requested outputs ['logits']" in unknown.json()["error"]


# -- operations -----------------------------------------------------------------------------------


def test_metrics_count_requests_latency_batches_queue_loads_and_log(serve, packages) -> None:
    frame = packages.iris_x.head(5)
    with serve(endpoint("iris", packages.iris), flush_interval_s=3600.0) as s:
        for rows in (3, 2):
            assert s.client.post("/v1/endpoints/iris/predict", json={
                "instances": frame.head(rows).to_dict("records")}).status_code == 200
        assert s.client.post("/v1/endpoints/iris/predict",
                             json={"instances": [{"x": 1}]}).status_code == 422
        assert s.client.post("/v2/models/iris/infer", json={
            "inputs": oip_columns(frame.head(1))}).status_code == 200
        assert s.client.portal is not None
        s.client.portal.call(s.plane.flush_log)
        text = s.client.get("/metrics")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    samples = metric_samples(text.text)
    ok = {"endpoint": "iris", "model": "iris", "version": "1", "status": "200"}
    assert metric(samples, "shipyard_requests_total", protocol="json", **ok) == 2
    assert metric(samples, "shipyard_requests_total", protocol="oip", **ok) == 1
    assert metric(samples, "shipyard_requests_total", protocol="json",
                  **{**ok, "status": "422"}) == 1
    assert metric(samples, "shipyard_request_latency_seconds_count", **ok) == 3
    assert metric(samples, "shipyard_request_latency_seconds_count",
                  **{**ok, "status": "422"}) == 1
    batch = {"endpoint": "iris", "model": "iris", "version": "1"}
    assert metric(samples, "shipyard_batch_size_rows_count", **batch) == 3
    assert metric(samples, "shipyard_batch_size_rows_sum", **batch) == 6
    buckets = [metric(samples, "shipyard_batch_size_rows_bucket", le=le, **batch)
               for le in ("1.0", "2.0", "4.0")]
    assert buckets == [1, 2, 3]  # cumulative: one batch each of 1, 2 and 3 rows
    assert metric(samples, "shipyard_queue_depth", endpoint="iris") == 0
    load = metric(samples, "shipyard_model_load_seconds", **batch)
    assert load is not None and load > 0
    assert any(name == "shipyard_model_load_failures_total" for name, _ in samples) is False
    # 6 rows answered, and the 422's error record (``errors`` segments, SPEC14 §2)
    assert metric(samples, "shipyard_prediction_log_rows_total", outcome="written") == 7
    assert metric(samples, "shipyard_prediction_log_rows_total", outcome="dropped") == 0
    segments = metric(samples, "shipyard_prediction_log_segments_total")
    assert segments is not None and segments >= 1
    assert metric(samples, "shipyard_prediction_log_write_errors_total") == 0


def test_openapi_document_is_valid_and_covers_every_route(serve, packages) -> None:
    with serve(endpoint("iris", packages.iris), endpoint("cancer", packages.cancer)) as s:
        response = s.client.get("/openapi.json")
        routes = {r.path for r in s.client.app.routes}  # type: ignore[attr-defined]
    assert response.status_code == 200
    document = response.json()
    try:
        from openapi_spec_validator import validate

        validate(document)
    except ImportError:  # the OpenAPI 3.1 meta-schema schemathesis ships
        from schemathesis.specs.openapi.definitions import OPENAPI_31

        jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == shipyard.__version__
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)

    def check_refs(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                target: Any = document
                for part in node["$ref"].removeprefix("#/").split("/"):
                    target = target[part]  # KeyError: a dangling reference
            for value in node.values():
                check_refs(value)
        elif isinstance(node, list):
            for value in node:
                check_refs(value)

    check_refs(document)
    # the HTML pages (the API's docs, the dashboard mounted at /ui) are not API routes
    assert set(document["paths"]) == routes - {"/openapi.json", "/docs", "/docs/{asset}", "/ui"}
    predict = document["paths"]["/v1/endpoints/{name}/predict"]["post"]
    assert predict["parameters"][0]["schema"]["enum"] == ["cancer", "iris"]
    assert {"200", "400", "404", "413", "422", "503", "504"} <= set(predict["responses"])


def test_docs_page(serve, packages) -> None:
    with serve(endpoint("iris", packages.iris)) as s:
        response = s.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text and "/openapi.json" in response.text


# -- the prediction log ---------------------------------------------------------------------------


def test_prediction_log_has_one_row_per_predicted_row(serve, packages) -> None:
    frame = packages.customers_x.head(5)
    expected = local(packages.customers, frame)
    with serve(endpoint("customers", packages.customers)) as s:
        first = s.client.post("/v1/endpoints/customers/predict", headers={
            "X-Request-Id": "first"}, json={"instances": frame.head(3).to_dict("records")})
        second = s.client.post("/v1/endpoints/customers/predict", headers={
            "X-Request-Id": "second"}, json={"dataframe_records": frame.tail(2).to_dict(
                "records")})
        assert first.status_code == second.status_code == 200
        rejected = s.client.post("/v1/endpoints/customers/predict",
                                 json={"instances": [{"age": 1}]})
        assert rejected.status_code == 422  # not logged: nothing was predicted
        feedback = s.client.post("/v1/endpoints/customers/feedback", json={
            "request_id": "first", "labels": [2, 1, 0]})
        assert feedback.status_code == 200
        # the log writer is still running here; it flushes when the lifespan ends
    table = read_log(s.log_dir, "customers")
    rows = table.to_pylist()
    assert len(rows) == 5
    assert [(r["request_id"], r["row"]) for r in rows] == [
        ("first", 0), ("first", 1), ("first", 2), ("second", 0), ("second", 1)]
    assert {r["version"] for r in rows} == {1}
    assert {r["model"] for r in rows} == {"customers"}
    assert {r["endpoint"] for r in rows} == {"customers"}
    for column in frame.columns:
        assert [r[f"input.{column}"] for r in rows] == frame[column].tolist(), column
    assert [r["output.label"] for r in rows] == expected.predictions.tolist()
    for i, cls in enumerate(expected.classes or []):
        assert [r[f"output.proba.{cls}"] for r in rows] == pytest.approx(
            expected.probabilities[:, i].tolist(), rel=1e-9)
    labels = read_log(s.log_dir, "customers", kind="feedback").to_pylist()
    assert [(r["request_id"], r["row"], r["label"]) for r in labels] == [
        ("first", 0, 2), ("first", 1, 1), ("first", 2, 0)]
