"""Error analysis (issue 18): where a model's errors fall, by slice of the rows.

Given a slice label per row for some columns (``{"cut": ["Fair", "Ideal", …], …}``) and
which rows are errors, every slice (one column's value, and pairs of values of two columns:
``cut=Fair & color=J``) answers the three questions of error analysis, each a proportion with
an exact (Clopper-Pearson) interval:

- ``share_of_errors``: what fraction of all errors falls in the slice (where fixing pays);
- ``error_rate``: what fraction of the slice's rows are errors (how bad it is there);
- ``share_of_traffic``: what fraction of all rows the slice holds (how much it matters).

``lift`` is the slice's error rate over the overall one. Slices under ``min_rows`` rows are
counted, not shown: their rates are mostly noise. Slices are ranked by ``sort``: ``share``
(most errors first, the default), ``rate`` or ``traffic``.

Pairs are formed only among the ``pair_columns`` columns whose best single slice holds the
most errors beyond what the overall rate predicts (``errors - rows * overall rate``), so the
work stays small (K columns: K(K-1)/2 crossings) and goes where errors gather. Numpy in,
dataclasses out; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from shipyard.errors import MonitoringError
from shipyard.monitoring.evaluation_stats import Interval, exact_bounds, exact_proportion

Sort = Literal["share", "rate", "traffic"]
SORTS: tuple[Sort, ...] = ("share", "rate", "traffic")
METHOD = "exact (Clopper-Pearson)"


@dataclass(frozen=True)
class ErrorSlice:
    """One slice: ``columns[i] == values[i]`` for every i (one column, or a pair)."""

    columns: tuple[str, ...]
    values: tuple[str, ...]
    rows: int
    errors: int
    share_of_errors: Interval | None  # None when there are no errors at all
    error_rate: Interval
    share_of_traffic: Interval
    lift: float | None  # error_rate / the overall rate; None when there are no errors

    @property
    def name(self) -> str:
        return " & ".join(condition(c, v)
                          for c, v in zip(self.columns, self.values, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {"slice": self.name, "columns": list(self.columns), "values": list(self.values),
                "rows": self.rows, "errors": self.errors,
                "share_of_errors": _interval(self.share_of_errors),
                "error_rate": _interval(self.error_rate),
                "share_of_traffic": _interval(self.share_of_traffic), "lift": self.lift}


@dataclass(frozen=True)
class ErrorAnalysis:
    """Every slice with at least ``min_rows`` rows, ranked by ``sort``; ``hidden_*`` count
    the smaller ones."""

    rows: int
    errors: int
    error_rate: Interval
    slices: tuple[ErrorSlice, ...]
    hidden_singles: int
    hidden_pairs: int
    pair_columns: tuple[str, ...]
    min_rows: int
    level: float
    sort: Sort

    @property
    def singles(self) -> list[ErrorSlice]:
        return [s for s in self.slices if len(s.columns) == 1]

    @property
    def pairs(self) -> list[ErrorSlice]:
        return [s for s in self.slices if len(s.columns) == 2]

    @property
    def hidden(self) -> int:
        return self.hidden_singles + self.hidden_pairs

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "errors": self.errors,
                "error_rate": _interval(self.error_rate), "sort": self.sort,
                "level": self.level, "method": METHOD, "min_rows": self.min_rows,
                "hidden": {"singles": self.hidden_singles, "pairs": self.hidden_pairs},
                "pair_columns": list(self.pair_columns),
                "singles": [s.to_dict() for s in self.singles],
                "pairs": [s.to_dict() for s in self.pairs]}


def condition(column: str, label: str) -> str:
    """``cut=Fair``; a numeric bin as ``slicing`` labels it reads ``carat < 0.4``,
    ``carat >= 1.1`` or ``carat in [0.4, 0.7)``."""
    if label.startswith(("< ", ">= ")):
        return f"{column} {label}"
    if label.startswith("[") and label.endswith(")") and ", " in label:
        return f"{column} in {label}"
    return f"{column}={label}"


def _interval(interval: Interval | None) -> dict[str, Any] | None:
    return None if interval is None else {"estimate": interval.estimate,
                                          "low": interval.low, "high": interval.high}


@dataclass(frozen=True)
class _Coded:
    """One column's slice labels as integer codes."""

    name: str
    labels: npt.NDArray[np.str_]  # the distinct labels, sorted
    codes: npt.NDArray[np.int64]  # per row, an index into ``labels``


def analyse_errors(slices: Mapping[str, Any], errors: npt.ArrayLike, *, min_rows: int = 20,
                   level: float = 0.95, sort: Sort = "share", pair_columns: int = 5,
                   ) -> ErrorAnalysis:
    """Rank the slices of ``slices`` (column -> one string label per row) by how the rows
    that ``errors`` marks fall in them (see the module docstring)."""
    wrong = np.asarray(errors)
    if wrong.dtype != np.bool_ or wrong.ndim != 1:
        raise MonitoringError("errors must be a 1-D array of booleans (True: an error)")
    _check(sort, min_rows, pair_columns, level)
    n = len(wrong)
    if n == 0:
        raise MonitoringError("error analysis needs at least one row")
    coded = [_code(name, labels, n) for name, labels in slices.items()]
    total_errors = int(wrong.sum())
    overall = exact_proportion(total_errors, n, level)
    context = _Totals(n, total_errors, overall.estimate, min_rows, level)
    singles, hidden_singles = [], 0
    for column in coded:
        shown, hidden = _slices(context, (column,), column.codes, wrong)
        singles += shown
        hidden_singles += hidden
    crossed = _pair_columns(singles, coded, overall.estimate, pair_columns)
    pairs, hidden_pairs = [], 0
    for a, b in combinations(crossed, 2):
        shown, hidden = _slices(context, (a, b), a.codes * len(b.labels) + b.codes, wrong)
        pairs += shown
        hidden_pairs += hidden
    return ErrorAnalysis(
        rows=n, errors=total_errors, error_rate=overall,
        slices=tuple(rank(singles, sort) + rank(pairs, sort)),
        hidden_singles=hidden_singles, hidden_pairs=hidden_pairs,
        pair_columns=tuple(c.name for c in crossed), min_rows=min_rows, level=level,
        sort=sort)


def _check(sort: str, min_rows: int, pair_columns: int, level: float) -> None:
    if sort not in SORTS:
        raise MonitoringError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    if min_rows < 1:
        raise MonitoringError(f"min_rows must be at least 1, not {min_rows}")
    if pair_columns < 0:
        raise MonitoringError(f"pair_columns must not be negative, not {pair_columns}")
    if not 0.0 < level < 1.0:
        raise MonitoringError(f"an interval's level is between 0 and 1, not {level!r}")


def _code(name: str, labels: Any, n: int) -> _Coded:
    values = np.asarray(labels, dtype=object)
    if values.shape != (n,):
        raise MonitoringError(f"slice column {name!r} has {values.shape} labels for {n} rows")
    distinct, codes = np.unique(values.astype(str), return_inverse=True)
    return _Coded(name, distinct, codes.astype(np.int64).reshape(-1))


@dataclass(frozen=True)
class _Totals:
    rows: int
    errors: int
    rate: float
    min_rows: int
    level: float


def _slices(totals: _Totals, columns: Sequence[_Coded], codes: npt.NDArray[np.int64],
            wrong: npt.NDArray[np.bool_]) -> tuple[list[ErrorSlice], int]:
    """The slices of one column or one crossing of two (``codes``: one per row), those with
    at least ``min_rows`` rows; and how many had fewer."""
    size = int(np.prod([len(c.labels) for c in columns]))
    if size <= len(codes):  # count by code directly
        present, inverse = np.arange(size), codes
    else:  # only the combinations present: two wide columns cross into more codes than rows
        present, inverse = np.unique(codes, return_inverse=True)
        inverse = inverse.reshape(-1)
    rows = np.bincount(inverse, minlength=len(present))
    errs = np.bincount(inverse[wrong], minlength=len(present))
    big = rows >= totals.min_rows
    small = int(np.sum((rows > 0) & ~big))  # a code no row has is no slice
    kept, k, m = present[big], errs[big], rows[big]
    rate_low, rate_high = exact_bounds(k, m, totals.level)
    traffic_low, traffic_high = exact_bounds(m, np.full_like(m, totals.rows), totals.level)
    if totals.errors:
        share_low, share_high = exact_bounds(k, np.full_like(k, totals.errors), totals.level)
    out = []
    for i, code in enumerate(kept.tolist()):
        values = np.unravel_index(code, [len(c.labels) for c in columns])
        errors, count = int(k[i]), int(m[i])
        rate = errors / count
        out.append(ErrorSlice(
            columns=tuple(c.name for c in columns),
            values=tuple(str(c.labels[v]) for c, v in zip(columns, values, strict=True)),
            rows=count, errors=errors,
            share_of_errors=None if not totals.errors else _make(
                errors / totals.errors, share_low[i], share_high[i], totals.level),
            error_rate=_make(rate, rate_low[i], rate_high[i], totals.level),
            share_of_traffic=_make(count / totals.rows, traffic_low[i], traffic_high[i],
                                   totals.level),
            lift=rate / totals.rate if totals.errors else None))
    return out, small


def _make(estimate: float, low: float, high: float, level: float) -> Interval:
    return Interval(estimate, float(low), float(high), level, METHOD)


def rank(slices: Sequence[ErrorSlice], sort: Sort) -> list[ErrorSlice]:
    """``slices`` in ``sort``'s order; ties broken by errors, then rows, then name."""
    def key(s: ErrorSlice) -> tuple[float, float, float, str]:
        rate = s.error_rate.estimate
        if sort == "rate":
            return (-rate, -s.errors, -s.rows, s.name)
        if sort == "traffic":
            return (-s.rows, -s.errors, -rate, s.name)
        return (-s.errors, -rate, -s.rows, s.name)

    return sorted(slices, key=key)


def _pair_columns(singles: Sequence[ErrorSlice], coded: Sequence[_Coded], rate: float,
                  limit: int) -> list[_Coded]:
    """The ``limit`` columns whose best slice has the most errors beyond the overall rate."""
    excess: dict[str, float] = {}
    for s in singles:
        extra = s.errors - s.rows * rate
        excess[s.columns[0]] = max(excess.get(s.columns[0], -np.inf), extra)
    chosen = sorted(excess, key=lambda c: (-excess[c], c))[:limit]
    return [c for c in coded if c.name in chosen]
