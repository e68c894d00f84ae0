"""Summarise one column array into a ColumnProfile, vectorised.

Numbers: numpy reductions plus one vectorised KLL update (the KLL update is most of the
time: about 35 ns a value). Text: a hash count of the values (``collections.Counter`` over
the column is ~10x faster than sorting objects with ``np.unique``), then one ``value_key``
per distinct value rather than per row.

Kind inference: bool, or exactly two distinct non-null values -> BINARY; other numbers ->
NUMERIC; other text -> CATEGORICAL. A caller's kind overrides it; numbers profiled as
CATEGORICAL (class labels) keep counts by ``value_key``, so 1 and 1.0 are the same "1".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import datasketches as ds
import numpy as np

from shipyard.errors import ProfileError
from shipyard.profiles.columns import ColumnKind, ColumnProfile, items_from_counts, value_key
from shipyard.profiles.frame import Coded, Column
from shipyard.types import Array


def column_profile(name: str, arr: Column, kind: ColumnKind | None, *, kll_k: int,
                   category_cap: int) -> ColumnProfile:
    """The profile of ``arr`` as ``kind`` (inferred when None)."""
    numbers = not isinstance(arr, Coded) and arr.dtype.kind in "iufb"
    if numbers and kind != ColumnKind.CATEGORICAL:
        assert not isinstance(arr, Coded)
        return _numeric(name, arr, kind, kll_k, category_cap)
    if kind == ColumnKind.NUMERIC:
        raise ProfileError(f"column {name!r} holds text; it cannot be profiled as numeric")
    if isinstance(arr, Coded):
        counts, nulls = _coded_counts(arr)
    else:
        counts, nulls = _number_counts(arr) if numbers else _text_counts(arr, name)
    if kind is None:
        kind = ColumnKind.BINARY if len(counts) == 2 else ColumnKind.CATEGORICAL
    elif kind == ColumnKind.BINARY and len(counts) > 2:
        raise ProfileError(f"column {name!r} has {len(counts)} distinct values; a binary "
                           "column has at most two")
    dtype = arr.dtype.name if numbers and not isinstance(arr, Coded) else "str"
    base = ColumnProfile(name, kind, dtype, len(arr), nulls, category_cap=category_cap)
    if len(counts) <= category_cap:
        return replace(base, counts=counts)
    return replace(base, exact=False, items_sketch=items_from_counts(counts, category_cap))


def _numeric(name: str, arr: Array, kind: ColumnKind | None, kll_k: int,
             category_cap: int) -> ColumnProfile:
    # One sort gives min, max, the null count (NaN sorts last) and the two-value test, and
    # halves the KLL update's time (its compactions sort already-sorted runs). KLL's error
    # bound holds for any order of the stream, sorted included.
    ordered = np.sort(arr.astype(np.float64, copy=False))
    present = int(np.searchsorted(ordered, np.nan)) if arr.dtype.kind == "f" else len(ordered)
    x = ordered[:present]
    base = ColumnProfile(name, kind or ColumnKind.NUMERIC, arr.dtype.name, len(arr),
                         len(arr) - present, category_cap=category_cap,
                         quantile_sketch=ds.kll_doubles_sketch(kll_k))
    if present == 0:
        binary = kind == ColumnKind.BINARY or arr.dtype.kind == "b"
        return replace(base, kind=ColumnKind.BINARY, counts={}) if binary else base
    low, high = float(x[0]), float(x[-1])
    mean = float(x.mean())
    variance = float(np.mean(np.square(x - mean))) if np.isfinite(mean) else float("nan")
    base.quantile_sketch.update(x)
    col = replace(base, min=low, max=high, mean=mean, variance=variance)
    lows = int(np.searchsorted(x, low, side="right"))
    highs = present - int(np.searchsorted(x, high, side="left"))
    two = lows + highs == present or low == high
    if kind is None:
        binary = arr.dtype.kind == "b" or (two and high != low)
        kind = ColumnKind.BINARY if binary else ColumnKind.NUMERIC
    if kind == ColumnKind.NUMERIC:
        return col
    if not two:
        raise ProfileError(f"column {name!r} has more than two distinct values; a binary "
                           "column has at most two")
    counts = {_key(arr.dtype.type(low)): lows}
    if high != low:
        counts[_key(arr.dtype.type(high))] = highs
    return replace(col, kind=ColumnKind.BINARY, counts=counts)


def _key(value: Any) -> str:
    key = value_key(value)
    assert key is not None  # only non-null values reach here
    return key


def _coded_counts(col: Coded) -> tuple[dict[str, int], int]:
    tally = np.bincount(col.codes + 1, minlength=len(col.categories) + 1)  # -1 (null) -> 0
    # a pandas categorical may list categories no row has: they are not values seen
    seen = [(v, n) for v, n in zip(col.categories.tolist(), tally[1:].tolist(), strict=True)
            if n]
    counts, nulls = _by_key(seen)
    return counts, nulls + int(tally[0])


def _number_counts(arr: Array) -> tuple[dict[str, int], int]:
    """Numbers as categories (class labels): counts by ``value_key``, NaN as null (np.unique
    keeps each NaN apart; they add up here)."""
    values, counts = np.unique(arr, return_counts=True)
    return _by_key(zip(values.tolist(), counts.tolist(), strict=True))


def _text_counts(arr: Array, name: str) -> tuple[dict[str, int], int]:
    try:
        raw = Counter(arr.tolist())
    except TypeError as exc:  # unhashable values: lists, dicts, arrays
        raise ProfileError(f"column {name!r} holds values that are not numbers, booleans or "
                           f"text: {exc}") from exc
    for value in raw:
        if not (value is None or isinstance(value, str | bytes | bool | int | float | np.generic)):
            raise ProfileError(f"column {name!r} holds a {type(value).__name__}; profiles "
                               "support numbers, booleans and text")
    return _by_key(raw.items())


def _by_key(pairs: Iterable[tuple[Any, int]]) -> tuple[dict[str, int], int]:
    """(value, count) pairs -> non-null counts by ``value_key`` (values whose keys coincide,
    like 1 and 1.0, add up) and the null count."""
    counts: dict[str, int] = {}
    nulls = 0
    for value, n in pairs:
        key = value_key(value)
        if key is None:
            nulls += n
        else:
            counts[key] = counts.get(key, 0) + n
    return counts, nulls
