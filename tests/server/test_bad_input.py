"""Bad input is a 4xx naming the problem, never a 500 and never a silently changed number,
on both paths: in the server process (``inference: thread``) and in the inference process
(``inference: process``, which parses and validates raw bodies itself)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

import shipyard
from server.helpers import endpoint
from shipyard.errors import InputValidationError
from shipyard.packaging import validation
from shipyard.packaging.signature import ColumnSpec, Signature
from shipyard.protocol.http_errors import PayloadTooLargeError
from shipyard.server.asgi import read_body

TYPES = {"small": "UINT8", "big": "INT64", "f": "FP32"}


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regression over a uint8, an int64 and a float32 column (dtypes kept in the
    signature)."""
    x = pd.DataFrame({"small": np.array([1, 2, 3, 200], dtype=np.uint8),
                      "big": np.array([1, 2, 3, 4], dtype=np.int64),
                      "f": np.array([0.5, 1.5, 2.5, 3.0], dtype=np.float32)})
    model = LinearRegression().fit(x, [1.0, 2.0, 3.0, 4.0])
    path = tmp_path_factory.mktemp("typed") / "typed"
    package = shipyard.package(model, x, name="typed")
    assert [c.dtype for c in package.signature.inputs] == ["uint8", "int64", "float32"]
    return package.save(path)


def _tensor(name: str, data: Any, **changes: Any) -> dict[str, Any]:
    return {"name": name, "shape": [1], "datatype": TYPES[name], "data": data, **changes}


def _oip(**columns: Any) -> dict[str, Any]:
    good = {"small": [1], "big": [1], "f": [1.0]}
    return {"inputs": [_tensor(n, columns.get(n, v)) for n, v in good.items()]}


def _binary(column: str, value: float) -> tuple[bytes, dict[str, str]]:
    """An infer request whose ``column`` (FP32) is one binary value."""
    tensors = [_tensor(n, v) for n, v in (("small", [1]), ("big", [1]))]
    tensors.append({"name": column, "shape": [1], "datatype": "FP32",
                    "parameters": {"binary_data_size": 4}})
    head = json.dumps({"inputs": tensors}).encode()
    return (head + np.array([value], "<f4").tobytes(),
            {"inference-header-content-length": str(len(head))})


def _json(body: Any) -> tuple[bytes, dict[str, str]]:
    return json.dumps(body).encode(), {"content-type": "application/json"}


PREDICT = "/v1/endpoints/{}/predict"
INFER = "/v2/models/{}/infer"
# (route, (body, headers), status, what the error names)
CASES: list[tuple[str, tuple[bytes, dict[str, str]], int, list[str]]] = [
    (PREDICT, _json({"inputs": {"small": [-1], "big": [1], "f": [1.0]}}), 422,
     ["small", "value -1 does not fit uint8"]),
    (PREDICT, _json({"inputs": {"small": [1], "big": [1e30], "f": [1.0]}}), 422,
     ["big", "value 1e+30 does not fit int64"]),
    (PREDICT, _json({"inputs": {"small": [1], "big": [2**70], "f": [1.0]}}), 422,
     ["big", "does not fit int64"]),
    (PREDICT, _json({"inputs": {"small": [1], "big": [1], "f": [1e300]}}), 422,
     ["f", "value 1e+300 does not fit float32"]),
    (PREDICT, _json({"instances": [[1, 1e30, 1.0]]}), 422, ["big", "1e+30"]),
    (PREDICT, _json({"dataframe_split": {"columns": ["small", "small", "big", "f"],
                                         "data": [[1, 2, 3, 4.0]]}}), 400,
     ["'small' more than once"]),
    (INFER, _json(_oip(small=[-1])), 422, ["small", "value -1 does not fit uint8"]),
    (INFER, _json(_oip(big=[1e30])), 422, ["big", "value 1e+30 does not fit int64"]),
    (INFER, _json(_oip(big=[1.5])), 422, ["big", "value 1.5 is not an integer"]),
    (INFER, _json(_oip(big=[2**70])), 422, ["big", "does not fit int64"]),  # orjson: a float
    (INFER, _json(_oip(f=[1e300])), 422, ["f", "value 1e+300 does not fit float32"]),
    (INFER, _json({"inputs": [{**t, "shape": [True]} if t["name"] == "f" else t
                              for t in _oip()["inputs"]]}), 422, ["f", "'shape'"]),
    (INFER, _json({"inputs": [*_oip()["inputs"], _tensor("big", [2])]}), 422,
     ["big", "given more than once"]),
    (INFER, _json({"inputs": [_tensor("big", [1], datatype=["INT64"]),
                              *_oip()["inputs"][::2]]}), 422, ["big", "unknown datatype"]),
    (INFER, _json({"inputs": [_tensor("big", [1], datatype={}), *_oip()["inputs"][::2]],
                   "parameters": {}}), 422, ["big", "unknown datatype"]),
    (INFER, _json({**_oip(), "outputs": [{"name": ["value"]}]}), 400,
     ["unknown requested outputs"]),
    (INFER, _json({**_oip(), "outputs": [{"name": {"value": 1}}, {"name": 2}]}), 400,
     ["unknown requested outputs"]),
    (INFER, _binary("f", float("inf")), 422, ["f", "value inf is not a finite number"]),
    (INFER, _binary("f", float("-inf")), 422, ["f", "value -inf is not a finite number"]),
    (INFER, _binary("f", float("nan")), 422, ["f", "missing value"]),  # NaN is JSON's null
    (INFER, (b'{"inputs": []}', {"inference-header-content-length": "9" * 5000}), 400,
     ["Inference-Header-Content-Length"]),
    ("/v2/models/{}/versions/" + "9" * 5000 + "/infer", _json(_oip()), 404,
     ["is not a positive integer"]),
]


def test_bad_numbers_and_tensors_are_4xx_on_both_paths(serve: Callable[..., Any],
                                                       typed: Path) -> None:
    with serve(endpoint("raw", typed), endpoint("thread", typed, inference="thread")) as s:
        assert s.plane.endpoints["raw"].current.raw is not None  # type: ignore[union-attr]
        for route, (body, headers), status, named in CASES:
            mine, theirs = (s.client.post(route.format(name), content=body, headers=headers)
                            for name in ("raw", "thread"))
            case = (route[:40], body[:120])
            assert mine.status_code == theirs.status_code == status, (case, mine.text)
            assert mine.content == theirs.content, case
            error = mine.json()["error"]
            assert all(text in error for text in named), (case, error)
            assert len(error) < 1000, case  # a 5,000-digit number is not echoed back
        good = s.client.post(INFER.format("raw"), json=_oip(small=[255], big=[-2**63]))
        assert good.status_code == 200, good.text  # the edges of each range still fit


def test_a_content_length_of_5000_digits_is_413() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    with pytest.raises(PayloadTooLargeError, match="over the 100-byte limit"):
        asyncio.run(read_body(receive, b"9" * 5000, 100))


NUMBERS = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([255, 256, -1, 2**63 - 1, 2**63, -(2**63), 1e300, 3.5e38]))
DTYPES = ["int8", "uint8", "int32", "int64", "uint64", "float16", "float32", "float64"]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(NUMBERS, min_size=1, max_size=4), want=st.sampled_from(DTYPES),
       as_array=st.booleans())
def test_prepare_refuses_a_number_rather_than_change_it(values: list[Any], want: str,
                                                        as_array: bool) -> None:
    """Whatever the numbers, ``prepare`` either refuses them naming the column and a value,
    or returns exactly those numbers (floats rounded to the dtype's precision, never wrapped,
    clipped or turned into inf). ``as_array`` takes the fast path for plain numeric arrays."""
    signature = Signature(kind="tabular", inputs=(ColumnSpec("x", want),))
    data: Any = {"x": values}
    if as_array:
        try:
            data = np.asarray(values)  # float64, int64, uint64 or object (past 64 bits)
        except OverflowError:
            return
    try:
        got = validation.prepare(data, signature)["x"]
    except InputValidationError as exc:
        assert [p.field for p in exc.problems] == ["x"]
        assert "does not fit" in str(exc) or "non-integer" in str(exc) or "expected" in str(exc)
        return
    assert got.dtype == np.dtype(want)
    if got.dtype.kind in "iu":  # ints mixed with floats travel as float64 (JSON numbers)
        mixed = any(isinstance(v, float) for v in values)
        assert got.tolist() == [int(float(v)) if mixed else int(v) for v in values]
    else:
        assert np.isfinite(got).all()
        expected = np.asarray([float(v) for v in values])
        info = np.finfo(got.dtype)
        np.testing.assert_allclose(got.astype(np.float64), expected, rtol=info.eps,
                                   atol=info.tiny)  # underflow is no overflow
