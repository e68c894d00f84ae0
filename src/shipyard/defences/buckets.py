"""Token buckets as GCRA (the generic cell rate algorithm): the pure arithmetic.

A bucket of ``burst`` tokens refilled at ``rate`` tokens a second is one number per key: its
theoretical arrival time ``tat`` (when the bucket would be full again). A request at ``now``
is allowed when ``max(tat, now) + 1/rate - now <= burst/rate``; it then moves ``tat`` to
that sum. So a fresh key gets ``burst`` requests at once, then ``rate`` a second; over any
window of ``w`` seconds at most ``burst + rate * w`` are allowed. The Redis store
(``stores/rate_limits.py``) runs the same arithmetic in a Lua script.

``MemoryBuckets`` holds the ``tat`` of each key in a dict, for one process. Nothing here
reads a clock: the caller passes ``now`` (``time.monotonic()`` for one process).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from shipyard.errors import ShipyardError


class RateError(ShipyardError):
    """A rate limit that is not valid (rate or burst not positive)."""


@dataclass(frozen=True)
class Rate:
    """``rate`` requests a second on average, ``burst`` at most at once."""

    rate: float
    burst: int
    # seconds one request's token takes to come back; seconds an empty bucket takes to fill
    # (how long a key's state matters): computed once, read on every request
    interval: float = field(init=False, repr=False, compare=False)
    span: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float) \
                or not 0 < self.rate < math.inf:
            raise RateError(f"rate must be a positive number of requests a second, not "
                            f"{self.rate!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise RateError(f"burst must be a whole number of requests, at least 1, not "
                            f"{self.burst!r}")
        object.__setattr__(self, "interval", 1.0 / self.rate)
        object.__setattr__(self, "span", self.burst / self.rate)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may go; if not, which limit refused it (its index in the list
    checked) and the seconds until it would be allowed."""

    allowed: bool
    limit: int = -1
    retry_after_s: float = 0.0

    @property
    def retry_after(self) -> int:
        """``Retry-After`` in whole seconds, at least 1 (a client must not retry at once)."""
        return max(1, math.ceil(self.retry_after_s - 1e-9))


ALLOWED = Verdict(True)


def step(tat: float | None, now: float, rate: Rate) -> tuple[bool, float, float]:
    """One request against one bucket: ``(allowed, new tat, seconds to wait)``; the new tat
    is the old one when refused (a refused request costs nothing)."""
    start = now if tat is None or tat < now else tat
    moved = start + rate.interval
    wait = moved - now - rate.span
    if wait > 0:
        return False, start, wait
    return True, moved, 0.0


def take(tats: Sequence[float | None], now: float,
         rates: Sequence[Rate]) -> tuple[Verdict, list[float]]:
    """One request against several buckets at once: allowed only if every bucket allows it,
    and then every bucket is charged; else none is, and the verdict names the first bucket
    that refused (the one with the longest wait when several do)."""
    moved: list[float] = []
    refused, longest = -1, 0.0
    for i, (tat, rate) in enumerate(zip(tats, rates, strict=True)):
        ok, new, wait = step(tat, now, rate)
        moved.append(new)
        if not ok and wait > longest:
            refused, longest = i, wait
    if refused >= 0:
        return Verdict(False, refused, longest), [t if t is not None else now for t in tats]
    return ALLOWED, moved


class MemoryBuckets:
    """Each key's ``tat`` in this process. Keys whose bucket is full again are forgotten
    (a full bucket and no state are the same), swept at most every ``sweep_s`` seconds, so
    memory follows the keys active within a bucket's span."""

    def __init__(self, sweep_s: float = 60.0) -> None:
        self._tats: dict[str, float] = {}
        self._sweep_s = sweep_s
        self._swept = -math.inf

    def __len__(self) -> int:
        return len(self._tats)

    def take(self, keys: Sequence[str], now: float, rates: Sequence[Rate]) -> Verdict:
        """``take`` over the buckets of ``keys`` (one rate each), state kept here (the same
        arithmetic as ``step``, inlined: this runs on every request)."""
        if now - self._swept >= self._sweep_s:
            self._sweep(now)
        tats = self._tats
        moved: list[float] = []
        refused, longest = -1, 0.0
        for i, rate in enumerate(rates):
            tat = tats.get(keys[i], now)
            new = (now if tat < now else tat) + rate.interval
            wait = new - now - rate.span
            if wait > longest:
                refused, longest = i, wait
            moved.append(new)
        if refused >= 0:
            return Verdict(False, refused, longest)
        for key, tat in zip(keys, moved, strict=True):
            tats[key] = tat
        return ALLOWED

    def _sweep(self, now: float) -> None:
        self._swept = now
        self._tats = {k: t for k, t in self._tats.items() if t > now}
