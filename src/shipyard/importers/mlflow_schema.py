"""MLflow's model signature (the JSON strings in ``MLmodel``) as a shipyard ``Signature``.

MLflow writes each schema as a JSON list: column specs ``{"type": "double", "name": "x",
"required": true}`` (a table) or tensor specs ``{"type": "tensor", "tensor-spec": {"dtype":
"float32", "shape": [-1, 4]}, "name": ...}``. Parsed here with the standard library: reading a
signature never needs mlflow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shipyard.errors import ConversionError
from shipyard.packaging import ColumnSpec, Signature
from shipyard.packaging.signature import DTYPES

# MLflow's column types (mlflow.types.DataType) -> shipyard dtypes
COLUMN_TYPES = {
    "double": "float64", "float": "float32", "long": "int64", "integer": "int32",
    "boolean": "bool", "string": "string", "datetime": "datetime",
}
TENSOR_INPUT = "input"  # an unnamed tensor's name, as shipyard's own signature inference names it


def parse_schema(text: Any, what: str) -> list[dict[str, Any]]:
    """One schema (``inputs`` or ``outputs``) of ``MLmodel``'s signature as a list of specs."""
    try:
        specs = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise ConversionError(f"the MLflow signature's {what} are not JSON: {exc}") from exc
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise ConversionError(f"the MLflow signature's {what} must be a JSON list of specs, "
                              f"got {type(specs).__name__}")
    return specs


def map_signature(signature: Mapping[str, Any] | None) -> Signature | None:
    """The inputs of MLflow's signature as a shipyard Signature (outputs are shipyard's own,
    from the model's answers); None when the model has no signature."""
    if not signature or signature.get("inputs") in (None, ""):
        return None
    specs = parse_schema(signature["inputs"], "inputs")
    if not specs:
        raise ConversionError("the MLflow signature has no inputs")
    tensors = [s.get("type") == "tensor" for s in specs]
    if any(tensors) and not all(tensors):
        raise ConversionError("the MLflow signature mixes tensor and column inputs")
    if all(tensors):
        if len(specs) > 1 and any(not s.get("name") for s in specs):
            raise ConversionError("the MLflow signature has several tensors, not all named")
        return Signature("tensor", tuple(_tensor(s) for s in specs))
    return Signature("tabular", tuple(_column(s, i) for i, s in enumerate(specs)))


def _column(spec: Mapping[str, Any], position: int) -> ColumnSpec:
    kind = spec.get("type")
    name = str(spec.get("name", position))
    if kind not in COLUMN_TYPES:
        known = ", ".join(sorted(COLUMN_TYPES))
        raise ConversionError(f"input {name!r}: MLflow type {kind!r} has no shipyard dtype "
                              f"(supported: {known})")
    return ColumnSpec(name, COLUMN_TYPES[str(kind)], (-1,),
                      nullable=not spec.get("required", True))


def _tensor(spec: Mapping[str, Any]) -> ColumnSpec:
    tensor = spec.get("tensor-spec") or {}
    name = str(spec.get("name") or TENSOR_INPUT)
    dtype = str(tensor.get("dtype", ""))
    dtype = {"object": "string", "str": "string", "bool_": "bool"}.get(dtype, dtype)
    if dtype not in DTYPES:
        raise ConversionError(f"input {name!r}: tensor dtype {tensor.get('dtype')!r} has no "
                              "shipyard dtype")
    try:
        shape = tuple(int(d) for d in tensor.get("shape", [-1]))
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"input {name!r}: malformed tensor shape "
                              f"{tensor.get('shape')!r}") from exc
    if not shape:
        raise ConversionError(f"input {name!r}: a tensor needs a row axis, got shape ()")
    if shape[0] != -1:  # MLflow allows a fixed batch size; shipyard's first axis is rows
        shape = (-1, *shape[1:])
    return ColumnSpec(name, dtype, shape, nullable=not spec.get("required", True))


def describe_schema(signature: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """MLflow's signature as parsed JSON (inputs, outputs, params), kept in the manifest."""
    if not signature:
        return None
    out: dict[str, Any] = {}
    for key in ("inputs", "outputs", "params"):
        value = signature.get(key)
        out[key] = None if value in (None, "") else parse_schema(value, key)
    return out
