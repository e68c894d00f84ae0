"""Turn what users pass (DataFrame, dict of columns, records, numpy array) into columns.

No pandas import: DataFrames are recognised by their shape (``columns`` + ``__getitem__``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shipyard.errors import InputValidationError, Problem
from shipyard.types import Array, Columns


def is_dataframe(data: object) -> bool:
    return hasattr(data, "columns") and hasattr(data, "dtypes") and hasattr(data, "iloc")


def series_to_numpy(series: Any) -> Array:
    """A pandas Series as numpy, with pandas' missing markers (pd.NA, None) made numpy-native."""
    dtype = series.dtype
    kind = getattr(dtype, "kind", "O")
    name = str(dtype)
    if name in ("category",):
        return np.asarray(series.astype(object).to_numpy(), dtype=object)
    if name in ("boolean",):
        values = np.asarray(series.to_numpy(dtype=object, na_value=None))
        return values if any(v is None for v in values) else values.astype(bool)
    if kind in "iuf" and name[0].isupper():  # nullable extension types: Int64, Float64
        if series.isna().any():
            return np.asarray(series.to_numpy(dtype="float64", na_value=np.nan))
        return np.asarray(series.to_numpy(dtype=name.lower()))
    if kind in "OSU" or name.startswith("str"):
        return np.asarray(series.to_numpy(dtype=object, na_value=None), dtype=object)
    if getattr(dtype, "tz", None) is not None:  # tz-aware datetimes: compare in UTC
        return np.asarray(series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    return np.asarray(series.to_numpy())


def raw_columns(data: Any, names: Sequence[str] | None = None) -> Columns:
    """Columns from any supported container, without checking them against a signature.

    ``names`` orders the columns of a 2-D numpy array (tabular models) and names the only
    input of a single-input tensor model.
    """
    if is_dataframe(data):
        return {str(c): series_to_numpy(data[c]) for c in data.columns}
    if isinstance(data, Mapping):
        return {str(k): _as_array(v, str(k)) for k, v in data.items()}
    if isinstance(data, np.ndarray):
        return _from_array(data, names)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if data and all(isinstance(r, Mapping) for r in data):
            return _from_records(data)
        if not data:
            raise InputValidationError([Problem("", "input is empty: no rows")])
        return _from_array(np.asarray(data), names)
    raise InputValidationError([Problem(
        "", f"unsupported input type {type(data).__name__}: pass a pandas DataFrame, a dict of "
            "columns, a list of records (dicts) or a numpy array")])


def _as_array(value: Any, name: str) -> Array:
    if hasattr(value, "to_numpy") and hasattr(value, "dtype"):
        return series_to_numpy(value)
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nesting such as [1, [2, 3]]
        raise InputValidationError([Problem(
            name, "values must all have the same shape (got ragged nested lists)")]) from None
    if arr.dtype.kind == "O" and arr.ndim > 1 and arr.shape[1:] == ():
        arr = np.asarray(list(value), dtype=object)
    if isinstance(value, (list, tuple)) and _stringified(value, arr):
        arr = _objects(value)
    if arr.ndim == 0:
        raise InputValidationError([Problem(name, "expected a list of values, got a scalar")])
    return arr


def _from_records(records: Sequence[Mapping[str, Any]]) -> Columns:
    keys: dict[str, None] = {}
    for rec in records:
        keys.update(dict.fromkeys(map(str, rec)))
    out: Columns = {}
    for key in keys:
        values = [rec.get(key) for rec in records]
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.dtype.kind == "O" or _stringified(values, arr):
            arr = _objects(values)
        out[key] = arr
    return out


def _stringified(values: Sequence[Any], arr: Array) -> bool:
    """numpy turned a 1-D mix like [75, "lyon"] into strings: keep the values for validation."""
    return arr.ndim == 1 and arr.dtype.kind == "U" and not all(isinstance(v, str) for v in values)


def _objects(values: Sequence[Any]) -> Array:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _from_array(arr: Array, names: Sequence[str] | None) -> Columns:
    if arr.dtype.names:  # structured array: one column per field
        return {str(n): np.asarray(arr[n]) for n in arr.dtype.names}
    if names is not None and len(names) == 1:
        return {names[0]: arr}
    if names is not None and arr.ndim == 2 and arr.shape[1] == len(names):
        return {n: arr[:, i] for i, n in enumerate(names)}
    if names is not None:
        raise InputValidationError([Problem(
            "", f"a numpy array of shape {tuple(arr.shape)} cannot be matched to the "
                f"{len(names)} inputs {list(names)}: pass a 2-D array with one column per "
                "input, or named columns")])
    if arr.ndim == 2:
        return {f"f{i}": arr[:, i] for i in range(arr.shape[1])}
    return {"input": arr}
