"""One side of a comparison: raw columns (exact statistics) or a Profile (its sketches).

Raw data is read with the profiles' own reader (``to_columns``) and keyed with the profiles'
``value_key``, and kinds are inferred by the profiles' rule (bool or exactly two distinct
values -> binary; other numbers -> numeric; other text -> categorical), so a raw side and a
profile of the same data give the same counts, kinds and verdicts. Nothing is profiled: raw
numbers stay arrays (a KLL update costs more than the exact test).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np

from shipyard.errors import MonitoringError
from shipyard.monitoring.counts import Counts
from shipyard.monitoring.statistics import NumericValues
from shipyard.profiles import ColumnKind, Profile, value_key
from shipyard.profiles.frame import Coded, Column, to_columns
from shipyard.types import Array, Columns

T = TypeVar("T")


@dataclass(frozen=True)
class Side:
    """``raw`` columns or a ``profile`` (exactly one), with per-column results cached."""

    label: str
    rows: int
    raw: dict[str, Column] | None = None
    profile: Profile | None = None
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, data: Any, label: str) -> Side:
        """A Profile as is; anything ``profile()`` accepts as raw columns."""
        if isinstance(data, Profile):
            if data.rows == 0 or not data.columns:
                raise MonitoringError(f"the {label} profile is empty (no rows or no columns)")
            return cls(label, data.rows, profile=data)
        try:
            columns = to_columns(data, coded=True)
        except MonitoringError as exc:
            raise MonitoringError(f"cannot read the {label} data: {exc}") from exc
        return cls(label, len(next(iter(columns.values()))), raw=columns)

    @property
    def names(self) -> list[str]:
        return list(self.raw if self.raw is not None else self._profile.columns)

    @property
    def exact(self) -> bool:
        return self.raw is not None

    @property
    def _profile(self) -> Profile:
        assert self.profile is not None
        return self.profile

    def numbers_underneath(self, name: str) -> bool:
        """Numbers or booleans (as opposed to text)."""
        if self.raw is not None:
            arr = self.raw[name]
            return not isinstance(arr, Coded) and arr.dtype.kind in "iufb"
        return self._profile.columns[name].is_numeric

    def can_count(self, name: str) -> bool:
        """Counts per value are available (raw data, or a binary/categorical profile)."""
        return self.profile is None or self.profile.columns[name].kind != ColumnKind.NUMERIC

    def can_rank(self, name: str) -> bool:
        """Numbers with a CDF are available (raw numbers, or a profile's quantile sketch)."""
        if self.profile is None:
            return self.numbers_underneath(name)
        return self.profile.columns[name].quantile_sketch is not None

    def two_values_at_most(self, name: str) -> bool:
        """At most two distinct non-null values (a binary test can run)."""
        if self.profile is not None:
            col = self.profile.columns[name]
            return col.kind != ColumnKind.NUMERIC and col.exact and len(col.frequencies()) <= 2
        if self.numbers_underneath(name):
            return self.kind(name) == ColumnKind.BINARY or self.numeric(name).std == 0
        return len(self.counts(name).counts) <= 2

    def kind(self, name: str) -> ColumnKind:
        if self.profile is not None:
            return self.profile.columns[name].kind
        if self.numbers_underneath(name):
            arr = self._numbers(name)
            return self._cached(name, "kind", lambda: _numbers_kind(arr))
        return ColumnKind.BINARY if len(self.counts(name).counts) == 2 else ColumnKind.CATEGORICAL

    def non_null(self, name: str) -> int:
        if self.profile is not None:
            return self.profile.columns[name].non_null
        if self.numbers_underneath(name):
            return self.numeric(name).count
        return self.counts(name).total

    def numeric(self, name: str) -> NumericValues:
        """The column's finite numbers (raw) or its quantile sketch and moments."""
        if self.profile is not None:
            return self._cached(name, "numeric", lambda: _profile_numeric(self._profile, name))
        return self._cached(name, "numeric", lambda: _raw_numeric(self._numbers(name)))

    def counts(self, name: str) -> Counts:
        """Non-null counts per value (text keys, as in profiles)."""
        if self.profile is not None:
            col = self.profile.columns[name]
            return Counts(col.frequencies(), col.non_null, col.exact, col.frequency_error)
        return self._cached(name, "counts", lambda: _raw_counts(self._column(name), name))

    def in_sample(self, name: str) -> bool:
        return self.profile is None or name in self.profile.sample

    def sample(self, names: list[str], size: int, seed: int | None) -> Columns:
        """Up to ``size`` uniformly drawn rows (the profile's reservoir sample, or drawn here)
        with text as ``value_key`` strings and numbers as float64."""
        source: dict[str, Column]
        if self.profile is not None:
            source = {n: np.asarray(self.profile.sample[n]) for n in names}
            rows = len(next(iter(source.values()))) if source else 0
        else:
            source = {n: self._column(n) for n in names}
            rows = self.rows
        pick: Array | None = None
        if rows > size:
            pick = np.sort(np.random.default_rng(seed).choice(rows, size=size, replace=False))
        return {n: _as_sample(_rows(column, pick)) for n, column in source.items()}

    def _column(self, name: str) -> Column:
        assert self.raw is not None
        return self.raw[name]

    def _numbers(self, name: str) -> Array:
        arr = self._column(name)
        assert not isinstance(arr, Coded)
        return arr

    def _cached(self, name: str, what: str, make: Callable[[], T]) -> T:
        key = (name, what)
        if key not in self._cache:
            self._cache[key] = make()
        return cast(T, self._cache[key])


def _numbers_kind(arr: Array) -> ColumnKind:
    """Bool, or exactly two distinct values -> binary (a third value among the first 1000
    settles most numeric columns without a full scan)."""
    if arr.dtype.kind == "b":
        return ColumnKind.BINARY
    head = _present(arr[:1000])
    if np.unique(head).size > 2:
        return ColumnKind.NUMERIC
    x = _present(arr)
    if x.size == 0:
        return ColumnKind.NUMERIC
    low, high = x.min(), x.max()
    two = low != high and bool(np.all((x == low) | (x == high)))
    return ColumnKind.BINARY if two else ColumnKind.NUMERIC


def _present(arr: Array) -> Array:
    return arr[~np.isnan(arr)] if arr.dtype.kind == "f" else arr


def _profile_numeric(prof: Profile, name: str) -> NumericValues:
    """Every value when the profile still holds them all (its quantile sketch has not begun
    to estimate, or its row sample is every row): exact tests then apply, as on raw data;
    else the quantile sketch and the moments."""
    col = prof.columns[name]
    held = prof.held_values(name)
    if held is not None:
        return _raw_numeric(held)
    variance = col.variance if col.variance is not None else 0.0
    mean = col.mean if col.mean is not None else math.nan
    return NumericValues(col.non_null, mean, math.sqrt(max(0.0, variance)), sketch=col)


def _raw_numeric(arr: Array) -> NumericValues:
    x = arr.astype(np.float64, copy=False)
    finite = np.isfinite(x)
    if not finite.all():
        x = x[finite]
    if x.size == 0:
        return NumericValues(0, math.nan, 0.0, values=x)
    mean = float(x.mean())
    centred = x - mean  # einsum, not np.dot: BLAS threads spin on a busy machine
    std = math.sqrt(float(np.einsum("i,i->", centred, centred)) / x.size)
    return NumericValues(int(x.size), mean, std, values=x)


def _raw_counts(arr: Column, name: str) -> Counts:
    if isinstance(arr, Coded):  # text held as codes: count codes, key each category once
        n = np.bincount(arr.codes + 1, minlength=len(arr.categories) + 1)[1:]  # -1 (null): 0
        pairs: Any = ((v, k) for v, k in zip(arr.categories.tolist(), n.tolist(), strict=True)
                      if k)
    elif arr.dtype.kind in "iufb":
        values, n = np.unique(_present(arr), return_counts=True)
        pairs = zip(values.tolist(), n.tolist(), strict=True)
    else:
        try:
            pairs = Counter(arr.tolist()).items()
        except TypeError as exc:  # unhashable values (lists, dicts, arrays), as profile() says
            raise MonitoringError(f"column {name!r} holds values that are not numbers, "
                                  f"booleans or text: {exc}") from None
    counts: dict[str, int] = {}
    for value, k in pairs:
        key = value_key(value)
        if key is not None:
            counts[key] = counts.get(key, 0) + int(k)
    return Counts(counts, sum(counts.values()))


def _rows(arr: Column, pick: Array | None) -> Array:
    if isinstance(arr, Coded):
        return arr.values(pick)
    return arr if pick is None else arr[pick]


def _as_sample(arr: Array) -> Array:
    if arr.dtype.kind in "iufb":
        return arr.astype(np.float64)
    return np.array([value_key(v) for v in arr.tolist()], dtype=object)
