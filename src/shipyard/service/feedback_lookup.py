"""Finding answered request ids in the prediction log on disk, for every waiting feedback
request of one endpoint at once.

A feedback request naming an id this worker does not hold in memory (answered by another
worker, another server on the same log directory, or before a restart) looks for it in the
log, and, since another process's rows reach the disk up to a flush after its answer, waits
up to ``grace_s`` for them before the id counts as never answered. Each such id used to cost
its request a loop of its own on the event loop (a search per id and index chunk every
0.25 s): 20 requests naming 20,000 forged ids each held predictions up for 4-9 s on a
``--workers 2`` server. Now one poller per endpoint looks up the ids of every waiting request
together (in a thread: the index refresh reads segments, the lookup is vectorised), so many
waiting requests cost one lookup per poll, and the event loop only moves the answers.

Waiting is bounded: at most ``max_waiting_ids`` ids wait at once (a request that finds
nothing waiting is taken whatever its size, so a large upload works when the server is not
flooded). Past that a request is refused at once with ``QueueFullError`` (503 +
Retry-After): a flood of forged ids can delay feedback, never predictions, and holds no
more memory than the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from shipyard.batching import QueueFullError
from shipyard.stores.log_index import LoggedIds


@dataclass(eq=False)
class _Waiter:
    missing: set[str]
    deadline: float
    done: asyncio.Future[None]
    found: dict[str, int] = field(default_factory=dict)
    after_wait: set[str] = field(default_factory=set)  # found after the first look
    looked: bool = False


class LogLookup:
    """Answered ids of one endpoint's prediction log, looked up for all waiters at once."""

    def __init__(self, ids: LoggedIds, *, grace_s: float, max_waiting_ids: int,
                 poll_s: float = 0.25, min_gap_s: float = 0.05) -> None:
        self.ids = ids
        self.grace_s = grace_s
        self.max_waiting_ids = max_waiting_ids
        self.poll_s = poll_s
        self.min_gap_s = min_gap_s  # a new waiter's first look comes this soon at the latest
        self._waiters: list[_Waiter] = []
        self._waiting_ids = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting_ids(self) -> int:
        return self._waiting_ids

    async def find(self, request_ids: set[str]) -> tuple[dict[str, int], set[str]]:
        """Rows of each of ``request_ids`` found in the log within ``grace_s``, and which
        were found only after waiting; ids left out were not found. Raises QueueFullError
        when too many ids wait already."""
        if self._waiting_ids and self._waiting_ids + len(request_ids) > self.max_waiting_ids:
            raise QueueFullError(
                f"{self._waiting_ids} feedback request ids are already waiting for other "
                "workers' log flushes; retry later")
        loop = asyncio.get_running_loop()
        waiter = _Waiter(set(request_ids), time.monotonic() + self.grace_s,
                         loop.create_future())
        self._waiters.append(waiter)
        self._waiting_ids += len(waiter.missing)
        if self._task is None:  # made here: an Event belongs to the loop it first waits on
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._poll())
        self._wake.set()
        try:
            await waiter.done
        finally:
            self._drop(waiter)
        return waiter.found, waiter.after_wait

    def _drop(self, waiter: _Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
            self._waiting_ids -= len(waiter.missing) + len(waiter.found)
        if not waiter.done.done():
            waiter.done.set_result(None)

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiters:
                self._wake.clear()
                looking = list(self._waiters)  # those arriving meanwhile: the next round
                ids = sorted(set().union(*(w.missing for w in looking)))
                rows = dict(zip(ids, await loop.run_in_executor(None, self._look, ids),
                                strict=True))
                now = time.monotonic()
                for waiter in looking:
                    self._settle(waiter, rows, now)
                if self._waiters:
                    await self._sleep(now)
        except Exception as exc:  # an unreadable log: every waiter hears it
            for waiter in list(self._waiters):
                if not waiter.done.done():
                    waiter.done.set_exception(exc)
                self._drop(waiter)
        finally:
            self._task = None

    def _look(self, ids: Sequence[str]) -> list[int | None]:
        self.ids.refresh()
        return self.ids.rows_of(ids)

    def _settle(self, waiter: _Waiter, rows: dict[str, int | None], now: float) -> None:
        for request_id in list(waiter.missing):
            found = rows.get(request_id)
            if found is not None:
                waiter.found[request_id] = found
                waiter.missing.discard(request_id)
                if waiter.looked:
                    waiter.after_wait.add(request_id)
        waiter.looked = True
        if not waiter.missing or now >= waiter.deadline:
            self._drop(waiter)

    async def _sleep(self, now: float) -> None:
        """Until the next poll: ``poll_s``, the nearest deadline, or a new waiter (but at
        least ``min_gap_s``, so a stream of new waiters cannot make the poller spin)."""
        await asyncio.sleep(self.min_gap_s)
        nearest = min(w.deadline for w in self._waiters)
        timeout = max(0.0, min(self.poll_s, nearest - now) - self.min_gap_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
