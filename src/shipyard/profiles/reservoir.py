"""A fixed-size uniform sample of whole rows, and how two samples merge.

The same rows are kept in every column, so exact two-sample tests and multivariate methods
(MMD, a domain classifier) can run on the sample with bounded memory.

Merging: a uniform sample of size k from the union of A (``rows_a`` rows) and B takes
X ~ Hypergeometric(rows_a, rows_b, k) rows from A and k - X from B, each drawn without
replacement from that side's own uniform sample. X never exceeds what a side holds: a side
either kept all its rows or at least ``capacity >= k`` of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

import numpy as np

from shipyard.profiles.columns import value_key
from shipyard.profiles.frame import Coded, Column
from shipyard.types import Array, Columns, num_rows


def draw(columns: Mapping[str, Column], capacity: int, seed: int | None,
         text: Set[str]) -> Columns:
    """Up to ``capacity`` rows drawn uniformly without replacement, in their original order.
    Columns named in ``text`` (those summarised by counts only) are stored as object arrays
    of ``value_key`` strings and None, like the keys of their counts."""
    rows = len(next(iter(columns.values())))
    if rows <= capacity:
        picked = None
    else:
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(rows, size=capacity, replace=False))
    return {name: _stored(_rows(arr, picked), name in text) for name, arr in columns.items()}


def _rows(arr: Column, picked: Array | None) -> Array:
    if isinstance(arr, Coded):
        return arr.values(picked)
    return arr if picked is None else arr[picked]


def merge(a: Columns, rows_a: int, b: Columns, rows_b: int, capacity: int,
          seed: int | None, text: Set[str]) -> Columns:
    """A uniform sample of the union of the two samples' populations (see module doc)."""
    size_a = num_rows(a)
    size_b = num_rows(b)
    k = min(capacity, rows_a + rows_b)
    rng = np.random.default_rng(None if seed is None else [seed, rows_a, rows_b])
    from_a = int(rng.hypergeometric(rows_a, rows_b, k)) if rows_a and rows_b else \
        (k if rows_a else 0)
    from_a = min(from_a, size_a)
    from_b = min(k - from_a, size_b)
    pick_a = np.sort(rng.choice(size_a, size=from_a, replace=False))
    pick_b = np.sort(rng.choice(size_b, size=from_b, replace=False))
    return {name: np.concatenate([_stored(a[name][pick_a], name in text),
                                  _stored(b[name][pick_b], name in text)])
            for name in a}


def _stored(arr: Array, text: bool) -> Array:
    if text:
        out = np.empty(len(arr), dtype=object)
        out[:] = [value_key(v) for v in arr.tolist()]
        return out
    if arr.dtype.kind == "O":  # a side that saw only nulls, merged into numbers
        return np.full(len(arr), np.nan)
    return np.array(arr)
