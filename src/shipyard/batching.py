"""Adaptive batching: coalesce concurrent requests into one call, then split the answers.

The batch function is a plain ``list[T] -> list[R]`` (like Ray Serve's ``@serve.batch``),
independent of any web framework. Rules:

- A request that finds the model idle runs at once: no fixed wait at low load.
- While every execution slot is busy, requests queue; when a slot frees, everything queued
  (up to ``max_batch_size`` rows) goes in one call. With more than one slot, a batch that is
  still small waits at most ``max_wait_ms`` for company. With ``hold_ms`` (for work nobody
  waits on, such as shadow copies) a batch short of ``max_batch_size`` is held that long for
  company even with one slot: fewer, larger calls.
- The queue is bounded: ``submit`` raises ``QueueFullError`` at once when it is full.
- An admitted request is never dropped: it gets its result, its own error, or, if its
  deadline passes while it waits, ``BatchTimeoutError``.
- If a batch call fails, each of its requests is retried alone, so one bad request never
  fails its batch-mates.
- With ``deadline_s``, a batch call that has not returned by then fails every request of the
  batch with ``BatchDeadlineError`` (no retry: the model hung, not a request). An awaited
  ``afn`` is cancelled (an inference process then kills and restarts its child); a call in
  an executor thread cannot be stopped, so it keeps its slot until it returns, and while
  every slot is held by such a call the batcher refuses requests (``BatcherStuckError``)
  instead of queueing them behind it.
- ``on_results`` hears, on the event loop, which items got which results (once per batch):
  only those really delivered, not those whose caller had already timed out.

Deadlines cost no timer per request: requests with deadlines are watched in submission
order (with one timeout per batcher that is deadline order), and one timer, armed for the
oldest, expires whatever is due. A request whose deadline comes before an older one's gets
its own timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from shipyard.errors import ServingError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class QueueFullError(ServingError):
    """The batcher's queue is full; retry later."""


class BatchTimeoutError(ServingError):
    """The request's deadline passed before its result was ready."""


class BatchDeadlineError(BatchTimeoutError):
    """The batch call ran past the batcher's ``deadline_s``: every request of the batch
    fails with it."""


class BatcherClosedError(ServingError):
    """The batcher no longer accepts requests (it is shutting down or was replaced)."""


class BatcherStuckError(QueueFullError):
    """Every slot is held by a call that ran past its deadline and still runs in its thread:
    the batcher refuses requests until one returns."""


class _SlotKeptError(BatchDeadlineError):
    """A thread call past its deadline: it keeps its slot until it returns (``_unstick``)."""


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    rows: int
    timeout: float | None
    deadline: float  # time.monotonic(); inf without a timeout
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
    past_deadline: int = 0  # batch calls that ran past deadline_s
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1024))


class AdaptiveBatcher(Generic[T, R]):
    """Runs ``fn`` on batches of submitted items in ``executor`` threads, or awaits ``afn``
    on the event loop instead (exactly one of the two).

    The batch function must return one result per item, in order. ``rows_of`` says how many
    rows an item holds (for ``max_batch_size``). ``on_batch`` is told each batch's row count.
    ``deadline_s``: how long one batch call may run (None: no limit).
    """

    def __init__(self, fn: Callable[[list[T]], Sequence[R]] | None, *,
                 rows_of: Callable[[T], int] = lambda _: 1, max_batch_size: int = 32,
                 max_wait_ms: float = 2.0, max_queue: int = 1024, concurrency: int = 1,
                 executor: Executor | None = None,
                 on_batch: Callable[[int], None] | None = None,
                 on_results: Callable[[list[T], list[R]], None] | None = None,
                 afn: Callable[[list[T]], Awaitable[Sequence[R]]] | None = None,
                 deadline_s: float | None = None, hold_ms: float = 0.0) -> None:
        if hold_ms < 0:
            raise ValueError("hold_ms must be >= 0")
        if max_batch_size < 1 or max_queue < 1 or concurrency < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size, max_queue and concurrency must be >= 1, "
                             "max_wait_ms >= 0")
        if deadline_s is not None and not deadline_s > 0:
            raise ValueError("deadline_s must be positive")
        if (fn is None) == (afn is None):
            raise ValueError("give exactly one batch function: fn (run in the executor) or "
                             "afn (awaited on the event loop)")
        self.fn = fn
        self.afn = afn  # runs on the event loop instead of fn in the executor (see _call_async)
        self.rows_of = rows_of
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.hold = hold_ms / 1000.0
        self.max_queue = max_queue
        self.concurrency = concurrency
        self.executor = executor
        self.on_batch = on_batch
        self.on_results = on_results
        self.deadline_s = deadline_s
        self.stats = BatchStats()
        self._stuck = 0  # slots held by thread calls past their deadline
        self._queue: deque[_Pending[T, R]] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._free = concurrency  # slots not held by a batch call
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closed = False
        self._loop_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: deque[_Pending[T, R]] = deque()  # with deadlines, oldest first
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def depth(self) -> int:
        """Requests waiting (not yet running)."""
        return len(self._queue)

    @property
    def running(self) -> int:
        """Batches executing now (a finished task leaves ``_in_flight`` a loop turn later)."""
        return sum(1 for task in self._in_flight if not task.done())

    @property
    def wedged(self) -> bool:
        """Every slot is held by a call past its deadline (see ``BatcherStuckError``)."""
        return self._stuck >= self.concurrency

    @property
    def calling(self) -> int:
        """Batch calls in progress (a batch whose call returned is delivering, not calling)."""
        return self.concurrency - self._free

    def submit(self, item: T, *, timeout: float | None = None) -> asyncio.Future[R]:
        """The future result for ``item`` (await it). Raises QueueFullError or
        BatcherClosedError at once; the future ends in the result, BatchTimeoutError, or
        the batch function's error. A plain function, not a coroutine: the hot path awaits
        the future itself, one coroutine frame less per request."""
        if self._closed:
            raise BatcherClosedError("this model is no longer accepting requests")
        if self._stuck and self.wedged:
            raise BatcherStuckError(self._stuck_message())
        if len(self._queue) >= self.max_queue:
            self.stats.rejected += 1
            raise QueueFullError(f"queue full ({self.max_queue} requests waiting)")
        loop = self._loop
        if loop is None or self._loop_task is None:
            loop = self._loop = asyncio.get_running_loop()
            self._loop_task = loop.create_task(self._run_forever())
        future: asyncio.Future[R] = loop.create_future()
        if timeout is None:
            self._queue.append(_Pending(item, self.rows_of(item), None, math.inf, future))
            self._wake.set()
            return future
        deadline = time.monotonic() + timeout
        pending = _Pending(item, self.rows_of(item), timeout, deadline, future)
        self._queue.append(pending)
        self._wake.set()
        watch = self._watch
        if not watch or watch[-1].deadline <= deadline:
            watch.append(pending)
            if self._sweeper is None:
                self._sweeper = loop.call_later(timeout, self._sweep)
            return future
        timer = loop.call_later(timeout, self._expire, pending)  # out of order: its own
        future.add_done_callback(lambda _: timer.cancel())
        return future

    def _sweep(self) -> None:
        """Expire the watched requests that are due; re-arm for the next one."""
        self._sweeper = None
        watch = self._watch
        now = time.monotonic()
        while watch:
            head = watch[0]
            if not head.future.done() and head.deadline > now:
                assert self._loop is not None
                self._sweeper = self._loop.call_later(head.deadline - now,
                                                      self._sweep)
                return
            watch.popleft()
            self._expire(head)

    def _prune(self) -> None:
        """Drop answered requests from the front of the watch (batches run oldest first), so
        the watch holds no finished request's data for long."""
        watch = self._watch
        while watch and watch[0].future.done():
            watch.popleft()

    def _expire(self, pending: _Pending[T, R]) -> None:
        if pending.future.done():
            return
        self.stats.timeouts += 1
        if not pending.started:  # never run it, even if already taken into a batch
            self._forget(pending)
        # a started request finishes, but its result is dropped (see _settle)
        pending.future.set_exception(BatchTimeoutError(
            f"no result within {pending.timeout:.3g} s"))

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
            self._free -= 1
            batch = self._take()
            if batch and self.hold > 0:
                batch = await self._hold(batch)
            elif batch and self.calling > 1 and self.max_wait > 0:
                batch = await self._wait_for_company(batch)
            if not batch:
                self._release()
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
            if nxt.deadline <= now:
                self._expire(nxt)  # takes it off the queue
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

    async def _hold(self, batch: list[_Pending[T, R]]) -> list[_Pending[T, R]]:
        """``batch``, with what arrived within ``hold_ms`` when it is short of
        ``max_batch_size`` rows (one timer, not a wake-up per arrival)."""
        rows = sum(p.rows for p in batch)
        if rows >= self.max_batch_size or self._closed:
            return batch
        await asyncio.sleep(self.hold)
        return batch + self._take(rows)

    def _release(self) -> None:
        self._free += 1
        self._slots.release()

    async def _execute(self, batch: list[_Pending[T, R]]) -> None:
        held = True
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
            items = [p.item for p in batch]
            try:
                results = await self._call_once(items)
                # The slot is free once the call returned: start the next batch before these
                # callers are answered (their wake-ups queue behind it), so the model does
                # not sit idle while the event loop writes this batch's responses.
                held = False
                self._release()
                await asyncio.sleep(0)
            except BatchDeadlineError as exc:  # the model hung: no retry, all of them fail
                held = held and not isinstance(exc, _SlotKeptError)
                raise
            except Exception:
                if len(batch) == 1:
                    raise
                self.stats.retried_alone += len(batch)
                outcomes, kept = await self._one_by_one(items)
                held = held and not kept
                self._deliver(batch, outcomes)
                return
            self._deliver(batch, results)
        except Exception as exc:  # a single-item batch failed: that item gets the error
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        finally:
            if held:
                self._release()
            self._wake.set()
            self._prune()

    async def _call_once(self, items: list[T]) -> Sequence[R]:
        """One batch call, awaited (``afn``) or in a thread (``fn``), within the deadline."""
        if self.afn is not None:
            if self.deadline_s is None:
                return await self._call_async(items)
            deadline = asyncio.timeout(self.deadline_s)
            try:
                async with deadline:
                    return await self._call_async(items)
            except TimeoutError:
                if not deadline.expired():  # the batch function's own error
                    raise
                self.stats.past_deadline += 1
                raise BatchDeadlineError(self._deadline_message(len(items))) from None
        call = asyncio.get_running_loop().run_in_executor(self.executor, self._call, items)
        if self.deadline_s is None:
            return await call
        done, _ = await asyncio.wait((call,), timeout=self.deadline_s)
        if done:
            return call.result()
        # a thread cannot be stopped: the call keeps its slot until it returns
        self.stats.past_deadline += 1
        self._stuck += 1
        call.add_done_callback(self._unstick)
        if self.wedged:  # nothing can run: refuse the waiting requests now, not at timeout
            while self._queue:
                waiting = self._queue.popleft()
                if not waiting.future.done():
                    waiting.future.set_exception(BatcherStuckError(self._stuck_message()))
        raise _SlotKeptError(self._deadline_message(len(items)))

    def _unstick(self, call: asyncio.Future[Sequence[R]]) -> None:
        """A call past its deadline returned at last: its slot serves again."""
        if not call.cancelled():
            call.exception()  # retrieved: its result went nowhere, nobody waits for it
        self._stuck -= 1
        self._release()
        self._wake.set()

    def _deadline_message(self, requests: int) -> str:
        return (f"the model did not answer a batch of {requests} request(s) within its "
                f"deadline of {self.deadline_s:.3g} s")

    def _stuck_message(self) -> str:
        return (f"the model is stuck: {self._stuck} call(s) ran past the deadline of "
                f"{self.deadline_s:.3g} s and still hold every execution slot")

    def _deliver(self, batch: list[_Pending[T, R]],
                 outcomes: Sequence[R | BaseException]) -> None:
        """Settle each caller's future; tell ``on_results`` what was really delivered."""
        items: list[T] = []
        results: list[R] = []
        for pending, outcome in zip(batch, outcomes, strict=True):
            future = pending.future
            if future.done():  # the caller timed out; its result is dropped
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
                items.append(pending.item)
                results.append(outcome)
        if self.on_results is not None and items:
            try:
                self.on_results(items, results)
            except Exception:  # a listener's bug must not fail requests already answered
                log.exception("batcher: on_results failed")

    def _call(self, items: list[T]) -> Sequence[R]:
        assert self.fn is not None
        return _one_each(items, self.fn(items))

    async def _call_async(self, items: list[T]) -> Sequence[R]:
        assert self.afn is not None
        return _one_each(items, await self.afn(items))

    async def _one_by_one(self, items: list[T]) -> tuple[list[R | BaseException], bool]:
        """Each item alone; and whether a call past its deadline kept the slot (the items
        after it then fail: nothing may run beside a stuck call)."""
        outcomes: list[R | BaseException] = []
        for item in items:
            try:
                outcomes.append((await self._call_once([item]))[0])
            except _SlotKeptError as exc:
                outcomes.append(exc)
                stuck = BatcherStuckError(self._stuck_message())
                outcomes += [stuck] * (len(items) - len(outcomes))
                return outcomes, True
            except Exception as exc:
                outcomes.append(exc)
        return outcomes, False

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
            if self.wedged:  # it may wait for a slot that only a stuck call can free
                self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        # the loop may have held a batch (waiting for company) while the queue looked empty
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)


def _one_each(items: list[T], results: Sequence[R]) -> Sequence[R]:
    """``results``, checked to hold one result per item."""
    if len(results) != len(items):
        raise RuntimeError(f"batch function returned {len(results)} results for "
                           f"{len(items)} items")
    return results
