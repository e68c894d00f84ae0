"""The statistics of an offline evaluation (issue 18): intervals for a metric and paired
comparisons of two models on the same rows. Pure numpy/scipy: numbers in, dataclasses out.

- ``exact_proportion``: a Clopper-Pearson interval for a proportion (accuracy, an error rate):
  exact, so it covers at least its level for every true rate and sample size.
- ``bootstrap``: a percentile interval for any metric, by resampling rows with replacement;
  the metric is a function of row indices, so one resampling serves every metric.
- ``mcnemar``: the exact McNemar test of two classifiers' correctness on the same rows (a
  binomial test on the rows where exactly one is right), with the difference in accuracy and
  its interval.
- ``paired_bootstrap``: the difference of any metric between two models on the same rows, its
  interval and a two-sided p-value, resampling rows (not models) so the pairing is kept.

A resample on which a metric is undefined (``None``: one class only, say) is left out; when
more than ``MAX_UNDEFINED`` of them are, there is no interval (``None``), rather than one
drawn from the resamples that happened to work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shipyard.errors import MonitoringError

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Statistic = Callable[[IntArray], float | None]
"""A metric of the rows at these indices (a resample: indices repeat)."""

MAX_UNDEFINED = 0.1


@dataclass(frozen=True)
class Interval:
    """``estimate`` with a two-sided ``level`` interval [low, high]."""

    estimate: float
    low: float
    high: float
    level: float
    method: str

    def to_dict(self) -> dict[str, float | str]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "level": self.level, "method": self.method}


@dataclass(frozen=True)
class Comparison:
    """Model A against model B on the same rows: ``difference`` = A - B, its interval, and the
    p-value of "no difference" (two-sided)."""

    difference: float
    interval: Interval | None
    p_value: float
    method: str
    a_only: int | None = None  # McNemar: rows only A got right
    b_only: int | None = None  # ... only B

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def _level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise MonitoringError(f"an interval's level is between 0 and 1, not {level!r}")
    return level


def exact_proportion(successes: int, n: int, level: float = 0.95) -> Interval:
    """Clopper-Pearson: the interval of every rate under which ``successes`` of ``n`` is not
    in either tail of ``(1 - level) / 2``."""
    if n <= 0 or not 0 <= successes <= n:
        raise MonitoringError(f"a proportion needs 0 <= successes <= n and n > 0, got "
                              f"{successes} of {n}")
    low, high = exact_bounds(np.array([successes]), np.array([n]), level)
    return Interval(successes / n, float(low[0]), float(high[0]), level,
                    "exact (Clopper-Pearson)")


def exact_bounds(successes: IntArray, n: IntArray, level: float = 0.95,
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``exact_proportion``'s bounds for many proportions at once (one scipy call each side,
    not one per proportion): arrays of successes and of trials, ``0 <= successes <= n``,
    ``n > 0``."""
    from scipy import stats

    _level(level)
    k = np.asarray(successes, dtype=np.float64)
    trials = np.asarray(n, dtype=np.float64)
    tail = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):  # the edges are set below
        low = np.where(k == 0, 0.0, stats.beta.ppf(tail, np.maximum(k, 1), trials - k + 1))
        high = np.where(k == trials, 1.0, stats.beta.ppf(1.0 - tail, k + 1,
                                                          np.maximum(trials - k, 1)))
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def resamples(rows: int, count: int, seed: int) -> IntArray:
    """``count`` bootstrap resamples of ``rows`` row indices, one per row of the result."""
    if rows <= 0:
        raise MonitoringError("a bootstrap needs at least one row")
    if count < 1:
        raise MonitoringError(f"a bootstrap needs at least one resample, not {count}")
    return np.random.default_rng(seed).integers(0, rows, size=(count, rows), dtype=np.int64)


def _values(statistic: Statistic, draws: IntArray) -> npt.NDArray[np.float64] | None:
    return _kept([statistic(d) for d in draws])


def _kept(values: Sequence[float | None]) -> npt.NDArray[np.float64] | None:
    """The defined, finite values; None when more than ``MAX_UNDEFINED`` are not."""
    kept = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(kept) < (1.0 - MAX_UNDEFINED) * len(values):
        return None
    return kept


def bootstrap(statistic: Statistic, rows: int, *, level: float = 0.95, count: int = 1000,
              seed: int = 0) -> Interval | None:
    """The percentile interval of ``statistic`` over ``count`` resamples of the rows; None
    when the metric is undefined on the rows or on too many resamples."""
    return bootstrap_many(lambda i: {"m": statistic(i)}, ("m",), rows, level=level,
                          count=count, seed=seed)["m"]


def bootstrap_many(statistics: Callable[[IntArray], Mapping[str, float | None]],
                   names: Sequence[str], rows: int, *, level: float = 0.95,
                   count: int = 1000, seed: int = 0) -> dict[str, Interval | None]:
    """``bootstrap`` of several metrics at once: ``statistics`` computes them all on one
    resample (one pass over the rows for every metric), each gets its percentile interval."""
    _level(level)
    estimate = statistics(np.arange(rows, dtype=np.int64))
    out: dict[str, Interval | None] = dict.fromkeys(names)
    wanted = [n for n in names if estimate.get(n) is not None]
    if not wanted:
        return out
    drawn = [statistics(d) for d in resamples(rows, count, seed)]
    tail = (1.0 - level) / 2.0
    for name in wanted:
        values = _kept([d.get(name) for d in drawn])
        if values is None:
            continue
        low, high = np.quantile(values, [tail, 1.0 - tail])
        point = estimate[name]
        assert point is not None
        out[name] = Interval(float(point), float(low), float(high), level,
                             f"bootstrap percentile ({count} resamples)")
    return out


def mcnemar(correct_a: npt.ArrayLike, correct_b: npt.ArrayLike, *,
            level: float = 0.95) -> Comparison:
    """Exact McNemar: under "equally accurate", each row only one model got right is A's with
    probability 1/2. The interval of the accuracy difference is the exact interval of that
    share among the discordant rows, scaled back to all rows."""
    from scipy import stats

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise MonitoringError(f"McNemar needs two equally long, non-empty rows of "
                              f"right/wrong, got shapes {a.shape} and {b.shape}")
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(b & ~a))
    discordant = a_only + b_only
    n = len(a)
    difference = (a_only - b_only) / n
    if discordant == 0:
        return Comparison(0.0, Interval(0.0, 0.0, 0.0, level, "exact McNemar"), 1.0,
                          "exact McNemar", a_only, b_only)
    p_value = float(stats.binomtest(a_only, discordant, 0.5).pvalue)
    share = exact_proportion(a_only, discordant, level)
    # A - B = discordant / n * (2 * share - 1)
    scale = discordant / n
    interval = Interval(difference, scale * (2 * share.low - 1), scale * (2 * share.high - 1),
                        level, "exact McNemar (conditional on the discordant rows)")
    return Comparison(difference, interval, p_value, "exact McNemar", a_only, b_only)


def paired_bootstrap(statistic_a: Statistic, statistic_b: Statistic, rows: int, *,
                     level: float = 0.95, count: int = 1000, seed: int = 0) -> Comparison:
    """A - B of a metric on the same rows: the percentile interval over resamples of the rows
    (both models on the same resample), and the two-sided p-value of a difference as far
    from zero (the share of resampled differences on the other side of zero, doubled)."""
    _level(level)
    every = np.arange(rows, dtype=np.int64)
    first, second = statistic_a(every), statistic_b(every)
    if first is None or second is None:
        raise MonitoringError("the metric is not defined on these rows for both models")

    def difference(indices: IntArray) -> float | None:
        x, y = statistic_a(indices), statistic_b(indices)
        return None if x is None or y is None else x - y

    observed = first - second
    values = _values(difference, resamples(rows, count, seed))
    if values is None:
        return Comparison(observed, None, 1.0, "paired bootstrap")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    below = (np.sum(values <= 0.0) + 1) / (len(values) + 1)
    above = (np.sum(values >= 0.0) + 1) / (len(values) + 1)
    p_value = float(min(1.0, 2.0 * min(below, above)))
    interval = Interval(observed, float(low), float(high), level,
                        f"paired bootstrap percentile ({count} resamples)")
    return Comparison(observed, interval, p_value, "paired bootstrap")
