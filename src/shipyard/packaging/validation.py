"""Check input against a signature and coerce it to the declared dtypes, reporting every problem."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np

from shipyard.errors import InputValidationError, Problem
from shipyard.packaging.casting import cast
from shipyard.packaging.signature import NUMERIC_DTYPES, ColumnSpec, Signature
from shipyard.packaging.tabular import raw_columns
from shipyard.types import Array, Columns

UnknownCategories = Literal["pass", "reject"]


def prepare(data: Any, signature: Signature, *,
            unknown_categories: UnknownCategories = "pass", finite: bool = False) -> Columns:
    """Columns that match ``signature`` exactly, or InputValidationError listing every problem.

    ``finite=True`` says a float array cannot hold NaN because it came from strict JSON
    (orjson refuses ``NaN``/``Infinity``/overflowing numbers): the NaN scan is skipped."""
    if type(data) is np.ndarray:
        ready = _plain_numeric(data, signature, finite)
        if ready is not None:
            return ready
    return _prepare_any(data, signature, unknown_categories)


def _prepare_any(data: Any, signature: Signature, unknown_categories: UnknownCategories,
                 ) -> Columns:
    names = signature.input_names
    given = raw_columns(data, names)
    problems: list[Problem] = []
    missing = [n for n in names if n not in given]
    extra = [n for n in given if n not in signature._by_name]
    if missing:
        problems.append(Problem("", f"missing input columns: {missing} (expected {names})"))
    if extra:
        problems.append(Problem("", f"unexpected input columns: {extra} (expected {names})"))
    out: Columns = {}
    for spec in signature.inputs:
        if spec.name in given:
            arr = _coerce(given[spec.name], spec, problems, unknown_categories,
                          tabular=signature.kind == "tabular")
            if arr is not None:
                out[spec.name] = arr
    lengths = {name: len(arr) for name, arr in out.items()}
    if len(set(lengths.values())) > 1:
        problems.append(Problem("", f"inputs have different numbers of rows: {lengths}"))
    if not problems and lengths and next(iter(lengths.values())) == 0:
        problems.append(Problem("", "input is empty: no rows"))
    if problems:
        raise InputValidationError(problems)
    return out


class _PlainSpec(NamedTuple):
    """What ``_plain_numeric`` checks, worked out once per signature."""

    name: str
    dtype: np.dtype[Any]
    ndim: int
    trailing: tuple[int, ...]  # the declared shape after the row axis (-1: any)
    free: bool  # some trailing dimension is -1
    scan_nan: bool  # not nullable: a float array must be scanned for NaN
    no_single_column: bool  # tabular 2-D: a (n, 1) array goes the general way (squeezed)


_NOT_PLAIN = _PlainSpec("", np.dtype("float64"), -1, (), False, False, False)


def _plain_spec(signature: Signature) -> _PlainSpec:
    spec = signature._plain
    if spec is None:
        spec = _NOT_PLAIN
        if len(signature.inputs) == 1 and signature.inputs[0].dtype in NUMERIC_DTYPES:
            col = signature.inputs[0]
            trailing = tuple(col.shape[1:])
            spec = _PlainSpec(col.name, np.dtype(col.dtype), len(col.shape), trailing,
                              -1 in trailing, not col.nullable,
                              signature.kind == "tabular" and len(col.shape) == 2)
        object.__setattr__(signature, "_plain", spec)
    return spec  # type: ignore[no-any-return]


def _plain_numeric(arr: Array, signature: Signature, finite: bool = False) -> Columns | None:
    """The common case without the general machinery: one numeric input, a numeric array of
    the right shape, no NaN where none is allowed. The answer is what the general path
    gives; anything else (None) goes through it and gets its problems listed."""
    spec = _plain_spec(signature)
    shape = arr.shape
    kind = arr.dtype.kind  # a structured dtype is kind "V"
    if (len(shape) != spec.ndim or kind not in "iuf" or not shape[0]
            or (kind == "f" and spec.dtype.kind in "iu")
            or (spec.no_single_column and shape[1] == 1)):
        return None
    if spec.free:
        for w, g in zip(spec.trailing, shape[1:], strict=True):
            if w != -1 and w != g:
                return None
    elif shape[1:] != spec.trailing:
        return None
    if kind == "f" and spec.scan_nan and not finite and np.isnan(arr).any():
        return None
    if arr.dtype == spec.dtype:
        return {spec.name: arr}
    ready = cast(arr, spec.dtype)  # checks ranges only where this cast could overflow
    return None if isinstance(ready, str) else {spec.name: ready}


def null_mask(arr: Array) -> Array:
    """True where a value is missing: NaN, NaT or None."""
    if arr.dtype.kind in "fc":
        return np.isnan(arr)
    if arr.dtype.kind in "mM":
        return np.isnat(arr)
    if arr.dtype.kind == "O":
        return np.fromiter((_is_null(v) for v in arr.ravel()), bool, arr.size).reshape(arr.shape)
    return np.zeros(arr.shape, dtype=bool)


def _is_null(v: object) -> bool:
    if v is None or (isinstance(v, float) and v != v):
        return True
    return type(v).__name__ in ("NAType", "NaTType")


def _coerce(arr: Array, spec: ColumnSpec, problems: list[Problem],
            unknown: UnknownCategories, *, tabular: bool) -> Array | None:
    if tabular and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if not _shape_ok(arr, spec, problems):
        return None
    converted = _convert(arr, spec)
    if isinstance(converted, str):
        problems.append(Problem(spec.name, converted))
        return None
    nulls = int(null_mask(converted).sum())
    if nulls and not spec.nullable:
        problems.append(Problem(spec.name, f"{nulls} missing value(s) (null/NaN), but this "
                                           "input is not nullable"))
        return None
    if unknown == "reject" and spec.categories is not None and spec.dtype == "string":
        known = set(spec.categories)
        new = sorted({v for v in converted if v is not None and v not in known}, key=str)
        if new:
            problems.append(Problem(spec.name, f"unknown categories {new[:10]} "
                                               f"(known: {list(spec.categories)[:20]})"))
            return None
    return converted


def _shape_ok(arr: Array, spec: ColumnSpec, problems: list[Problem]) -> bool:
    want = spec.shape
    if arr.ndim != len(want):
        problems.append(Problem(spec.name, f"expected {len(want)}-D input with shape "
                                           f"{_fmt(want)}, got shape {tuple(arr.shape)}"))
        return False
    if any(w != -1 and w != g for w, g in zip(want[1:], arr.shape[1:], strict=True)):
        problems.append(Problem(spec.name, f"expected shape {_fmt(want)}, got {tuple(arr.shape)}"))
        return False
    return True


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join("N" if d == -1 else str(d) for d in shape) + ")"


def _describe(arr: Array) -> str:
    kind = arr.dtype.kind
    if kind == "O":
        types = sorted({type(v).__name__ for v in arr.ravel() if not _is_null(v)})
        return "values of type " + "/".join(types) if types else "only nulls"
    return {"U": "string", "S": "bytes", "b": "bool", "M": "datetime"}.get(kind, str(arr.dtype))


class _Mismatch:
    """The "expected X, got Y" message, built only when a column really mismatches."""

    __slots__ = ("arr", "want")

    def __init__(self, want: str, arr: Array) -> None:
        self.want = want
        self.arr = arr

    def __str__(self) -> str:
        return f"expected {self.want}, got {_describe(self.arr)}"


def _convert(arr: Array, spec: ColumnSpec) -> Array | str:
    """The array in the spec's dtype, or a message saying why it cannot be."""
    want = spec.dtype
    kind = arr.dtype.kind
    mismatch = _Mismatch(want, arr)
    if want in NUMERIC_DTYPES:
        return _to_numeric(arr, want, mismatch)
    if want == "bool":
        if kind == "b":
            return arr
        if kind == "O" and all(isinstance(v, (bool, np.bool_)) or _is_null(v) for v in arr.ravel()):
            return arr if spec.nullable else arr.astype(bool)
        return str(mismatch)
    if want == "string":
        if kind in "US":
            return arr.astype(str).astype(object)
        if kind == "O" and all(isinstance(v, str) or _is_null(v) for v in arr.ravel()):
            cleaned = arr.copy()
            cleaned[null_mask(arr)] = None  # NaN, pd.NA and None all become None
            return cleaned
        return str(mismatch)
    # datetime
    if kind == "M":
        return arr.astype("datetime64[ns]")
    if kind in "OU":
        try:
            values = [None if _is_null(v) else v for v in arr.ravel()]
            return np.array(values, dtype="datetime64[ns]").reshape(arr.shape)
        except (ValueError, TypeError):
            return f"expected datetime (ISO 8601 strings or datetime values), got {_describe(arr)}"
    return str(mismatch)


def _to_numeric(arr: Array, want: str, mismatch: _Mismatch) -> Array | str:
    kind = arr.dtype.kind
    is_int_target = want.startswith(("int", "uint"))
    if kind == "O":
        if not all((isinstance(v, (int, float, np.integer, np.floating))
                    and not isinstance(v, (bool, np.bool_))) or _is_null(v) for v in arr.ravel()):
            return str(mismatch)
        arr = np.array([np.nan if _is_null(v) else v for v in arr.ravel()],
                       dtype="float64").reshape(arr.shape)
        kind = "f"
    if kind not in "iuf":
        return str(mismatch)
    if is_int_target and kind == "f":
        finite = arr[~np.isnan(arr)]
        if np.any(finite != np.round(finite)):
            return f"expected {want}, got non-integer numbers"
        if finite.size != arr.size:  # nulls in an integer column travel as float NaN
            misfit = cast(finite, want)
            return misfit if isinstance(misfit, str) else arr.astype("float64")
    return cast(arr, want)
