"""How often a same-distribution window shows what quality checks flag: exact p-values.

A finite reference has not seen everything, and its minimum, maximum and list of categories
are themselves drawn from the data. So the window's values are not independent trials against
fixed limits: the right null is exchangeability, that the reference's n values and the
window's m values are one shuffled sample of n + m. Each p-value here is the chance of a
result at least as extreme under that null, given what both sides hold:

- ``outside_range``: at least k of the m window values lie outside [min, max] of the n
  reference values. Of the C(n + m, n) equally likely position sets of the reference values
  in the pooled order, (N - L) C(L - 1, n - 1) + C(L, n) span at most L = N - k positions.
  Exact for continuous values; ties only make values outside less likely, so it is
  conservative on discrete data. (One new value lies outside with probability 2 / (n + 1).)
- ``new_values``: at least s window rows hold a value the reference lacks. Given the pooled
  count t of each value, a value is new when all t copies fell in the window, which happens
  with probability C(m, t) / C(N, t); values are grouped by t and the counts drawn as
  independent binomials, simulated with a fixed seed. (The exact indicators are slightly
  negatively correlated, by O(1/N): independence has the larger variance, so the small
  p-values that flag err high.)
- ``all_equal``: the m window values are all one value, P = sum over values of
  C(t, m) / C(N, m): 1 for a single value, never a false alarm.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import gammaln

from shipyard.types import Array

DRAWS = 20_000
"""Simulated draws of the new-value count (p-values resolve to ~1/DRAWS)."""


def _log_choose(a: Array | float, b: Array | float) -> Array:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.asarray(gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1))


def outside_range(n: int, m: int, outside: int) -> float:
    """P(at least ``outside`` of ``m`` new values fall outside the range of ``n`` values)."""
    if outside <= 0 or n <= 1:
        return 1.0 if outside <= 0 or n == 0 else 1.0 if outside <= m else 0.0
    total = n + m
    span = total - outside
    if span < n:
        return 0.0
    spans = np.log(total - span) + _log_choose(span - 1, n - 1) if span < total else -np.inf
    p = np.logaddexp(spans, _log_choose(span, n)) - _log_choose(total, n)
    return float(min(1.0, np.exp(p)))


def new_values(reference: Mapping[str, int], current: Mapping[str, int], seed: int = 0
               ) -> tuple[float, float]:
    """(p-value, expected new rows) for the window's rows whose value the reference lacks."""
    keys = set(reference) | set(current)
    pooled = np.array([reference.get(k, 0) + current.get(k, 0) for k in keys], dtype=np.int64)
    observed = sum(n for k, n in current.items() if reference.get(k, 0) == 0 and n > 0)
    n, m = sum(reference.values()), sum(current.values())
    if m == 0 or n == 0:
        return 1.0, 0.0
    sizes, groups = np.unique(pooled[pooled > 0], return_counts=True)
    sizes = sizes[sizes <= m]
    groups = groups[: sizes.size]
    chance = np.exp(_log_choose(m, sizes) - _log_choose(n + m, sizes))
    expected = float(np.sum(sizes * groups * chance))
    if observed == 0:
        return 1.0, expected
    draws = np.random.default_rng(seed).binomial(groups, chance, size=(DRAWS, sizes.size))
    simulated = draws @ sizes
    return float((1 + np.count_nonzero(simulated >= observed)) / (DRAWS + 1)), expected


def all_equal(others: Array, own: float, m: int) -> float:
    """P(``m`` window values are all one value): ``own`` is how often the reference holds
    the window's value, ``others`` its counts of every other value."""
    if m <= 1:
        return 1.0
    counts = np.asarray(others, dtype=np.float64)
    total = float(counts.sum()) + own + m
    terms = np.append(_log_choose(counts[counts >= m], m), _log_choose(own + m, m))
    return float(min(1.0, np.exp(np.logaddexp.reduce(terms) - _log_choose(total, m))))
