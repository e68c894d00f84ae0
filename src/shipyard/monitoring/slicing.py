"""Which slice each row belongs to, per slice column (issue 18). Pure numpy.

A slice column is cut the same way in every window, from the reference, so a window's slices
compare with last week's:

- a **categorical** column (text, booleans, a binary or categorical column of the reference
  profile): each value is its own slice, labelled by its text (``value_key``: ``1`` and
  ``1.0`` are one slice, ``"1"``), values the reference never saw included;
- a **numeric** column: bins between the reference's quantiles (quartiles by default), each
  half-open ``[low, high)`` and labelled ``"< 0.2"``, ``"[0.2, 0.7)"``, ``">= 0.7"``; edges
  print with the fewest significant digits (3 at least) that keep them distinct;
- a missing value (None, NaN) is the slice ``"missing"`` in either kind.

    bins = reference_bins(reference_profile, ["cut", "carat"])
    labels = assign_slices({"cut": window["cut"], "carat": window["carat"]}, bins)
    labels["carat"]          # array(['< 0.4', '[0.4, 0.7)', 'missing', ...])

``bins_of_values`` cuts a column from raw reference values (a sample) instead of a profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.errors import MonitoringError
from shipyard.monitoring.performance import is_missing
from shipyard.profiles import ColumnKind, Profile, value_key

MISSING = "missing"
"""The slice of rows whose value is missing (None or NaN), in every column."""
DEFAULT_BINS = 4
"""A numeric column's slices: between its reference quartiles."""

Labels = npt.NDArray[np.str_]
"""One slice label per row."""


@dataclass(frozen=True)
class SliceBins:
    """How one column is cut into slices: ``edges`` (ascending, distinct, finite) for a
    numeric column, cut into ``len(edges) + 1`` half-open bins; None for a categorical
    column, whose values are its slices."""

    column: str
    edges: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.edges is not None:
            edges = tuple(float(e) for e in self.edges)
            if not all(np.isfinite(edges)) or any(a >= b for a, b in pairwise(edges)):
                raise MonitoringError(f"slice column {self.column!r}: bin edges must be "
                                      f"finite and strictly ascending, not {list(edges)}")
            object.__setattr__(self, "edges", edges)

    @property
    def numeric(self) -> bool:
        return self.edges is not None

    @property
    def labels(self) -> list[str]:
        """The numeric bins' labels, lowest first (empty for a categorical column)."""
        if not self.edges:
            return [] if self.edges is None else ["all"]
        text = _edge_texts(self.edges)
        inner = [f"[{a}, {b})" for a, b in pairwise(text)]
        return [f"< {text[0]}", *inner, f">= {text[-1]}"]

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": "numeric" if self.numeric else "categorical",
                "edges": None if self.edges is None else list(self.edges)}


def _edge_texts(edges: Sequence[float]) -> list[str]:
    for digits in range(3, 18):
        text = [f"{e:.{digits}g}" for e in edges]
        if len(set(text)) == len(text):
            return text
    return [repr(e) for e in edges]


def _quantile_ranks(bins: int) -> list[float]:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise MonitoringError(f"a numeric slice column needs at least 2 bins, not {bins!r}")
    return [i / bins for i in range(1, bins)]


def _edges(quantiles: npt.ArrayLike) -> tuple[float, ...]:
    values = np.asarray(quantiles, dtype=np.float64)
    return tuple(float(v) for v in np.unique(values[np.isfinite(values)]))


def reference_bins(profile: Profile, columns: Sequence[str], *,
                   bins: int = DEFAULT_BINS) -> dict[str, SliceBins]:
    """Each column's cut, from the reference profile: numeric columns at the quantiles
    ``1/bins .. (bins-1)/bins`` of its quantile sketch, the others as categories. Raises
    :class:`MonitoringError` naming a column the profile does not have."""
    ranks = _quantile_ranks(bins)
    missing = [c for c in columns if c not in profile.columns]
    if missing:
        raise MonitoringError(f"slice column{'s' if len(missing) > 1 else ''} "
                              f"{', '.join(map(repr, missing))} not in the reference; it has "
                              f"{', '.join(profile.columns)}")
    out: dict[str, SliceBins] = {}
    for name in columns:
        column = profile.columns[name]
        if column.kind == ColumnKind.NUMERIC and column.quantile_sketch is not None:
            out[name] = SliceBins(name, _edges(column.quantiles(ranks)))
        else:
            out[name] = SliceBins(name)
    return out


def bins_of_values(column: str, values: npt.ArrayLike, *, bins: int = DEFAULT_BINS,
                   categorical: bool | None = None) -> SliceBins:
    """A column's cut from raw reference values: numbers (more than two distinct ones, unless
    ``categorical`` says otherwise) at their quantiles, anything else as categories."""
    ranks = _quantile_ranks(bins)
    array = np.asarray(values)
    if categorical is None:
        categorical = array.dtype.kind not in "fiu" or len(np.unique(
            array[~is_missing(array)])) <= 2
    if categorical:
        return SliceBins(column)
    numbers = array.astype(np.float64)
    numbers = numbers[np.isfinite(numbers)]
    if len(numbers) == 0:
        return SliceBins(column, ())
    return SliceBins(column, _edges(np.quantile(numbers, ranks)))


def assign_slices(values: Mapping[str, npt.ArrayLike],
                  bins: Mapping[str, SliceBins]) -> dict[str, Labels]:
    """Each column's slice label per row (an array as long as the column), for every column
    of ``bins``. Raises :class:`MonitoringError` when a column is absent from ``values`` or
    holds text where the reference cut numbers."""
    absent = [c for c in bins if c not in values]
    if absent:
        raise MonitoringError(f"slice column{'s' if len(absent) > 1 else ''} "
                              f"{', '.join(map(repr, absent))} not among the rows' columns "
                              f"{', '.join(values)}")
    return {name: (_numeric_labels(cut, np.asarray(values[name])) if cut.numeric
                   else _category_labels(np.asarray(values[name])))
            for name, cut in bins.items()}


def _category_labels(array: npt.NDArray[Any]) -> Labels:
    if array.ndim != 1:
        raise MonitoringError(f"a slice column is one value per row, got shape {array.shape}")
    if array.dtype.kind == "O":
        items = array.tolist()
        keys = {v: value_key(v) for v in _hashable(items)}
        texts = [keys[v] if _is_hashable(v) else value_key(v) for v in items]
        return np.array([MISSING if t is None else t for t in texts], dtype=np.str_)
    distinct, inverse = np.unique(array, return_inverse=True)
    text = [value_key(v) for v in distinct.tolist()]
    lookup = np.array([MISSING if t is None else t for t in text] or [MISSING], dtype=np.str_)
    return lookup[inverse.reshape(-1)] if len(distinct) else np.array([], dtype=np.str_)


def _is_hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _hashable(items: list[Any]) -> set[Any]:
    return {v for v in items if _is_hashable(v)}


def _numeric_labels(cut: SliceBins, array: npt.NDArray[Any]) -> Labels:
    if array.ndim != 1:
        raise MonitoringError(f"a slice column is one value per row, got shape {array.shape}")
    missing = is_missing(array)
    numbers = np.full(len(array), np.nan)
    try:
        numbers[~missing] = array[~missing].astype(np.float64)
    except (TypeError, ValueError):
        raise MonitoringError(f"slice column {cut.column!r} is numeric in the reference but "
                              f"holds {array.dtype} values such as "
                              f"{array[~missing][:3].tolist()!r}") from None
    edges = np.asarray(cut.edges, dtype=np.float64)
    labels = np.array(cut.labels, dtype=np.str_)
    index = np.searchsorted(edges, np.where(np.isnan(numbers), 0.0, numbers), side="right")
    out = labels[index]
    if np.isnan(numbers).any():
        out = out.astype(np.result_type(out.dtype, np.array([MISSING]).dtype))
        out[np.isnan(numbers)] = MISSING
    return out
