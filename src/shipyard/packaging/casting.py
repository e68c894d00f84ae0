"""Cast numbers to a declared dtype only where every value fits.

numpy casts silently: ``1e30`` into int64 becomes -9223372036854775808, ``-1`` into uint8
becomes 255, ``1e300`` into float32 becomes inf. ``cast`` refuses such a cast with a
message naming the first value that does not fit. The check is vectorised and runs only
where the two dtypes allow an overflow at all (int64 into int64 or float32 costs nothing
extra), so the hot path stays as fast as a plain ``astype``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from shipyard.types import Array


@functools.lru_cache(maxsize=256)
def could_overflow(source: np.dtype[Any], target: np.dtype[Any]) -> bool:
    """Whether some value of ``source`` changes magnitude or sign when cast to ``target``
    (precision lost from int64 to float64 is no overflow)."""
    if source == target or source.kind == "b":
        return False
    if target.kind in "iu":
        return source.kind not in "iu" or not np.can_cast(source, target, "safe")
    if target.kind == "f":
        if source.kind == "f":
            return source.itemsize > target.itemsize
        if source.kind in "iu":
            return float(np.iinfo(source).max) > float(np.finfo(target).max)
    return False


def cast(arr: Array, target: np.dtype[Any] | str) -> Array | str:
    """``arr`` as ``target``, or a message naming a value that does not fit it. For an
    integer target, float values must already be whole numbers (NaN is the caller's)."""
    want = target if isinstance(target, np.dtype) else np.dtype(target)
    if not could_overflow(arr.dtype, want) or arr.size == 0:
        return arr.astype(want, copy=False)
    if want.kind == "f":
        largest = _largest(want)
        # the usual case, in one pass: a sum of squares within largest² bounds every value
        # (NaN, inf or a sum that overflows fail the test and take the exact check below)
        if (float(np.vdot(arr, arr)) <= largest * largest if arr.dtype.kind == "f"
                else -largest <= arr.min() and arr.max() <= largest):
            return arr.astype(want)
        with np.errstate(over="ignore"):  # rare: round to the largest value, or overflow?
            out = arr.astype(want)
        bad = np.isinf(out) & ~np.isinf(arr)
        if bad.any():
            return _message(arr[bad], bad.sum(), want, f"largest magnitude {largest:g}")
        return out
    low, high = _bounds(want)
    if arr.dtype.kind in "iu":
        # as Python ints: comparing int64 with uint64 bounds in numpy would go through float
        if int(arr.min()) >= low and int(arr.max()) <= high:
            return arr.astype(want)
        bad = np.fromiter((not low <= int(v) <= high for v in arr.ravel()), bool, arr.size)
    else:
        # the bounds as float64 are exact (powers of two): [min, max + 1)
        wide = arr.astype(np.float64, copy=False) if arr.dtype.itemsize < 8 else arr
        inside = (wide >= float(low)) & (wide < float(high + 1))
        if inside.all():
            return arr.astype(want)
        bad = (~inside & ~np.isnan(arr)).ravel()
        if not bad.any():  # only NaN outside: the caller's business
            return arr.astype(want)
    return _message(arr.ravel()[bad], bad.sum(), want, f"{low} to {high}")


@functools.lru_cache(maxsize=16)
def _bounds(dtype: np.dtype[Any]) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


@functools.lru_cache(maxsize=16)
def _largest(dtype: np.dtype[Any]) -> float:
    return float(np.finfo(dtype).max)


def _message(bad: Array, count: Any, want: np.dtype[Any], bounds: str) -> str:
    first = bad.ravel()[0].item()
    more = f" (and {int(count) - 1} more)" if count > 1 else ""
    return f"value {first!r}{more} does not fit {want.name} ({bounds})"
