"""Inference in a child process (``inference: process``, the default): the frame codec, the
answers, the child's prediction log, and what happens when the child dies or its model
raises."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier

import shipyard
from server.conftest import Packages
from server.helpers import binary_request, endpoint, le_bytes, local, oip_columns
from shipyard.errors import InferenceProcessError
from shipyard.runtimes.frames import decode, encode
from shipyard.runtimes.model import LoadedModel, VerifiedPackage
from shipyard.runtimes.process import InferenceProcess, _merge, log_entry
from shipyard.service.config import ConfigError, EndpointConfig, ServeConfig
from shipyard.settings import Settings
from shipyard.stores.predictions import read_log

DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint64", "bool"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_frames_carry_arrays_exactly(data: st.DataObject) -> None:
    columns: dict[str, np.ndarray] = {}
    for i in range(data.draw(st.integers(0, 3))):
        dtype = data.draw(st.sampled_from(DTYPES))
        shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
        columns[f"c{i}"] = data.draw(hnp.arrays(dtype, shape))
    strings = data.draw(st.lists(st.one_of(st.none(), st.text(max_size=5)), max_size=4))
    text = np.empty(len(strings), dtype=object)
    text[:] = strings
    columns["text"] = text
    payload = data.draw(st.lists(st.binary(max_size=40), max_size=4))  # raw batches' bodies
    frame = encode(columns, {"id": 7}, payload)
    body = frame[4:]
    assert int.from_bytes(frame[:4], "little") == len(body)
    back, header = decode(body)
    parts = header.pop("payload", [])
    assert [bytes(p) for p in parts] == payload
    assert header == {"id": 7}
    assert list(back) == list(columns)
    for name, arr in columns.items():
        got = back[name]
        assert got.dtype == arr.dtype and got.shape == arr.shape, name
        if arr.dtype.kind == "O":
            assert got.tolist() == arr.tolist()
        else:
            np.testing.assert_array_equal(got, arr)


def test_the_child_answers_as_the_model_does_in_process(packages: Packages) -> None:
    import asyncio

    process = InferenceProcess(packages.cancer, trust=False, runtime=None,
                               settings=Settings.from_env())
    child = process.proc.pid
    model = shipyard.load(packages.cancer)
    columns = model.prepare(packages.cancer_x[:17])

    async def run() -> dict[str, np.ndarray]:
        outputs, frame = await process.run(columns)
        assert frame == 1
        await process.aclose()
        return outputs

    outputs = asyncio.run(run())
    expected = model.runtime.predict(columns)
    assert set(outputs) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(outputs[name], expected[name])
    assert process.proc.poll() == 0  # exited by itself when its socket closed
    assert not Path(f"/proc/{child}").exists()


def test_a_package_the_child_cannot_load_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InferenceProcessError, match="could not load the model"):
        InferenceProcess(tmp_path / "nothing-here", trust=False, runtime=None,
                         settings=Settings.from_env())


def test_served_answers_and_log_come_from_the_child(serve: Callable[..., Any],
                                                    packages: Packages) -> None:
    frame = packages.iris_x.head(5)
    with serve(endpoint("iris", packages.iris)) as s:
        deployment = s.plane.endpoints["iris"].current
        assert deployment is not None and deployment.process is not None
        child = deployment.process.proc.pid
        ids = []
        for i in range(3):
            r = s.client.post("/v1/endpoints/iris/predict", headers={"x-request-id": f"r{i}"},
                              json={"instances": frame.to_dict("records")})
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == local(packages.iris, frame).predictions.tolist()
            ids.append(f"r{i}")
    assert not Path(f"/proc/{child}").exists(), "the inference process outlived the server"
    logged = read_log(s.log_dir, "iris").to_pandas()
    assert sorted(set(logged["request_id"])) == ids
    assert len(logged) == 15
    # the child wrote them: none from the server's own writer; each segment is named after
    # the child's spool file (its start, the server's pid, the file's number)
    assert s.plane.log.stats.by_kind.get("predictions", 0) == 0
    segments = list((s.log_dir / "predictions").rglob("*.parquet"))
    assert {int(p.name.split("-")[1]) for p in segments} == {os.getpid()}
    assert not list((s.log_dir / "spool").rglob("*.spool"))  # written, then deleted
    first = logged[logged["request_id"] == "r0"].sort_values("row")
    np.testing.assert_allclose(first["input.sepal length (cm)"], frame["sepal length (cm)"])


def test_a_dead_child_costs_one_503_then_a_new_one_serves(serve: Callable[..., Any],
                                                          packages: Packages) -> None:
    body = {"instances": packages.iris_x.head(2).to_dict("records")}
    with serve(endpoint("iris", packages.iris)) as s:
        process = s.plane.endpoints["iris"].current.process
        assert process is not None
        old = process.proc.pid
        assert s.client.post("/v1/endpoints/iris/predict", json=body).status_code == 200
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        r = s.client.post("/v1/endpoints/iris/predict", json=body)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "inference process stopped" in r.json()["error"]
        r = s.client.post("/v1/endpoints/iris/predict", json=body)
        assert r.status_code == 200, r.text
        assert process.restarts == 1 and process.proc.pid != old
        assert s.client.get("/v2/health/ready").status_code == 200


@pytest.fixture(scope="module")
def picky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("picky")
    sample = pd.DataFrame({"x": [1.0, 2.5, -3.0]})
    shipyard.package("server.custom_models:Picky", sample, name="picky").save(root / "picky")
    return root / "picky"


def test_a_model_error_in_the_child_fails_only_its_request(serve: Callable[..., Any],
                                                           picky: Path) -> None:
    with serve(endpoint("picky", picky, trust=True)) as s:
        bad = s.client.post("/v1/endpoints/picky/predict", json={"inputs": {"x": [13.0]}})
        assert bad.status_code == 500
        assert bad.json()["error"] == "internal error: RemoteModelError"
        good = s.client.post("/v1/endpoints/picky/predict", json={"inputs": {"x": [2.0]}})
        assert good.status_code == 200 and good.json()["predictions"] == [4.0]
        assert s.plane.endpoints["picky"].current.process.restarts == 0


def test_inference_is_process_or_thread() -> None:
    assert EndpointConfig(name="a", model="m").inference == "process"
    config = ServeConfig.from_dict({"endpoints": [{"name": "a", "model": "m",
                                                   "inference": "thread"}]})
    assert config.endpoints[0].inference == "thread"
    with pytest.raises(ConfigError, match="inference is process or thread"):
        EndpointConfig(name="a", model="m", inference="fork")  # type: ignore[arg-type]


def test_the_last_request_is_logged_without_a_next_batch(serve: Callable[..., Any],
                                                         packages: Packages) -> None:
    """A log entry normally rides with the next batch; with no traffic after it, it goes on
    its own within LOG_DELAY_S, so the monitor sees the last request while serving."""
    body = {"instances": packages.iris_x.head(3).to_dict("records")}
    with serve(endpoint("iris", packages.iris), flush_interval_s=0.1) as s:
        r = s.client.post("/v1/endpoints/iris/predict", headers={"x-request-id": "last"},
                          json=body)
        assert r.status_code == 200
        deadline = time.monotonic() + 10
        while True:  # nothing else is sent: no batch can carry the entry
            try:
                logged = read_log(s.log_dir, "iris").column("request_id").to_pylist()
            except shipyard.ShipyardError:
                logged = []
            if logged:
                break
            assert time.monotonic() < deadline, "the last request was not logged while serving"
            time.sleep(0.05)
        assert logged == ["last"] * 3


def test_queued_log_entries_merge_into_one_per_kind() -> None:
    """Entries queued between frames travel as one (the child writes one batch of rows for
    several batches); a shadow entry, or one without routing lists, stays apart."""
    first = log_entry([(1, 0, 2)], ["a"], [1.0], ["k"], [10.0], upto=1, variants=["A"],
                      revisions=[3])
    second = log_entry([(2, 0, 1)], ["b"], [2.0], [None], [11.0], upto=2, variants=["B"],
                       revisions=[3])
    assert _merge(first, second)
    assert first["kept"] == [(1, 0, 2), (2, 0, 1)] and first["request_ids"] == ["a", "b"]
    assert first["variants"] == ["A", "B"] and first["upto"] == 2
    assert first["latency_ms"] == [1.0, 2.0] and first["routing_keys"] == ["k", None]
    shadow = log_entry([(3, 0, 1)], ["c"], [1.0], [None], [12.0], upto=3, variants=["shadow"],
                       revisions=[3], shadow=True)
    plain = log_entry([(4, 0, 1)], ["d"], [1.0], [None], [13.0], upto=4)
    assert not _merge(first, shadow) and not _merge(first, plain)
    assert first["request_ids"] == ["a", "b"]


def customer_bodies(packages: Packages) -> list[bytes]:
    """Good and bad simple-JSON bodies for the customers model (categorical columns)."""
    import json

    rows = packages.customers_x.head(4)
    records = json.loads(rows.to_json(orient="records"))
    split = json.loads(rows.to_json(orient="split", index=False))
    first = dict(records[0])
    unknown = {**first, "plan": "platinum-deluxe"}
    missing = {k: v for k, v in first.items() if k != "plan"}
    extra = {**first, "shoe_size": 44}
    typed = {**first, next(k for k, v in first.items() if isinstance(v, float)): "many"}
    nulled = {**first, next(k for k, v in first.items() if isinstance(v, float)): None}
    bodies = [{"instances": records}, {"dataframe_split": split},
              {"inputs": {k: [r[k] for r in records] for k in first}},
              {"instances": [unknown]}, {"instances": [missing, extra, typed]},
              {"instances": [nulled]}, {"instances": []}, {"rows": records}, []]
    return [json.dumps(b).encode() for b in bodies] + [b"", b"{not json", b"[1, 2"]


def test_the_process_answers_raw_requests_as_the_server_would(serve: Callable[..., Any],
                                                              packages: Packages) -> None:
    """With ``inference: process`` the child parses, validates, predicts and encodes simple
    JSON requests itself: every answer, good or bad, is the one the in-process path gives,
    byte for byte, with the same status and headers."""
    with serve(endpoint("raw", packages.customers, unknown_categories="reject"),
               endpoint("thread", packages.customers, unknown_categories="reject",
                        inference="thread")) as s:
        raw = s.plane.endpoints["raw"].current
        assert raw is not None and raw.raw is not None  # the raw path is on
        assert s.plane.endpoints["thread"].current.raw is None  # type: ignore[union-attr]
        statuses = set()
        bodies = customer_bodies(packages)
        for i, body in enumerate(bodies):
            answers = [s.client.post(f"/v1/endpoints/{name}/predict", content=body,
                                     headers={"x-request-id": f"same-{i}",
                                              "content-type": "application/json"})
                       for name in ("raw", "thread")]
            mine, theirs = answers
            assert mine.status_code == theirs.status_code, (body, mine.text, theirs.text)
            assert mine.content == theirs.content, body
            assert mine.headers.get("x-request-id") == theirs.headers.get("x-request-id")
            assert mine.headers["content-type"] == theirs.headers["content-type"]
            statuses.add(mine.status_code)
        assert statuses == {200, 400, 422}
        assert raw.raw.stats.batches == len(bodies)  # every one went through the child
        assert raw.batcher.stats.batches == 0


def customer_infer_requests(packages: Packages) -> list[tuple[bytes, dict[str, str]]]:
    """Good and bad OIP infer requests (body, headers) for the customers model: JSON and
    binary tensors, with and without an id, asking for some outputs or an unknown one."""
    import json

    rows = packages.customers_x.head(3)
    types = {"age": "INT64", "visits": "INT64", "income": "FP64", "city": "BYTES",
             "plan": "BYTES"}
    tensors = oip_columns(rows, types)
    plain = {"inputs": tensors}
    unknown = {"inputs": [{**t, "data": ["platinum"] * 3} if t["name"] == "plan" else t
                          for t in tensors]}
    short = {"inputs": [{**t, "shape": [4]} if t["name"] == "age" else t for t in tensors]}
    mistyped = {"inputs": [{**t, "datatype": "FP32"} if t["name"] == "city" else t
                           for t in tensors]}
    requests = [({**plain, "id": "body-id"}, {}), (plain, {}),
                ({**plain, "outputs": [{"name": "label"}]}, {}),
                ({**plain, "outputs": [{"name": "nope"}]}, {}),
                (unknown, {}), (short, {}), (mistyped, {}), ({"inputs": tensors[:2]}, {}),
                ({"id": "x"}, {}), ({**plain, "id": 7}, {}), ({**plain, "id": ""}, {}),
                # bad input of issue 13: a 4xx naming it, the same on both paths
                ({"inputs": [{**t, "shape": [True]} if t["name"] == "age" else t
                             for t in tensors]}, {}),
                ({"inputs": [*tensors, tensors[0]]}, {}),  # an input given twice
                ({"inputs": [{**t, "data": [1e30] * 3} if t["name"] == "age" else t
                             for t in tensors]}, {}),
                ({"inputs": [{**t, "data": [-2.5, 1.0, 2.0]} if t["name"] == "visits" else t
                             for t in tensors]}, {})]
    out = [(json.dumps(body).encode(), headers) for body, headers in requests]
    numeric = [(c, types[c], [3], le_bytes(rows[c].to_numpy(), "int64" if types[c] == "INT64"
                                              else "float64"))
               for c in ("age", "income", "visits")]
    strings = [t for t in tensors if t["datatype"] == "BYTES"]
    body, headers = binary_request(numeric, {"id": "binary-id"})
    head = json.loads(body[:int(headers["Inference-Header-Content-Length"])])
    head["inputs"] += strings  # JSON tensors beside binary ones
    head_bytes = json.dumps(head).encode()
    out.append((head_bytes + body[int(headers["Inference-Header-Content-Length"]):],
                {**headers, "Inference-Header-Content-Length": str(len(head_bytes))}))
    # no Inf in JSON, so none in binary tensors either: a 422 naming the input
    infinite, cut = binary_request([(c, d, shape, le_bytes(np.full(3, np.inf), "float64")
                                     if c == "income" else raw) for c, d, shape, raw in numeric])
    out.append((head_bytes + infinite[int(cut["Inference-Header-Content-Length"]):],
                {**headers, "Inference-Header-Content-Length": str(len(head_bytes))}))
    out.append((body, {**headers, "Inference-Header-Content-Length": "5"}))  # cut mid-JSON
    out.append((body, {**headers, "Inference-Header-Content-Length": "99999"}))  # past the end
    out.append((b"{not json", {}))
    out.append((b"", {}))
    return out


def test_the_process_answers_infer_requests_as_the_server_would(serve: Callable[..., Any],
                                                                packages: Packages) -> None:
    """OIP infer requests take the raw path too: the child reads the JSON (and binary
    tensors), validates, predicts and encodes; every answer, good or bad, equals the
    in-process path's byte for byte, with the same status and headers, and the id the
    answer names (the body's, else X-Request-Id) is the one the log keeps."""
    requests = customer_infer_requests(packages)
    with serve(endpoint("raw", packages.customers, unknown_categories="reject"),
               endpoint("thread", packages.customers, unknown_categories="reject",
                        inference="thread")) as s:
        raw = s.plane.endpoints["raw"].current
        assert raw is not None and raw.raw is not None
        statuses = []
        for i, (body, headers) in enumerate(requests):
            answers = [s.client.post(f"/v2/models/{name}/infer", content=body,
                                     headers={"x-request-id": f"same-{i}", **headers})
                       for name in ("raw", "thread")]
            mine, theirs = answers
            assert mine.status_code == theirs.status_code, (body, mine.text, theirs.text)
            # the answer names its endpoint: the same bytes once the names are swapped
            assert mine.content == theirs.content.replace(b'"thread"', b'"raw"'), body
            assert mine.headers.get("x-request-id") == theirs.headers.get("x-request-id")
            assert mine.headers["content-type"] == theirs.headers["content-type"]
            statuses.append(mine.status_code)
        # the header-length error is answered before the process sees the body
        assert raw.raw.stats.batches == len(requests) - 1
        assert raw.batcher.stats.batches == 0
        no_id = s.client.post("/v2/models/raw/infer", content=requests[1][0])
        assert no_id.status_code == 200
        made_up = no_id.json()["id"]
        assert made_up and no_id.headers["x-request-id"] == made_up
    assert set(statuses) == {200, 400, 422}
    assert statuses[:4] == [200, 200, 200, 400]
    assert statuses[11:17] == [422, 422, 422, 422, 200, 422]  # issue 13's bad input; Inf
    ids = Counter(read_log(s.log_dir, "raw")["request_id"].to_pylist())
    assert {"body-id", "same-1", "same-2", "binary-id", made_up} <= set(ids)
    assert "same-0" not in ids and "same-3" not in ids  # the body's id; a 400 is not logged
    assert ids["body-id"] == 3  # one log row per row of the request


@settings(max_examples=60, deadline=None)
@given(requests=st.lists(st.one_of(
    st.tuples(st.lists(st.sampled_from([1.0, 2.5, -3.0, 13.0]), min_size=1, max_size=5),
              st.booleans()),
    st.sampled_from([b"{bad", b'{"inputs": {"x": ["a"]}}', b'{"inputs": {"y": [1.0]}}'])),
    min_size=1, max_size=12), max_rows=st.integers(1, 6))
def test_a_raw_batch_answers_each_request_with_its_own_rows(
        picky_model: Any, requests: list[tuple[list[float], bool] | bytes],
        max_rows: int) -> None:
    """Any mix of request sizes, simple-JSON and OIP infer requests, bad bodies and requests
    the model fails on (13): each request gets exactly its own answer in its own protocol,
    a bad one never fails its batch-mates, no model call is larger than ``max_rows`` unless
    one request alone is, and the rows kept for the log are exactly the answered requests'
    rows, in order."""
    import json

    from shipyard.runtimes.raw_child import answer_batch

    bodies, infer = [], []
    for i, r in enumerate(requests):
        if isinstance(r, bytes):
            bodies.append(r)
        elif r[1]:  # an infer request naming its own id
            infer.append([i, None])
            bodies.append(json.dumps({"id": f"oip{i}", "inputs": [
                {"name": "x", "shape": [len(r[0])], "datatype": "FP64", "data": r[0]}]}).encode())
        else:
            bodies.append(json.dumps({"inputs": {"x": r[0]}}).encode())
    ids = [f"id{i}" for i in range(len(bodies))]
    answer = answer_batch(picky_model, {"request_ids": ids, "model": "picky", "version": 3,
                                        "endpoint": "ep", "unknown": "pass",
                                        "max_rows": max_rows, "infer": infer},
                          [memoryview(b) for b in bodies])
    assert answer.ids == {str(i): f"oip{i}" for i, _ in infer}
    logged_x: list[float] = []
    next_row = 0
    for i, request in enumerate(requests):
        status, body = answer.statuses[i], json.loads(answer.bodies[i])
        if isinstance(request, bytes):
            assert status == (400 if request == b"{bad" else 422) and "error" in body
            assert answer.ranges[i] is None
            continue
        values, as_infer = request
        if 13.0 in values:
            assert status == 500 and body == {"error": "internal error: RemoteModelError"}
            assert answer.ranges[i] is None
            continue
        assert status == 200, body
        expected = [2 * x for x in values]
        if as_infer:
            assert body == {"model_name": "ep", "model_version": "3", "id": f"oip{i}",
                            "outputs": [{"name": "prediction", "shape": [len(values)],
                                         "datatype": "FP64", "data": expected}]}
        else:
            assert body == {"predictions": expected, "model": "picky", "version": 3,
                            "request_id": ids[i]}
        assert answer.ranges[i] == (next_row, next_row + len(values))
        next_row += len(values)
        logged_x += values
    valid_rows = [len(r[0]) for r in requests if not isinstance(r, bytes)]
    assert sum(answer.calls) == sum(valid_rows)
    assert all(c <= max_rows or c in valid_rows for c in answer.calls)
    if logged_x:
        np.testing.assert_array_equal(answer.inputs["x"], logged_x)
        np.testing.assert_array_equal(answer.outputs["prediction"], np.array(logged_x) * 2)
    else:
        assert answer.inputs == {} and answer.outputs == {}


@pytest.fixture(scope="module")
def picky_model(picky: Path) -> Any:
    from shipyard.runtimes.model import load

    return load(picky, trust=True, runtime=None)


@pytest.mark.parametrize("inference", ["process", "thread"])
def test_a_log_sample_rate_logs_that_share_of_requests_whole(
        serve: Callable[..., Any], packages: Packages, inference: str) -> None:
    """``log_sample_rate`` keeps a random share of the answered requests, each with all its
    rows and its own inputs; 0 logs nothing. (Raw batches and in-thread batches each decide
    per request.)"""
    rows = packages.iris_x.head(2).to_dict("records")
    with serve(endpoint("half", packages.iris, log_sample_rate=0.5, inference=inference),
               endpoint("none", packages.iris, log_sample_rate=0.0, inference=inference)) as s:
        for i in range(200):
            for name in ("half", "none"):
                r = s.client.post(f"/v1/endpoints/{name}/predict",
                                  headers={"x-request-id": f"{name}-{i}"},
                                  json={"instances": rows})
                assert r.status_code == 200, r.text
    logged = read_log(s.log_dir, "half").to_pandas()
    ids = logged["request_id"].unique()
    assert 50 <= len(ids) <= 150  # Binomial(200, 0.5): mean 100, sd ~7
    assert set(ids) <= {f"half-{i}" for i in range(200)}
    assert (logged.groupby("request_id").size() == 2).all()  # whole requests
    np.testing.assert_allclose(logged.sort_values(["request_id", "row"])["input.sepal length (cm)"],
                               [r["sepal length (cm)"] for _ in ids for r in rows])
    with pytest.raises(shipyard.ShipyardError):
        read_log(s.log_dir, "none")  # nothing was ever written for it


def test_the_server_keeps_only_the_manifest_of_a_model_its_process_runs(
        serve: Callable[..., Any], packages: Packages) -> None:
    """With ``inference: process`` the runtime (and the model's memory) lives only in the
    inference process; the server reads the manifest for validation and metadata. Both modes
    still answer every route."""
    row = packages.iris_x.iloc[:2]
    with serve(endpoint("proc", packages.iris),
               endpoint("thread", packages.iris, inference="thread")) as s:
        proc, thread = s.plane.endpoints["proc"].current, s.plane.endpoints["thread"].current
        assert proc is not None and thread is not None
        assert type(proc.model) is VerifiedPackage and not hasattr(proc.model, "runtime")
        assert isinstance(thread.model, LoadedModel)
        expected = local(packages.iris, row).predictions.tolist()
        oip = {"inputs": [{"name": c, "shape": [2], "datatype": "FP64",
                           "data": row[c].tolist()} for c in row.columns]}
        for name in ("proc", "thread"):
            meta = s.client.get(f"/v2/models/{name}").json()
            assert meta["platform"] == "shipyard_onnx"
            simple = s.client.post(f"/v1/endpoints/{name}/predict",
                                   json={"instances": row.to_dict("records")})
            assert simple.status_code == 200 and simple.json()["predictions"] == expected
            infer = s.client.post(f"/v2/models/{name}/infer", json=oip)
            assert infer.status_code == 200, infer.text
            assert infer.json()["outputs"][0]["data"] == expected


def test_the_server_leaves_verifying_the_model_files_to_the_process(
        serve: Callable[..., Any], packages: Packages, tmp_path: Path) -> None:
    """``describe(model_files=False)`` (the server's read) skips the runtimes' files, which
    the inference process verifies as it loads them: a tampered model file still never
    takes traffic, and the error names it; every other file is still checked here."""
    import shutil

    from shipyard.errors import TamperedFileError
    from shipyard.runtimes.model import describe

    path = tmp_path / "iris"
    shutil.copytree(packages.iris, path)
    (path / "model.onnx").write_bytes((path / "model.onnx").read_bytes()[::-1])
    assert describe(path, model_files=False).runtime_name == "onnx"
    with pytest.raises(TamperedFileError, match=re.escape("model.onnx")):
        describe(path)
    with serve(endpoint("iris", path)) as s:
        ep = s.plane.endpoints["iris"]
        assert ep.current is None
        assert ep.last_error is not None and "model.onnx" in ep.last_error, ep.last_error
    profile = path / describe(packages.iris).manifest.reference_profile
    profile.write_bytes(profile.read_bytes()[::-1])
    with pytest.raises(TamperedFileError, match=re.escape(profile.name)):
        describe(path, model_files=False)


def test_a_model_its_process_cannot_load_never_takes_traffic(serve: Callable[..., Any],
                                                            tmp_path: Path) -> None:
    """The server no longer loads the runtime itself: a package only its inference process
    can refuse (a pickle without ``trust``) still never takes traffic, and says why."""
    x, y = load_iris(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)
    path = shipyard.package(model, x, name="hgb", format="native").save(tmp_path / "hgb")
    body = {"inputs": {"input": [x[0].tolist()]}}
    with serve(endpoint("hgb", path)) as s:
        ep = s.plane.endpoints["hgb"]
        assert ep.current is None
        assert ep.last_error is not None and "trust" in ep.last_error, ep.last_error
        assert s.client.get("/v2/health/ready").status_code == 503
        refused = s.client.post("/v1/endpoints/hgb/predict", json=body)
        assert refused.status_code == 503 and "no model loaded" in refused.json()["error"]
        assert refused.headers["retry-after"]
    with serve(endpoint("hgb", path, trust=True)) as s:
        answer = s.client.post("/v1/endpoints/hgb/predict", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == model.predict(x[:1]).tolist()


def test_a_raw_batch_whose_bodies_are_not_wanted_answers_statuses_and_rows_only(
        picky_model: Any) -> None:
    """Shadow copies' spec says ``bodies`` False: the same statuses, rows, calls and logged
    rows as with bodies, and no 200 answer is encoded (its body is empty)."""
    import json

    from shipyard.runtimes.raw_child import answer_batch

    bodies = [json.dumps({"inputs": {"x": [1.0, 2.0]}}).encode(), b"{bad",
              json.dumps({"inputs": {"x": [13.0]}}).encode(),
              json.dumps({"inputs": {"x": [3.0]}}).encode()]
    spec = {"request_ids": ["a", "b", "c", "d"], "model": "picky", "version": 3,
            "endpoint": "ep", "unknown": "pass", "max_rows": 8}
    full = answer_batch(picky_model, spec, [memoryview(b) for b in bodies])
    bare = answer_batch(picky_model, {**spec, "bodies": False},
                        [memoryview(b) for b in bodies])
    assert bare.statuses == full.statuses == [200, 400, 500, 200]
    assert bare.ranges == full.ranges == [(0, 2), None, None, (2, 3)]
    assert bare.calls == full.calls
    for name in full.outputs:
        assert bare.outputs[name].tolist() == full.outputs[name].tolist() == [2.0, 4.0, 6.0]
    assert bare.inputs["x"].tolist() == full.inputs["x"].tolist() == [1.0, 2.0, 3.0]
    assert [bare.bodies[i] for i in (0, 3)] == [b"", b""]
    assert json.loads(full.bodies[3])["predictions"] == [6.0]
