"""Infer a signature's inputs from a sample of training data."""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.errors import ConversionError, InputValidationError
from shipyard.packaging.signature import NUMERIC_DTYPES, ColumnSpec, Signature
from shipyard.packaging.tabular import raw_columns
from shipyard.packaging.validation import null_mask
from shipyard.types import Array

MAX_CATEGORIES = 100
"""String columns with at most this many distinct values record them as categories."""


def infer_signature(sample: Any) -> Signature:
    """Signature inputs from a sample: DataFrame/dict/records give a table, numpy a tensor."""
    tabular = not isinstance(sample, np.ndarray) or sample.dtype.names is not None
    try:
        columns = raw_columns(sample) if tabular else {"input": np.asarray(sample)}
    except InputValidationError as exc:
        raise ConversionError(f"cannot infer a signature from the sample: {exc}") from exc
    if not columns:
        raise ConversionError("cannot infer a signature from an empty sample")
    if tabular:
        specs = tuple(_column_spec(name, arr) for name, arr in columns.items())
        return Signature("tabular", specs)
    arr = columns["input"]
    if arr.ndim == 1:  # a single feature: one row per element
        arr = arr.reshape(-1, 1)
    return Signature("tensor", (_tensor_spec("input", arr),))


def _tensor_spec(name: str, arr: Array) -> ColumnSpec:
    dtype = dtype_name(arr)
    nullable = bool(null_mask(arr).any()) if arr.dtype.kind in "fO" else False
    return ColumnSpec(name, dtype, (-1, *arr.shape[1:]), nullable)


def dtype_name(arr: Array) -> str:
    kind = arr.dtype.kind
    if kind == "b":
        return "bool"
    if kind in "US":
        return "string"
    if kind == "M":
        return "datetime"
    if kind == "O":
        return _object_dtype(arr)
    name = arr.dtype.name
    if name not in NUMERIC_DTYPES:
        raise ConversionError(f"unsupported dtype {name}")
    return name


def _object_dtype(arr: Array) -> str:
    values = [v for v in arr.ravel() if v is not None and not (isinstance(v, float) and v != v)]
    if not values:
        return "float64"
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return "bool"
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return "int64"
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return "float64"
    if all(hasattr(v, "isoformat") for v in values):
        return "datetime"
    kinds = sorted({type(v).__name__ for v in values})
    raise ConversionError(f"cannot infer a dtype for a column holding {'/'.join(kinds)} values")


def _column_spec(name: str, arr: Array) -> ColumnSpec:
    if arr.ndim != 1:
        raise ConversionError(f"sample column {name!r} must be 1-D, got shape {arr.shape}")
    dtype = dtype_name(arr)
    nulls = null_mask(arr)
    present = arr[~nulls]
    minimum: float | str | None = None
    maximum: float | str | None = None
    categories = None
    if dtype in NUMERIC_DTYPES and present.size:
        minimum, maximum = float(np.min(present)), float(np.max(present))
    elif dtype == "string":
        distinct = set(present.tolist())
        if len(distinct) <= MAX_CATEGORIES:
            categories = tuple(sorted(distinct))
    elif dtype == "bool" and present.size:
        categories = tuple(sorted({bool(v) for v in present}))
    elif dtype == "datetime" and present.size:
        stamps = present.astype("datetime64[ns]")
        minimum, maximum = str(stamps.min()), str(stamps.max())
    return ColumnSpec(name, dtype, (-1,), bool(nulls.any()), minimum, maximum, categories)
