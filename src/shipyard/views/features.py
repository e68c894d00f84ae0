"""What a report shows of one feature: its reference and current distributions as summaries
(shares per bin on shared edges, or per category; quantiles; missing share). A side is a
profile's column (its sketches: a package's reference) or the column's values (exact, and the
same on every run; a sketch's quantiles are randomised). A report carries only these
summaries, so its size grows with the number of features, not with the data."""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from shipyard.errors import ProfileError
from shipyard.profiles import ColumnKind, value_key

BINS = 20  # bars of a numeric feature's histogram
TOP_CATEGORIES = 15  # categories shown by name; the rest are summed as "other"
NEW_CATEGORIES = 10  # categories only the current data has, named at most
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
LABEL_CHARS = 200  # a category's name is cut to this many characters


class Side(Protocol):
    """One side of a feature: what ``ColumnProfile`` and ``Values`` both answer."""

    @property
    def count(self) -> int: ...
    @property
    def null_share(self) -> float: ...
    def quantiles(self, q: Any) -> Any: ...
    def cdf(self, points: Any) -> Any: ...
    def frequencies(self) -> dict[str, int]: ...


class Values:
    """A column's values as a ``Side``: exact quantiles, CDF and category counts (nulls are
    None or NaN, as in a profile)."""

    def __init__(self, values: Any, kind: str) -> None:
        arr = np.asarray(values)
        self.count = len(arr)
        self.numbers: np.ndarray | None = None
        self._counts: Counter[str] = Counter()
        if kind == ColumnKind.NUMERIC:
            numbers = _floats(arr)
            self.nulls = int(np.isnan(numbers).sum())
            self.numbers = np.sort(numbers[~np.isnan(numbers)])
        else:  # count the raw values (C speed), then key the few distinct ones
            for value, n in Counter(arr.tolist()).items():
                key = value_key(value)
                if key is not None:
                    self._counts[key] += n
            self.nulls = self.count - sum(self._counts.values())

    @property
    def null_share(self) -> float:
        return self.nulls / self.count if self.count else 0.0

    def quantiles(self, q: Any) -> Any:
        if self.numbers is None or not self.numbers.size:
            return np.full(len(q), np.nan)
        return np.quantile(self.numbers, q)

    def cdf(self, points: Any) -> Any:
        if self.numbers is None or not self.numbers.size:
            return np.full(len(points), np.nan)
        return np.searchsorted(self.numbers, points, side="right") / self.numbers.size

    def frequencies(self) -> dict[str, int]:
        return dict(self._counts)


def feature_summaries(reference: Mapping[str, Side], current: Mapping[str, Side],
                      kinds: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Per feature of ``kinds`` (name -> kind, as the drift test saw it) on both sides, its
    two distributions."""
    return {name: feature_summary(reference[name], current[name], kind)
            for name, kind in kinds.items() if name in reference and name in current}


def sides(columns: Mapping[str, Any], kinds: Mapping[str, str]) -> dict[str, Side]:
    """Raw columns (name -> values) as sides, for the features in ``kinds``."""
    return {n: Values(columns[n], kinds[n]) for n in kinds if n in columns}


def feature_summary(ref: Side, cur: Side, kind: str) -> dict[str, Any]:
    """``kind``, ``missing`` (share of nulls per side), ``rows`` per side, and either a
    ``histogram`` with ``quantiles`` (numeric) or ``categories``."""
    out: dict[str, Any] = {
        "kind": str(kind), "rows": {"reference": ref.count, "current": cur.count},
        "missing": {"reference": _round(ref.null_share), "current": _round(cur.null_share)}}
    if kind == ColumnKind.NUMERIC:
        if _has_values(ref) and _has_values(cur):
            out["histogram"] = _histogram(ref, cur)
            out["quantiles"] = {"q": list(QUANTILES),
                                "reference": _values(ref.quantiles(QUANTILES)),
                                "current": _values(cur.quantiles(QUANTILES))}
        return out
    with contextlib.suppress(ProfileError):  # a profile that kept no counts for it
        out["categories"] = _categories(ref.frequencies(), cur.frequencies())
    return out


def _has_values(side: Side) -> bool:
    return bool(np.isfinite(np.asarray(side.quantiles([0.5]), dtype=np.float64)).all())


def _floats(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "iufb":
        return arr.astype(np.float64)
    out = np.full(len(arr), np.nan)
    for i, v in enumerate(arr.tolist()):
        try:
            out[i] = float(v) if v is not None else np.nan
        except (TypeError, ValueError):
            continue
    return out


def _histogram(ref: Side, cur: Side) -> dict[str, Any]:
    """Shares of each side's values per bin, on edges spanning both sides' 0.5-99.5 %
    quantiles (values beyond fall in the first or last bin)."""
    ends = np.concatenate([ref.quantiles([0.005, 0.995]), cur.quantiles([0.005, 0.995])])
    lo, hi = float(np.nanmin(ends)), float(np.nanmax(ends))
    if not hi > lo:  # one value: a bin around it
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, BINS + 1)
    return {"edges": _values(edges), "reference": _shares(ref, edges),
            "current": _shares(cur, edges)}


def _shares(col: Side, edges: np.ndarray) -> list[float]:
    inner = col.cdf(edges[1:-1])
    cumulative = np.concatenate([[0.0], inner, [1.0]])
    return [_round(max(0.0, float(v))) for v in np.diff(cumulative)]


def _categories(ref: Mapping[str, int], cur: Mapping[str, int]) -> dict[str, Any]:
    """The categories most common on either side (by the larger share), each side's share
    of them, the rest as ``other``, and the ``new`` ones only the current side has."""
    ref_total, cur_total = sum(ref.values()) or 1, sum(cur.values()) or 1
    weight = {k: max(ref.get(k, 0) / ref_total, cur.get(k, 0) / cur_total)
              for k in {*ref, *cur}}
    labels = sorted(weight, key=lambda k: (-weight[k], k))[:TOP_CATEGORIES]
    ref_shares = [_round(ref.get(k, 0) / ref_total) for k in labels]
    cur_shares = [_round(cur.get(k, 0) / cur_total) for k in labels]
    new = sorted((k for k in cur if k not in ref), key=lambda k: (-cur[k], k))
    return {"labels": [_label(k) for k in labels], "reference": ref_shares,
            "current": cur_shares,
            "other": {"reference": _round(max(0.0, 1 - sum(ref.get(k, 0) for k in labels)
                                              / ref_total)),
                      "current": _round(max(0.0, 1 - sum(cur.get(k, 0) for k in labels)
                                            / cur_total))},
            "new": [_label(k) for k in new[:NEW_CATEGORIES]], "new_count": len(new),
            "new_share": _round(sum(cur[k] for k in new) / cur_total)}


def _label(key: str) -> str:
    """A category as the report names it: free text (a comment, a URL) cut to
    ``LABEL_CHARS``, so a page's size stays bounded by its features, not by its values."""
    return key if len(key) <= LABEL_CHARS else key[:LABEL_CHARS - 1] + "\u2026"


def _values(arr: Any) -> list[float | None]:
    return [_round(float(v)) for v in np.asarray(arr, dtype=np.float64).ravel()]


def _round(value: float) -> Any:
    """Six significant digits (a report shows shapes, not ten-digit floats); None for NaN."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")
