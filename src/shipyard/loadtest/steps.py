"""``shipyard loadtest``: load a served model with realistic rows and measure it.

Rows come from the package's reference rows (``bodies.py``: the data the model was packaged
with, not one repeated example), sent as simple-JSON predict requests to the URL the user
gives, and to nothing else, over keep-alive connections (``connection.py``).

- **Open loop** (``rate``): request *i* is due at ``start + i / rate`` whatever happened
  before, and its latency counts from when it was due, not from when it was sent, so a
  server that stalls cannot hide its stall by slowing the client (coordinated omission).
- **Closed loop** (``concurrency``): that many clients, each sending its next request when
  its last one was answered.
- **Ramp**: open-loop steps at rising rates; the highest rate whose p99 met the target and
  which was achieved is reported.

Latencies go into an HDR histogram (1 µs to 60 s, three significant digits).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shipyard.loadtest.connection import Connections, Target, post_requests

MAX_IN_FLIGHT = 10_000  # open loop: requests past this many outstanding are dropped, counted
MAX_CONNECTIONS = 256  # open loop: at most this many open; a request waits for a free one
TICK_S = 0.001  # open loop: the shortest sleep between sends
_T = TypeVar("_T")
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass
class LoadResult:
    """One load step: what was sent, answered and how fast."""

    mode: str  # open or closed
    target: float  # the rate asked for (open) or the concurrency (closed)
    duration_s: float
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # "200", "503", "connect error"
    dropped: int = 0  # open loop: not sent, too many outstanding
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != "200")

    @property
    def achieved_rate(self) -> float:
        return sum(self.statuses.values()) / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "target": self.target, "duration_s": self.duration_s,
                "sent": self.sent, "answered": sum(self.statuses.values()), "ok": self.ok,
                "errors": self.errors, "statuses": dict(self.statuses),
                "dropped": self.dropped, "achieved_rate": self.achieved_rate,
                "latency_ms": self.latency_ms}


class _Tally:
    """A step's answers by status, and their latencies in an HDR histogram (1 µs to 60 s,
    three significant digits)."""

    def __init__(self, result: LoadResult) -> None:
        from hdrh.histogram import HdrHistogram

        self.statuses = result.statuses
        self.histogram = HdrHistogram(1, 60_000_000, 3)  # microseconds
        self._record = self.histogram.record_value

    def add(self, status: str, since: float) -> None:
        """One answer, timed from ``since`` (a ``time.perf_counter()`` value)."""
        self.statuses[status] += 1
        self._record(max(1, int((time.perf_counter() - since) * 1e6)))

    def summary(self) -> dict[str, float]:
        h = self.histogram
        if h.get_total_count() == 0:
            return {}
        out = {f"p{p:g}": h.get_value_at_percentile(p) / 1000.0 for p in PERCENTILES}
        out["max"] = h.get_max_value() / 1000.0
        return out


def _open(url: str, bodies: Sequence[bytes], headers: dict[str, str] | None, limit: int,
          timeout_s: float) -> tuple[list[bytes], Connections]:
    """Each body's whole request, built once, and the connections to send them on."""
    target = Target.parse(url)
    return post_requests(target, bodies, headers), Connections(target, limit, timeout_s)


def run(step: Coroutine[Any, Any, _T]) -> _T:
    """Run a load step on uvloop when it is installed (the server extra brings it: about
    twice the requests a core can send), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(step)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(step)


async def open_loop(url: str, bodies: Sequence[bytes], rate: float, duration_s: float, *,
                    headers: dict[str, str] | None = None, timeout_s: float = 30.0
                    ) -> LoadResult:
    """Send ``rate`` requests a second for ``duration_s``, each at its due time."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    result = LoadResult("open", rate, duration_s)
    tally = _Tally(result)
    requests, connections = _open(url, bodies, headers, MAX_CONNECTIONS, timeout_s)
    loop = asyncio.get_running_loop()
    clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
    pending: set[asyncio.Task[None]] = set()

    async def one(request: bytes, due: float) -> None:
        tally.add(await connections.send(request), due)

    total = int(rate * duration_s)
    start = clock()
    i = 0
    try:
        while i < total:
            now = clock()
            while i < total and start + i / rate <= now:  # every request due by now
                if len(pending) >= MAX_IN_FLIGHT:  # none sent before the loop turns again:
                    due = min(total, int((now - start) * rate) + 1)  # drop all due at once
                    result.dropped += max(1, due - i)
                    i = max(i + 1, due)
                    continue
                task = loop.create_task(one(requests[i % len(requests)], start + i / rate))
                pending.add(task)
                task.add_done_callback(pending.discard)
                result.sent += 1
                i += 1
            if i < total:  # sleep to the next due time: at least the loop's 1 ms tick,
                # so a gap under it is not spun through (what is due by then goes together)
                await asyncio.sleep(max(TICK_S, start + i / rate - clock()))
        if pending:
            await asyncio.wait(pending)
    finally:
        connections.close()
    result.latency_ms = tally.summary()
    return result


async def closed_loop(url: str, bodies: Sequence[bytes], concurrency: int, duration_s: float,
                      *, headers: dict[str, str] | None = None, timeout_s: float = 30.0
                      ) -> LoadResult:
    """``concurrency`` clients, each sending its next request when answered."""
    if concurrency < 1 or duration_s <= 0:
        raise ValueError("concurrency must be at least 1 and the duration positive")
    result = LoadResult("closed", concurrency, duration_s)
    tally = _Tally(result)
    requests, connections = _open(url, bodies, headers, concurrency, timeout_s)
    clock = time.perf_counter
    end = clock() + duration_s

    async def worker(w: int) -> int:
        i, sent = w, 0
        while (started := clock()) < end:
            sent += 1
            tally.add(await connections.send(requests[i % len(requests)]), started)
            i += concurrency
        return sent

    try:
        result.sent = sum(await asyncio.gather(*(worker(w) for w in range(concurrency))))
    finally:
        connections.close()
    result.latency_ms = tally.summary()
    return result


async def ramp(url: str, bodies: Sequence[bytes], rates: Sequence[float], step_s: float,
               target_p99_ms: float, *, headers: dict[str, str] | None = None
               ) -> tuple[list[LoadResult], float | None]:
    """Open-loop steps at ``rates`` (rising); stops after the first step that misses the
    target. Returns the steps and the highest rate that met it (achieved within 10 %,
    no errors, p99 at most ``target_p99_ms``)."""
    steps: list[LoadResult] = []
    best = None
    for rate in rates:
        step = await open_loop(url, bodies, rate, step_s, headers=headers)
        steps.append(step)
        met = (step.errors == 0 and step.dropped == 0
               and step.achieved_rate >= 0.9 * rate
               and step.latency_ms.get("p99", float("inf")) <= target_p99_ms)
        if not met:
            break
        best = rate
    return steps, best
