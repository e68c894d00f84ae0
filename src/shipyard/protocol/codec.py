"""Request bodies -> data for ``prepare()``, and outputs -> response bodies.

Transports only translate: validation against the signature happens in ``prepare`` (every
problem listed), inference in the data plane.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson

from shipyard.errors import InputValidationError, Problem, RequestError
from shipyard.packaging import Signature
from shipyard.packaging.casting import cast
from shipyard.types import Array, Columns

if TYPE_CHECKING:
    from shipyard.packaging.validation import UnknownCategories


class Preparer(Protocol):
    """What ``prepare`` needs of a model (``runtimes.model.VerifiedPackage`` is one): the
    runtimes sit above this module, so it names the method, not their class."""

    def prepare(self, data: Any, *, unknown_categories: UnknownCategories = ...,
                finite: bool = ...) -> Columns: ...


class BadRequestError(RequestError):
    """The body is not a request we can read (malformed JSON, wrong envelope, ...)."""


def loads(body: bytes | memoryview) -> Any:
    if not body:
        raise BadRequestError("empty request body: send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"malformed JSON: {exc}") from None


def prepare(model: Preparer, data: Any, unknown: UnknownCategories, *,
            finite: bool = False) -> Columns:
    """``model.prepare``; values numpy cannot hold as columns at all (ragged nested lists
    such as ``{"a": [1, [2, 3]]}``) are a bad request, not an internal error."""
    try:
        return model.prepare(data, unknown_categories=unknown, finite=finite)
    except ValueError as exc:
        raise BadRequestError(f"the input values do not form columns: {exc}") from None


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


# -- simple JSON API -------------------------------------------------------------------------

SIMPLE_KEYS = ("inputs", "instances", "dataframe_split", "dataframe_records")


def simple_request(payload: Any) -> Any:
    """``{"inputs": {col: [...]}}``, ``{"instances": [...]}`` or MLflow's ``dataframe_split``
    / ``dataframe_records``, as something ``prepare`` accepts."""
    if not isinstance(payload, dict):
        raise BadRequestError(f"the body must be a JSON object with one of {list(SIMPLE_KEYS)}")
    if len(payload) == 1:  # the usual body: rows of plain numbers skip the checks below
        value = payload.get("instances", payload.get("inputs"))
        if type(value) is list and value and type(value[0]) is list:
            try:
                arr = np.asarray(value)
            except ValueError:  # ragged: the general path says which way
                pass
            else:
                if arr.dtype.kind in "fiub":
                    return arr
    keys = [k for k in SIMPLE_KEYS if k in payload]
    unknown = sorted(set(payload) - set(SIMPLE_KEYS) - {"parameters", "id"})
    if len(keys) != 1 or unknown:
        raise BadRequestError(f"the body needs exactly one of {list(SIMPLE_KEYS)}"
                         + (f"; unknown keys {unknown}" if unknown else ""))
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _dataframe_split(value)
    if key == "dataframe_records" or key == "instances":
        if not isinstance(value, list) or not value:
            raise BadRequestError(f"{key!r} must be a non-empty list of rows")
        if all(isinstance(r, dict) for r in value):
            return value
        return _rectangular(value, key)
    if isinstance(value, dict):
        for name, column in value.items():
            if not isinstance(column, list):
                raise BadRequestError(f"inputs[{name!r}] must be a list of values, one per row")
        return value
    if isinstance(value, list) and value:
        if all(isinstance(r, dict) for r in value):
            return value
        return _rectangular(value, key)
    raise BadRequestError("'inputs' must be an object of columns or a non-empty list of rows")


def _rectangular(rows: list[Any], key: str) -> Array:
    """Rows of values as a 2-D array; mixed numbers and strings stay objects for validation."""
    if _ragged(rows):
        raise BadRequestError(f"{key!r} rows have different lengths")
    try:
        arr = np.asarray(rows)
    except ValueError as exc:
        raise BadRequestError(f"{key!r} is not a rectangular list of rows: {exc}") from None
    if arr.dtype.kind in "US":
        arr = np.asarray(rows, dtype=object)
    return arr


def _ragged(rows: list[Any]) -> bool:
    lengths = {len(r) if isinstance(r, list) else -1 for r in rows}
    return len(lengths) > 1


def _dataframe_split(value: Any) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or "columns" not in value or "data" not in value:
        raise BadRequestError("'dataframe_split' needs 'columns' and 'data'")
    columns, data = value["columns"], value["data"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadRequestError("'dataframe_split.columns' must be a list of names")
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise BadRequestError(f"'dataframe_split.columns' names {', '.join(map(repr, twice))} "
                              "more than once")
    if not isinstance(data, list) or not data:
        raise BadRequestError("'dataframe_split.data' must be a non-empty list of rows")
    out: dict[str, list[Any]] = {c: [] for c in columns}
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise BadRequestError(f"'dataframe_split.data' row {i} must have {len(columns)} values")
        for c, v in zip(columns, row, strict=True):
            out[c].append(v)
    return out


def simple_responses(outputs: Columns, signature: Signature, *, model: str, version: int,
                     request_ids: Sequence[str],
                     bounds: Sequence[tuple[int, int]]) -> list[bytes]:
    """For requests whose rows are ``bounds`` of one call's ``outputs``: the answer
    ``simple_response`` gives each request's own rows. A classifier's labels and
    probabilities become Python values once per call, not once per request."""
    plain = _plain_classifier(outputs, signature)
    if plain is None:
        return [simple_response({k: v[a:b] for k, v in outputs.items()}, signature,
                                model=model, version=version, request_id=request_id)
                for request_id, (a, b) in zip(request_ids, bounds, strict=True)]
    labels, probabilities = plain
    return [orjson.dumps({"predictions": labels[a:b], "probabilities": probabilities[a:b],
                          "model": model, "version": version, "request_id": request_id})
            for request_id, (a, b) in zip(request_ids, bounds, strict=True)]


def _plain_classifier(outputs: Columns,
                      signature: Signature) -> tuple[list[Any], list[dict[str, Any]]] | None:
    """A classifier's integer (or bool) labels and its probabilities per class name, as
    Python values (they serialise as the numpy values would); None for other outputs."""
    names = signature.class_names
    if len(outputs) == 2 and names is not None:
        label, proba = outputs.get("label"), outputs.get("probabilities")
        if label is not None and proba is not None and label.dtype.kind in "iub":
            return label.tolist(), _per_class(proba, names)
    return None


def _per_class(proba: Array, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each row's probabilities as ``{class name: probability}`` (``Signature.class_names``:
    computed once per model; a cache keyed by the labels mixed up 0, 0.0 and False, which
    compare and hash equal)."""
    return [dict(zip(names, row, strict=True)) for row in proba.tolist()]


def simple_response(outputs: Columns, signature: Signature, *, model: str, version: int,
                    request_id: str) -> bytes:
    plain = _plain_classifier(outputs, signature)
    if plain is not None:
        return orjson.dumps({"predictions": plain[0], "probabilities": plain[1],
                             "model": model, "version": version, "request_id": request_id})
    names = signature.class_names
    if len(outputs) == 2 and names is not None:
        label, proba = outputs.get("label"), outputs.get("probabilities")
        if label is not None and proba is not None and label.dtype.kind == "f":
            return dumps({"predictions": label,
                          "probabilities": _per_class(proba, names),
                          "model": model, "version": version, "request_id": request_id})
    body: dict[str, Any] = {}
    shown = ("label" if "label" in outputs else "value" if "value" in outputs
             else next(iter(outputs)))
    body["predictions"] = _plain(outputs[shown])
    proba = outputs.get("probabilities")
    if proba is not None and names is not None:
        body["probabilities"] = _per_class(proba, names)
    # every other output, also when the first one stands in for the predictions
    extra = {k: v for k, v in outputs.items()
             if k not in ("label", "value", "probabilities", shown)}
    if extra:
        body["outputs"] = {k: _plain(v) for k, v in extra.items()}
    body.update(model=model, version=version, request_id=request_id)
    return dumps(body)


def _plain(obj: Any) -> Any:
    """numpy object arrays (strings, None) are not serialisable by orjson's numpy option."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "OUM":
            return [None if v is None else str(v) if obj.dtype.kind == "M" else v
                    for v in obj.tolist()]
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


# -- Open Inference Protocol -----------------------------------------------------------------

OIP_TYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32",
    "uint64": "UINT64", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "string": "BYTES",
    "datetime": "BYTES",
}
NUMPY_OF = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}


def oip_type(dtype: str) -> str:
    return OIP_TYPES.get(dtype, "BYTES")


def split_binary(raw: bytes | memoryview, cut: int | None) -> tuple[Any, bytes]:
    """The JSON header and the binary tensor data of an infer request whose JSON header
    ends at byte ``cut`` (Inference-Header-Content-Length; None: the whole body is JSON)."""
    if cut is None:
        return loads(raw), b""
    return loads(raw[:cut]), bytes(raw[cut:])


MAX_ID_LENGTH = 256  # characters of a request id a client may choose (it is echoed, logged)


def check_request_id(request_id: str | bytes, what: str) -> None:
    """BadRequestError past :data:`MAX_ID_LENGTH`: an id is echoed in a response header and
    stored with every logged row, so a client must not make it megabytes long."""
    if len(request_id) > MAX_ID_LENGTH:
        raise BadRequestError(f"{what} is {len(request_id)} characters long; at most "
                              f"{MAX_ID_LENGTH}")


def oip_id(header: Any, fallback: str | None) -> str | None:
    """An infer request's id: the body's ``id`` when it is a non-empty string, else
    ``fallback`` (the X-Request-Id header)."""
    rid = header.get("id") if isinstance(header, dict) else None
    if isinstance(rid, str) and rid:
        check_request_id(rid, "the request's 'id'")
        return rid
    return fallback


def oip_request(header: Any, binary: bytes, signature: Signature) -> tuple[Columns, Any]:
    """Inputs of an infer request (JSON data or the binary-data extension) as columns."""
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise BadRequestError("an infer request needs an 'inputs' list")
    columns: Columns = {}
    problems: list[Problem] = []
    seen: set[str] = set()
    offset = 0
    for i, tensor in enumerate(header["inputs"]):
        if not isinstance(tensor, dict):
            raise BadRequestError(f"inputs[{i}] must be an object")
        name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        if not isinstance(name, str):
            raise BadRequestError(f"inputs[{i}] needs a 'name'")
        if name in seen:
            problems.append(Problem(name, "this input is given more than once"))
            continue
        seen.add(name)
        if (not isinstance(shape, list) or not shape  # JSON true is no dimension
                or not all(type(d) is int and d >= 0 for d in shape)):
            problems.append(Problem(name, "'shape' must be a list of non-negative integers"))
            continue
        if not isinstance(datatype, str) or (datatype not in NUMPY_OF and datatype != "BYTES"):
            problems.append(Problem(name, f"unknown datatype {datatype!r}"))
            continue
        params = tensor.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        try:
            if size is not None:
                if type(size) is not int or size < 0 or offset + size > len(binary):
                    raise BadRequestError(f"input {name!r}: binary_data_size {size!r} does not fit "
                                     "the body")
                flat = _from_binary(binary[offset:offset + size], datatype)
                offset += size
            elif "data" in tensor:
                flat = _from_json(tensor["data"], datatype)
            else:
                raise BadRequestError(f"input {name!r} has neither 'data' nor binary data")
        except (ValueError, TypeError, OverflowError) as exc:
            problems.append(Problem(name, f"data does not match datatype {datatype}: {exc}"))
            continue
        if isinstance(flat, str):  # a value the datatype cannot hold
            problems.append(Problem(name, f"data does not match datatype {datatype}: {flat}"))
            continue
        expected = math.prod(shape)
        if flat.size != expected:
            problems.append(Problem(name, f"shape {shape} holds {expected} values, got "
                                          f"{flat.size}"))
            continue
        columns[name] = _shape_for(flat.reshape(shape), name, signature)
    if problems:
        raise InputValidationError(problems)
    return columns, header.get("outputs")


def _shape_for(arr: Array, name: str, signature: Signature) -> Array:
    """Tabular columns travel as [N] or [N, 1]; both mean one value per row."""
    if signature.kind == "tabular" and arr.ndim == 2 and arr.shape[1] == 1:
        return arr[:, 0]
    return arr


def _from_json(data: Any, datatype: str) -> Array | str:
    """The tensor's values in ``datatype``, or a message naming one it cannot hold (numpy
    would wrap, truncate or overflow it: -1 into UINT8, 1.5 into INT64, 1e300 into FP32)."""
    if datatype == "BYTES":
        return np.asarray(data, dtype=object).ravel()
    want: np.dtype[Any] = np.dtype(NUMPY_OF[datatype])
    if want.kind == "f":  # null becomes NaN: a missing value, as in the simple API
        return cast(np.asarray(data, dtype=np.float64).ravel(), want)
    if want.kind in "iu":
        arr: Array = np.asarray(data).ravel()
        if arr.dtype.kind in "iuf":
            return _integers(arr, want)
        if arr.dtype.kind == "O" and all(type(v) is int for v in arr):  # past 64 bits
            info = np.iinfo(want)
            for v in arr:
                if not info.min <= v <= info.max:
                    return f"value {v} does not fit {want.name} ({info.min} to {info.max})"
    return np.asarray(data, dtype=want).ravel()


def _integers(arr: Array, want: np.dtype[Any]) -> Array | str:
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            return f"null in a {want.name} tensor (integers cannot be missing)"
        fraction = arr != np.round(arr)
        if fraction.any():
            return f"value {arr[fraction][0].item()!r} is not an integer"
    return cast(arr, want)


def _from_binary(raw: bytes, datatype: str) -> Array | str:
    if datatype != "BYTES":
        dtype = np.dtype(NUMPY_OF[datatype]).newbyteorder("<")
        if len(raw) % dtype.itemsize:
            raise ValueError(f"{len(raw)} bytes is not a whole number of {datatype}")
        arr: Array = np.frombuffer(raw, dtype=dtype).astype(NUMPY_OF[datatype])
        # as in JSON, which has no Infinity (NaN reads as a missing value, as null does)
        if arr.dtype.kind == "f" and np.isinf(arr).any():
            return f"value {arr[np.isinf(arr)][0].item()!r} is not a finite number"
        return arr
    values: list[str] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ValueError("truncated BYTES element")
        length = int.from_bytes(raw[pos:pos + 4], "little")
        pos += 4
        if pos + length > len(raw):
            raise ValueError("truncated BYTES element")
        values.append(raw[pos:pos + length].decode("utf-8", errors="replace"))
        pos += length
    return np.asarray(values, dtype=object)


def oip_response(outputs: Columns, *, model: str, version: int, request_id: str,
                 requested: Any = None) -> bytes:
    names = list(outputs)
    if isinstance(requested, list) and requested:
        wanted = [o.get("name") for o in requested if isinstance(o, dict)]
        unknown = [w for w in wanted if not isinstance(w, str) or w not in outputs]
        if unknown:
            raise BadRequestError(f"unknown requested outputs {unknown}; the model has {names}")
        names = [str(w) for w in wanted]
    tensors = []
    for name in names:
        arr = outputs[name]
        datatype = "BYTES" if arr.dtype.kind in "OUM" else oip_type(arr.dtype.name)
        data = (_plain(arr.ravel()) if datatype == "BYTES" else arr.ravel())
        tensors.append({"name": name, "shape": list(arr.shape), "datatype": datatype,
                        "data": data})
    return dumps({"model_name": model, "model_version": str(version), "id": request_id,
                  "outputs": tensors})


def model_metadata(name: str, versions: list[str], signature: Signature,
                   platform: str) -> dict[str, Any]:
    def tensor(spec_name: str, dtype: str, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"name": spec_name, "datatype": oip_type(dtype), "shape": list(shape)}

    return {
        "name": name, "versions": versions, "platform": platform,
        "inputs": [tensor(c.name, c.dtype, c.shape) for c in signature.inputs],
        "outputs": [tensor(o.name, o.dtype, o.shape) for o in signature.outputs],
    }


def error_body(message: str, problems: Any = None) -> bytes:
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = [{"field": p.field, "message": p.message} for p in problems]
    return dumps(body)
