"""Anything tabular -> ``{name: 1-D ndarray | Coded}``, nulls as NaN (numbers) or None.

DataFrames and Arrow tables are recognised by their methods, not imported: profiling must not
pull pandas or pyarrow into a process that never uses them. Text that is already held as
codes into distinct values (pandas categoricals, Arrow strings and dictionaries, pandas 3's
Arrow-backed ``str``) stays coded: counting codes with ``np.bincount`` is ~20x faster than
hashing a million Python strings, and only the sampled rows are ever turned into objects.
With ``coded=True`` text held as Python strings (object columns, pandas' Python-backed
``string``) is coded too, by pandas' hash factorisation (~25 ms a million rows against ~100 ms
for ``to_numpy`` plus a ``Counter``), when every distinct value is a ``str`` and the nulls are
ones the plain path also reads as nulls (pandas' ``isna`` in a Series, None or NaN among
NumPy objects); anything else stays an object array. Both paths thus give the same counts,
keys and samples.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, overload

import numpy as np

from shipyard.errors import ProfileError
from shipyard.types import Array, Columns

_UNSUPPORTED_KINDS = {"M": "datetime", "m": "timedelta", "c": "complex", "V": "structured"}


@dataclass(frozen=True)
class Coded:
    """A text column as integer ``codes`` into ``categories`` (-1 marks a null); the codes'
    integer type may be as narrow as ``len(categories) + 1`` allows."""

    codes: Array
    categories: Array

    def __len__(self) -> int:
        return len(self.codes)

    def values(self, rows: Array | None = None) -> Array:
        """The values at ``rows`` (all rows when None) as an object array, None for nulls."""
        codes = self.codes if rows is None else self.codes[rows]
        lookup = np.empty(len(self.categories) + 1, dtype=object)
        lookup[:-1] = self.categories.tolist()
        lookup[-1] = None
        return np.asarray(lookup[np.where(codes < 0, len(self.categories), codes)])


Column: TypeAlias = "Array | Coded"
"""One column to profile: a 1-D array, or coded text."""


@overload
def to_columns(data: Any, *, coded: Literal[False] = False) -> Columns: ...
@overload
def to_columns(data: Any, *, coded: Literal[True]) -> dict[str, Column]: ...


def to_columns(data: Any, *, coded: bool = False) -> Columns | dict[str, Column]:
    """The columns of ``data``, all 1-D and of one length; ProfileError otherwise. With
    ``coded=True`` text that arrives coded stays ``Coded`` (what ``profile()`` uses);
    otherwise every column is a plain array, coded text decoded to objects."""
    columns = _read(data, coded)
    if coded:
        return columns
    return {name: col.values() if isinstance(col, Coded) else col
            for name, col in columns.items()}


def _read(data: Any, coded: bool) -> dict[str, Column]:
    if _is_dataframe(data):
        names = [str(name) for name in data.columns]
        if len(set(names)) != len(names):
            raise ProfileError(f"the DataFrame repeats column names: {names}")
        raw = {str(name): _pandas_column(data[name], coded) for name in data.columns}
    elif _is_arrow_table(data):
        names = [str(name) for name in data.column_names]
        if len(set(names)) != len(names):
            raise ProfileError(f"the table repeats column names: {names}")
        raw = {str(name): _arrow_column(data.column(i), str(name))
               for i, name in enumerate(data.column_names)}
    elif isinstance(data, Mapping):
        raw = {str(name): _array(values, str(name), coded) for name, values in data.items()}
    else:
        raise ProfileError(f"cannot profile a {type(data).__name__}: pass a mapping of column "
                           "name to values, a pandas DataFrame or a pyarrow Table")
    if not raw:
        raise ProfileError("cannot profile data with no columns")
    lengths = {name: len(arr) for name, arr in raw.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{n}={k}" for n, k in list(lengths.items())[:8])
        raise ProfileError(f"columns have different lengths ({shown}); a profile needs "
                           "rows of equal length")
    if next(iter(lengths.values())) == 0:
        raise ProfileError("cannot profile empty data (0 rows)")
    return {name: _checked(arr, name) for name, arr in raw.items()}


def _is_dataframe(data: Any) -> bool:
    return hasattr(data, "columns") and hasattr(data, "dtypes") and hasattr(data, "iloc")


def _is_arrow_table(data: Any) -> bool:
    return hasattr(data, "column_names") and hasattr(data, "schema") and hasattr(data, "column")


def _pandas_column(series: Any, coded: bool = False) -> Column:
    dtype = series.dtype
    kind = getattr(dtype, "kind", "O")
    if str(dtype) == "category":
        return Coded(np.asarray(series.cat.codes.to_numpy(), dtype=np.intp),
                     np.asarray(series.cat.categories.to_numpy(), dtype=object))
    arrow = getattr(series.array, "__arrow_array__", None)
    if callable(arrow) and (getattr(dtype, "storage", None) == "pyarrow"
                            or hasattr(dtype, "pyarrow_dtype")):
        return _arrow_column(arrow(), str(series.name))
    if isinstance(dtype, np.dtype) and kind in "iub":
        return np.asarray(series.to_numpy())  # NumPy integers and booleans hold no nulls
    if kind in "iufb" and not series.hasnans:
        return np.asarray(series.to_numpy())
    if kind in "iuf":  # nullable Int64/Float64 with pd.NA, or float with NaN
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if kind in "mM":
        return np.asarray(series.to_numpy())
    if coded and kind == "O" and (isinstance(dtype, np.dtype)
                                  or getattr(dtype, "storage", None) == "python"):
        codes, uniques = series.factorize()  # nulls: pandas' isna, as na_value=None below
        text = _text_coded(np.asarray(codes, dtype=np.intp), np.asarray(uniques, dtype=object))
        if text is not None:
            return text
    # strings, categoricals, nullable booleans with NA, mixed objects: None marks a null
    return np.asarray(series.to_numpy(dtype=object, na_value=None), dtype=object)


def _arrow_column(column: Any, name: str) -> Column:
    import pyarrow as pa  # already loaded: the caller handed us an Arrow object
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_nested(kind):  # lists, structs, maps: no value a profile can count
        raise ProfileError(f"column {name!r} is nested ({kind}); profiles support numbers, "
                           "booleans and strings/categories (flatten it first)")
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or \
            pa.types.is_string_view(kind):
        whole = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        encoded = pc.dictionary_encode(whole)
        return Coded(np.asarray(encoded.indices.fill_null(-1).to_numpy(), dtype=np.intp),
                     np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False),
                                dtype=object))
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _array(values: Any, name: str, coded: bool = False) -> Column:
    if hasattr(values, "to_numpy") and hasattr(values, "dtype") and hasattr(values, "hasnans"):
        return _pandas_column(values, coded)  # a pandas Series inside a mapping
    if hasattr(values, "to_numpy") and hasattr(values, "null_count"):
        return _arrow_column(values, name)  # a pyarrow (Chunked)Array inside a mapping
    try:
        arr = np.asarray(values)
    except ValueError as exc:  # ragged nested lists
        raise ProfileError(f"column {name!r} cannot be read as one value per row: {exc}") from exc
    if coded and arr.dtype == object and arr.ndim == 1:
        text = _coded_objects(arr)
        if text is not None:
            return text
    return arr


def _coded_objects(arr: Array) -> Coded | None:
    """An object array of text and nulls as ``Coded``, when pandas is already loaded (it is
    not imported for this); None when it is not, or the column is not plain text."""
    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    try:
        codes, uniques = pd.factorize(arr)
    except (TypeError, ValueError):  # unhashable values: left to the reader's own errors
        return None
    codes = np.asarray(codes, dtype=np.intp)
    missing = codes < 0
    if missing.any() and not all(_null_marker(kind) for kind in
                                 set(map(type, arr[missing].tolist()))):
        return None  # another null to pandas (pd.NA, NaT, Decimal NaN)
    return _text_coded(codes, np.asarray(uniques, dtype=object))


def _null_marker(kind: type) -> bool:
    """Values of this type that pandas reads as null are nulls that profiles take (None and
    NaN; pandas' own NA and NaT among NumPy objects are left for the plain path to judge)."""
    return kind is type(None) or issubclass(kind, float | np.floating)


def _text_coded(codes: Array, uniques: Array) -> Coded | None:
    """``Coded`` when there is at least one value and every distinct one is a ``str``: such a
    column is text to ``_checked`` too, and each value is its own ``value_key``."""
    if uniques.size == 0 or not all(isinstance(v, str) for v in uniques.tolist()):
        return None
    for narrow in (np.int8, np.int16, np.int32):  # codes + 1 and the null slot still fit
        if uniques.size < np.iinfo(narrow).max:
            return Coded(codes.astype(narrow), uniques)
    return Coded(codes, uniques)


def _checked(arr: Column, name: str) -> Column:
    if isinstance(arr, Coded):
        return arr
    if arr.ndim != 1:
        raise ProfileError(f"column {name!r} has shape {arr.shape}; profiles take one value "
                           "per row (1-D columns)")
    label = _UNSUPPORTED_KINDS.get(arr.dtype.kind)
    if label is not None:
        raise ProfileError(f"column {name!r} is {label} ({arr.dtype}); profiles support "
                           "numbers, booleans and strings/categories")
    if arr.dtype.kind == "O":
        return _numeric_objects(arr)
    return arr


def _numeric_objects(arr: Array) -> Array:
    """An object column of numbers and nulls as float64 with NaN; other object columns as is."""
    first = next((v for v in arr[:1000].tolist() if not _is_null(v)), None)
    if first is not None and not _is_number(first):
        return arr  # text (the common case) is decided by its first value, without a scan
    nulls = _object_nulls(arr)
    present = arr[~nulls]
    if present.size == 0 or not all(_is_number(v) for v in present.tolist()):
        return arr  # only nulls, or numbers mixed with text: categories
    out = np.full(arr.shape, np.nan)
    out[~nulls] = present.astype(np.float64)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and bool(value != value))


def _object_nulls(arr: Array) -> Array:
    """None or NaN in an object array (``x != x`` is only true for NaN)."""
    return np.asarray((arr == None) | (arr != arr), dtype=bool)  # noqa: E711
