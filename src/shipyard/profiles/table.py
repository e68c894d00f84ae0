"""``profile(data) -> Profile``: a compact, mergeable summary of a table.

Its size is bounded whatever the row count: a KLL sketch per numeric column, at most
``category_cap`` counts (or a frequent-items sketch of that size) per categorical column, and
a reservoir of at most ``sample_size`` rows. ``profile(a).merge(profile(b))`` summarises
``a + b`` within the sketches' error, so windows can be profiled once and combined.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ProfileError
from shipyard.profiles import codec, reservoir
from shipyard.profiles.build import column_profile
from shipyard.profiles.columns import ColumnKind, ColumnProfile, merge_columns
from shipyard.profiles.frame import to_columns
from shipyard.types import Array, num_rows

SUMMARY_TOP = 20  # most frequent values listed per categorical column in summary()


@dataclass(frozen=True)
class Profile:
    """Per-column summaries (in column order), the row count, and a uniform row sample.

    ``sample_size``, ``category_cap`` and ``kll_k`` are the limits it was built with; a
    merge keeps the smaller of each side's.
    """

    columns: dict[str, ColumnProfile]
    rows: int
    sample: dict[str, Any] = field(repr=False, compare=False)
    sample_size: int = 2000
    category_cap: int = 1000
    kll_k: int = 400

    @property
    def kinds(self) -> dict[str, ColumnKind]:
        """Each column's kind: pass to ``profile(kinds=...)`` to profile new data alike."""
        return {name: col.kind for name, col in self.columns.items()}

    def __getitem__(self, name: str) -> ColumnProfile:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r} in this profile; it has "
                           f"{list(self.columns)}") from None

    def held_values(self, name: str) -> Array | None:
        """Every non-null value of a numeric column when this profile still holds them all:
        its quantile sketch has not begun to estimate, or its row sample is every row (None
        otherwise, and for text)."""
        col = self[name]
        held = col.held_values()
        sample = self.sample.get(name)
        if held is None and sample is not None and len(sample) == self.rows:
            values = np.asarray(sample)
            if values.dtype.kind in "iufb" and col.quantile_sketch is not None:
                held = values[~np.isnan(values)] if values.dtype.kind == "f" else values
        return held

    def merge(self, other: Profile, *, seed: int | None = 0) -> Profile:
        """The profile of both tables' rows together. Columns must match by name (order is
        this profile's); ProfileError if a column is numbers on one side and text on the
        other. ``seed`` makes the merged row sample reproducible."""
        if not isinstance(other, Profile):
            raise ProfileError(f"cannot merge a Profile with a {type(other).__name__}")
        if set(self.columns) != set(other.columns):
            only_a = sorted(set(self.columns) - set(other.columns))
            only_b = sorted(set(other.columns) - set(self.columns))
            raise ProfileError(f"cannot merge profiles of different columns: only in the "
                               f"first {only_a}, only in the second {only_b}")
        columns = {name: merge_columns(col, other.columns[name])
                   for name, col in self.columns.items()}
        capacity = min(self.sample_size, other.sample_size)
        sample = reservoir.merge(self.sample, self.rows, other.sample, other.rows, capacity,
                                 seed, _text_columns(columns))
        return Profile(columns, self.rows + other.rows, sample, capacity,
                       min(self.category_cap, other.category_cap), min(self.kll_k, other.kll_k))

    def summary(self) -> dict[str, Any]:
        """JSON-ready statistics per column (no sketches, no sample)."""
        return {"rows": self.rows, "sample_rows": num_rows(self.sample),
                "columns": {name: summarise(col) for name, col in self.columns.items()}}

    def to_bytes(self) -> bytes:
        """The documented binary layout of ``shipyard.profiles.codec`` (no pickle)."""
        return codec.encode(self.columns, self.rows, self.sample, sample_size=self.sample_size,
                            category_cap=self.category_cap, kll_k=self.kll_k)

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Read ``to_bytes`` output; ProfileError if it is not a profile or is corrupt."""
        return cls(**codec.decode(data))

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ProfileError(f"cannot read profile {path}: {exc}") from exc
        return cls.from_bytes(data)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n}:{c.kind}" for n, c in list(self.columns.items())[:6])
        more = ", ..." if len(self.columns) > 6 else ""
        return f"Profile(rows={self.rows}, columns=[{kinds}{more}])"


def profile(data: Any, *, sample_size: int = 2000, category_cap: int = 1000, kll_k: int = 400,
            seed: int | None = 0, kinds: Mapping[str, ColumnKind | str] | None = None,
            ) -> Profile:
    """Profile ``data``: a mapping of column name to values, a pandas DataFrame or a pyarrow
    Table. NaN and None are nulls. ``kinds`` overrides the inferred kind of some columns."""
    if sample_size < 1 or category_cap < 1:
        raise ProfileError("sample_size and category_cap must be at least 1")
    if not 8 <= kll_k <= 65535:
        raise ProfileError(f"kll_k must be between 8 and 65535, got {kll_k}")
    columns = to_columns(data, coded=True)
    wanted = _kinds(kinds, columns)
    summaries = {name: column_profile(name, arr, wanted.get(name), kll_k=kll_k,
                                      category_cap=category_cap)
                 for name, arr in columns.items()}
    rows = len(next(iter(columns.values())))
    sample = reservoir.draw(columns, sample_size, seed, _text_columns(summaries))
    return Profile(summaries, rows, sample, sample_size, category_cap, kll_k)


def _text_columns(columns: Mapping[str, ColumnProfile]) -> set[str]:
    """Columns summarised by counts alone: their sample values are kept as text."""
    return {name for name, col in columns.items() if col.quantile_sketch is None}


def _kinds(kinds: Mapping[str, ColumnKind | str] | None,
           columns: Collection[str]) -> dict[str, ColumnKind]:
    out: dict[str, ColumnKind] = {}
    for name, kind in (kinds or {}).items():
        if name not in columns:
            continue  # a reference's kinds may name columns this window lacks
        try:
            out[name] = ColumnKind(kind)
        except ValueError:
            raise ProfileError(f"unknown kind {kind!r} for column {name!r}; use one of "
                               f"{[k.value for k in ColumnKind]}") from None
    return out


def summarise(col: ColumnProfile) -> dict[str, Any]:
    """One column's statistics as plain JSON values."""
    out: dict[str, Any] = {"kind": col.kind.value, "dtype": col.dtype, "count": col.count,
                           "nulls": col.nulls, "null_share": col.null_share}
    if col.mean is not None:
        out.update(min=col.min, max=col.max, mean=col.mean, variance=col.variance)
        if col.kind == ColumnKind.NUMERIC:
            qs = col.quantiles([0.01, 0.25, 0.5, 0.75, 0.99]).tolist()
            out["quantiles"] = dict(zip(["p1", "p25", "p50", "p75", "p99"], qs, strict=True))
    if col.kind != ColumnKind.NUMERIC:
        top = sorted(col.frequencies().items(), key=lambda kv: (-kv[1], kv[0]))[:SUMMARY_TOP]
        out.update(exact=col.exact, distinct=col.distinct, top=dict(top))
    return out
