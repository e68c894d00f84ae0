"""One side's category counts, and how two sides compare like with like when one is estimated.

A profile keeps exact counts up to ``category_cap`` distinct values, then a frequent-items
sketch: it lists the most frequent values with counts that may be too high by up to the
sketch's error, and lumps every other value into what it does not list. Raw data lists every
value. Comparing the two cell by cell makes hundreds of values look new (they are only
unlisted), so ``summary_table`` reduces both sides to the same summary: the values common
enough for a cell of their own (Cochran's rule at the most times each side may hold them),
plus one "other" cell for every rarer value, listed or not. Rare values must go to "other"
on both sides alike: the estimate's unlisted tail is there, so a small window's rare values
set one by one against the estimate's error bound (or pooled apart from "other") look like a
change no value shows (a 5,000-value Zipf column: 86% of 1,000-row windows against a
100k-row profile drifted; raw reference: none).
Each estimated count is then taken, within its error band, as close to the other side's
share as the band allows: the smallest difference the estimates are consistent with, so a
sketch never makes a change look larger than the data behind it could (as the KS test
subtracts a quantile sketch's rank error).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from shipyard.types import Array

OTHER = "__other__"


@dataclass(frozen=True)
class Counts:
    """One side of a categorical or binary column: non-null counts per value (as text).

    ``total`` is the non-null count. When the counts are a frequent-items estimate
    (``exact`` False), each listed count may exceed the true one by up to ``error``, and a
    value not listed occurred at most ``error`` times.
    """

    counts: Mapping[str, int]
    total: int
    exact: bool = True
    error: int = 0

    def highest(self, key: str) -> int:
        """The most times ``key`` may have occurred."""
        return self.counts.get(key, 0 if self.exact else self.error)

    @property
    def other(self) -> int:
        return max(0, self.total - sum(self.counts.values()))

    def bounds(self, keys: list[str]) -> tuple[Array, Array]:
        """The lowest and highest share of the non-null rows each value may have."""
        if self.exact:
            low = high = np.array([self.counts.get(k, 0) for k in keys], dtype=np.float64)
        else:  # a listed estimate is an upper bound; an unlisted value occurred <= error times
            high = np.array([self.counts.get(k, self.error) for k in keys], dtype=np.float64)
            low = np.maximum(high - self.error, 0.0)
        total = max(self.total, 1)
        return low / total, high / total


def summary_table(ref: Counts, cur: Counts, min_expected: float
                  ) -> tuple[list[str], Array, Array]:
    """Count vectors of both sides over the values common enough for a cell of their own,
    plus "other" for the rest (module doc). A value is rare when, even at the most times
    each side may hold it, it is expected fewer than ``min_expected`` times on the smaller
    side (Cochran's rule, as ``statistics`` pools exact tables)."""
    smaller = min(ref.total, cur.total) / max(ref.total + cur.total, 1)
    keys = [k for k in dict.fromkeys([*ref.counts, *cur.counts])
            if (ref.highest(k) + cur.highest(k)) * smaller >= min_expected]
    low_r, high_r = ref.bounds(keys)
    low_c, high_c = cur.bounds(keys)
    p, q = _closest(low_r, high_r, low_c, high_c)
    p, q = _balance(p, low_r, high_r, q, low_c, high_c)
    r = np.append(p * ref.total, max(0.0, ref.total * (1.0 - float(p.sum()))))
    c = np.append(q * cur.total, max(0.0, cur.total * (1.0 - float(q.sum()))))
    return [*keys, OTHER], r, c


def _closest(low_a: Array, high_a: Array, low_b: Array, high_b: Array) -> tuple[Array, Array]:
    """A point in each pair of intervals, as close to each other as the intervals allow:
    the middle of their overlap, or the facing ends when they do not overlap."""
    low = np.maximum(low_a, low_b)
    high = np.minimum(high_a, high_b)
    middle = 0.5 * (low + high)
    overlap = low <= high
    a = np.where(overlap, middle, np.where(high_a < low_b, high_a, low_a))
    b = np.where(overlap, middle, np.where(high_a < low_b, low_b, high_b))
    return a, b


def _balance(a: Array, low_a: Array, high_a: Array, b: Array, low_b: Array, high_b: Array
             ) -> tuple[Array, Array]:
    """Shift shares within their bounds so both sides leave the same share to "other", as
    far as the bounds allow. Cell by cell the closest points leave each estimated count's
    error on one side; summed over a thousand values they would pile up in "other" and look
    like a change no value shows."""
    gap = float(b.sum() - a.sum())  # > 0: a leaves more to "other" than b does
    if gap > 0:
        a, gap = _shift(a, high_a, gap)
        b, _ = _shift(b, low_b, gap)
    elif gap < 0:
        b, rest = _shift(b, high_b, -gap)
        a, _ = _shift(a, low_a, rest)
    return a, b


def _shift(x: Array, limit: Array, amount: float) -> tuple[Array, float]:
    """Move ``x`` toward ``limit`` by ``amount`` in total (proportionally to the room each
    cell has); what the room could not take is returned."""
    room = limit - x
    total = float(np.abs(room).sum())
    if total <= 0 or amount <= 0:
        return x, amount
    share = min(1.0, amount / total)
    return x + share * room, amount - share * total
