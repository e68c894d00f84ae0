"""Adaptive batching: coalesce concurrent requests into one call, then split the answers.

The batch function is a plain ``list[T] -> list[R]`` (like Ray Serve's ``@serve.batch``),
independent of any web framework. Rules:

- A request that finds the model idle runs at once: no fixed wait at low load.
- While every execution slot is busy, requests queue; when a slot frees, everything queued
  (up to ``max_batch_size`` rows) goes in one call. With more than one slot, a batch that is
  still small waits at most ``max_wait_ms`` for company.
- The queue is bounded: ``submit`` raises ``QueueFullError`` at once when it is full.
- An admitted request is never dropped: it gets its result, its own error, or, if its
  deadline passes while it waits, ``BatchTimeoutError``.
- If a batch call fails, each of its requests is retried alone, so one bad request never
  fails its batch-mates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class QueueFullError(Exception):
    """The batcher's queue is full; retry later."""


class BatchTimeoutError(Exception):
    """The request's deadline passed before its result was ready."""


class BatcherClosedError(Exception):
    """The batcher no longer accepts requests (it is shutting down or was replaced)."""


@dataclass
class _Pending(Generic[T, R]):
    item: T
    rows: int
    deadline: float | None
    future: asyncio.Future[R]
    started: bool = False


@dataclass
class BatchStats:
    """Counters the server exports as metrics."""

    batches: int = 0
    rows: int = 0
    retried_alone: int = 0
    timeouts: int = 0
    rejected: int = 0
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1024))


class AdaptiveBatcher(Generic[T, R]):
    """Runs ``fn`` on batches of submitted items in ``executor`` threads.

    ``fn`` must return one result per item, in order. ``rows_of`` says how many rows an
    item holds (for ``max_batch_size``). ``on_batch`` is told each batch's row count.
    """

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *,
                 rows_of: Callable[[T], int] = lambda _: 1, max_batch_size: int = 64,
                 max_wait_ms: float = 2.0, max_queue: int = 1024, concurrency: int = 1,
                 executor: Executor | None = None,
                 on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch_size < 1 or max_queue < 1 or concurrency < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size, max_queue and concurrency must be >= 1, "
                             "max_wait_ms >= 0")
        self.fn = fn
        self.rows_of = rows_of
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.concurrency = concurrency
        self.executor = executor
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._queue: deque[_Pending[T, R]] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closed = False
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Requests waiting (not yet running)."""
        return len(self._queue)

    @property
    def running(self) -> int:
        """Batches executing now (a finished task leaves ``_in_flight`` a loop turn later)."""
        return sum(1 for task in self._in_flight if not task.done())

    async def submit(self, item: T, *, timeout: float | None = None) -> R:
        """The result for ``item``. Raises QueueFullError, BatchTimeoutError, or fn's error."""
        if self._closed:
            raise BatcherClosedError("this model is no longer accepting requests")
        if len(self._queue) >= self.max_queue:
            self.stats.rejected += 1
            raise QueueFullError(f"queue full ({self.max_queue} requests waiting)")
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._run_forever())
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = _Pending(item, self.rows_of(item), deadline, future)
        self._queue.append(pending)
        self._wake.set()
        if timeout is None:
            return await future
        # one timer per request, not wait_for + shield: those cost an extra future, task
        # and callbacks on every request of the hot path
        timer = asyncio.get_running_loop().call_later(timeout, self._expire, pending, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    def _expire(self, pending: _Pending[T, R], timeout: float) -> None:
        if pending.future.done():
            return
        self.stats.timeouts += 1
        if not pending.started:  # never run it, even if already taken into a batch
            self._forget(pending)
        # a started request finishes, but its result is dropped (see _settle)
        pending.future.set_exception(BatchTimeoutError(f"no result within {timeout:.3g} s"))

    def _forget(self, pending: _Pending[T, R]) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(pending)

    async def _run_forever(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                if self._closed:
                    return
                await self._wake.wait()
            await self._slots.acquire()  # while we wait for a slot, the queue fills up
            batch = self._take()
            if batch and self.running and self.max_wait > 0:
                batch = await self._wait_for_company(batch)
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _take(self, rows: int = 0) -> list[_Pending[T, R]]:
        batch: list[_Pending[T, R]] = []
        now = time.monotonic()
        while self._queue:
            nxt = self._queue[0]
            if nxt.future.done():  # timed out while queued
                self._queue.popleft()
                continue
            if nxt.deadline is not None and nxt.deadline <= now:
                self._queue.popleft()
                continue
            if (batch or rows) and rows + nxt.rows > self.max_batch_size:
                break
            self._queue.popleft()
            batch.append(nxt)
            rows += nxt.rows
        return batch

    async def _wait_for_company(self, batch: list[_Pending[T, R]]) -> list[_Pending[T, R]]:
        rows = sum(p.rows for p in batch)
        until = time.monotonic() + self.max_wait
        while rows < self.max_batch_size:
            left = until - time.monotonic()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                break
            more = self._take(rows)
            batch.extend(more)
            rows += sum(p.rows for p in more)
        return batch

    async def _execute(self, batch: list[_Pending[T, R]]) -> None:
        try:
            batch = [p for p in batch if not p.future.done()]  # timed out while waiting
            if not batch:
                return
            for pending in batch:
                pending.started = True
            rows = sum(p.rows for p in batch)
            self.stats.batches += 1
            self.stats.rows += rows
            self.stats.sizes.append(rows)
            if self.on_batch is not None:
                self.on_batch(rows)
            loop = asyncio.get_running_loop()
            items = [p.item for p in batch]
            try:
                results = await loop.run_in_executor(self.executor, self._call, items)
            except Exception:
                if len(batch) == 1:
                    raise
                self.stats.retried_alone += len(batch)
                outcomes = await loop.run_in_executor(self.executor, self._one_by_one, items)
                for pending, outcome in zip(batch, outcomes, strict=True):
                    _settle(pending.future, outcome)
                return
            for pending, result in zip(batch, results, strict=True):
                _settle(pending.future, result)
        except Exception as exc:  # a single-item batch failed: that item gets the error
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        finally:
            self._slots.release()
            self._wake.set()

    def _call(self, items: list[T]) -> Sequence[R]:
        results = self.fn(items)
        if len(results) != len(items):
            raise RuntimeError(f"batch function returned {len(results)} results for "
                               f"{len(items)} items")
        return results

    def _one_by_one(self, items: list[T]) -> list[R | BaseException]:
        outcomes: list[R | BaseException] = []
        for item in items:
            try:
                outcomes.append(self._call([item])[0])
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def close(self) -> None:
        """Stop accepting requests, finish everything admitted, then stop."""
        self._closed = True
        self._wake.set()
        while self._queue or self._in_flight:
            if self._in_flight:
                await asyncio.gather(*list(self._in_flight), return_exceptions=True)
            else:
                await asyncio.sleep(0.001)
        if self._loop_task is not None:
            await self._loop_task
        # the loop may have held a batch (waiting for company) while the queue looked empty
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # the caller timed out; its result is dropped
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
