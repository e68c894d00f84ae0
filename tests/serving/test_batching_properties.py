"""Property tests of ``AdaptiveBatcher``: pure asyncio, no server.

Each request is a block of rows ``(value, caller id)``; the batch function concatenates the
blocks, computes ``value * 2`` beside the caller id and splits the answer back, so a caller
that got someone else's rows (or rows in the wrong order) is caught.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.batching import (
    AdaptiveBatcher,
    BatcherClosedError,
    BatchTimeoutError,
    QueueFullError,
)

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


class PoisonError(Exception):
    """What the batch function raises for any batch holding a poison request."""


@dataclass(frozen=True)
class Req:
    caller: int
    values: np.ndarray  # shape (rows, 2): value, caller id
    poison: bool = False

    @property
    def rows(self) -> int:
        return len(self.values)


def make_request(caller: int, rows: int, poison: bool = False) -> Req:
    values = np.column_stack([np.arange(rows, dtype=np.float64) + 1000.0 * caller,
                              np.full(rows, float(caller))])
    return Req(caller, values, poison)


def expected(req: Req) -> np.ndarray:
    return np.column_stack([req.values[:, 0] * 2, req.values[:, 1]])


@dataclass
class Model:
    """The batch function: records every call (the callers and row counts it saw)."""

    calls: list[list[tuple[int, int]]] = field(default_factory=list)
    gate: threading.Event | None = None  # when set, calls wait for it (a busy model)
    started: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, items: list[Req]) -> list[np.ndarray]:
        with self.lock:
            self.calls.append([(it.caller, it.rows) for it in items])
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if any(it.poison for it in items):
            raise PoisonError(f"poison among callers {[it.caller for it in items]}")
        stacked = np.concatenate([it.values for it in items])
        out = np.column_stack([stacked[:, 0] * 2, stacked[:, 1]])
        return np.split(out, np.cumsum([it.rows for it in items])[:-1])

    def callers_seen(self) -> set[int]:
        return {caller for call in self.calls for caller, _ in call}

    def successful_calls(self, poisoned: set[int]) -> list[list[tuple[int, int]]]:
        return [c for c in self.calls if not any(caller in poisoned for caller, _ in c)]


def batcher(model: Callable[[list[Req]], Sequence[np.ndarray]] | None, **kwargs: Any,
            ) -> AdaptiveBatcher[Req, np.ndarray]:
    return AdaptiveBatcher(model, rows_of=lambda r: r.rows, **kwargs)


class InlineExecutor(Executor):
    """Runs the batch function on the event loop's thread: the outcome depends only on the
    order of events, never on thread scheduling or the clock."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


async def wait_until(predicate: Callable[[], bool], what: str, steps: int = 2000) -> None:
    """Yield to the loop (1 ms at a time, bounded) until ``predicate`` holds."""
    for _ in range(steps):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"gave up waiting for {what}")


requests_strategy = st.lists(
    # rows, poison (about one request in six), arrival delay in half-milliseconds
    st.tuples(st.integers(1, 50), st.sampled_from([False] * 5 + [True]), st.integers(0, 3)),
    min_size=1, max_size=25)


@PROPERTY
@given(reqs=requests_strategy, max_batch_size=st.integers(1, 80),
       concurrency=st.integers(1, 3), max_wait_ms=st.integers(0, 5))
def test_every_caller_gets_its_own_rows(reqs: list[tuple[int, bool, int]], max_batch_size: int,
                                        concurrency: int, max_wait_ms: int) -> None:
    model = Model()
    requests = [make_request(i, rows, poison) for i, (rows, poison, _) in enumerate(reqs)]
    delays = [delay for _, _, delay in reqs]
    poisoned = {r.caller for r in requests if r.poison}
    reported: list[tuple[int, np.ndarray]] = []

    def on_results(items: list[Req], results: list[np.ndarray]) -> None:
        reported.extend((it.caller, res) for it, res in zip(items, results, strict=True))

    async def scenario() -> list[Any]:
        b = batcher(model, max_batch_size=max_batch_size, concurrency=concurrency,
                    max_wait_ms=max_wait_ms, on_results=on_results)

        async def call(req: Req, delay: int) -> np.ndarray:
            for _ in range(delay):  # arrive staggered: some while batches are running
                await asyncio.sleep(0.0005)
            return await b.submit(req)

        results = await asyncio.gather(*(call(r, d) for r, d in zip(requests, delays,
                                                                     strict=True)),
                                       return_exceptions=True)
        await b.close()
        return list(results)

    results = asyncio.run(scenario())
    for req, result in zip(requests, results, strict=True):
        if req.poison:
            assert isinstance(result, PoisonError), f"caller {req.caller}: {result!r}"
        else:
            assert isinstance(result, np.ndarray), f"caller {req.caller}: {result!r}"
            np.testing.assert_array_equal(result, expected(req))
    for call in model.calls:  # never over the limit, except one oversized request alone
        rows = sum(n for _, n in call)
        assert rows <= max_batch_size or len(call) == 1, (call, max_batch_size)
    # a healthy request ran successfully exactly once (failed batches are retried alone)
    ok_runs = [caller for call in model.successful_calls(poisoned) for caller, _ in call]
    assert sorted(ok_runs) == sorted(r.caller for r in requests if not r.poison)
    # a poison request is tried alone after its batch failed (or was alone from the start)
    for caller in poisoned:
        assert [(caller, requests[caller].rows)] in model.calls
    # on_results heard of every delivered result once, and of nothing else
    assert sorted(caller for caller, _ in reported) == sorted(
        r.caller for r in requests if not r.poison)
    for caller, result in reported:
        np.testing.assert_array_equal(result, expected(requests[caller]))


@PROPERTY
@given(max_batch_size=st.integers(1, 64), concurrency=st.integers(1, 3),
       rows=st.integers(1, 50), warm=st.integers(0, 5))
def test_idle_batcher_runs_a_request_at_once(max_batch_size: int, concurrency: int, rows: int,
                                             warm: int) -> None:
    """A request that finds the batcher idle is called alone and finishes within a few turns
    of the event loop, even with a max wait of ten minutes (the model runs inline, so only
    the order of events matters, never the clock)."""
    model = Model()

    async def scenario() -> None:
        b = batcher(model, max_batch_size=max_batch_size, concurrency=concurrency,
                    max_wait_ms=600_000, executor=InlineExecutor())

        async def client() -> None:  # one request at a time, like one keep-alive connection
            for i in [*range(warm), 99]:
                req = make_request(i, rows)
                np.testing.assert_array_equal(await b.submit(req), expected(req))

        task = asyncio.ensure_future(client())
        for _ in range(50 * (warm + 1)):  # a bounded number of event-loop turns
            if task.done():
                break
            await asyncio.sleep(0)
        # on failure asyncio.run cancels the batcher instead of waiting ten minutes
        assert task.done(), f"an idle batcher held a request back: {model.calls}"
        task.result()
        await b.close()

    asyncio.run(scenario())
    assert model.calls == [[(i, rows)] for i in range(warm)] + [[(99, rows)]]


@PROPERTY
@given(n=st.integers(1, 40), max_queue=st.integers(1, 20), concurrency=st.integers(1, 3),
       max_batch_size=st.integers(1, 16))
def test_queue_bound_rejects_at_once_and_admitted_requests_complete(
        n: int, max_queue: int, concurrency: int, max_batch_size: int) -> None:
    model = Model(gate=threading.Event())

    async def scenario() -> None:
        b = batcher(model, max_batch_size=max_batch_size, concurrency=concurrency,
                    max_wait_ms=1, max_queue=max_queue)
        # a request the model is busy with: running requests do not count against the queue
        busy = asyncio.ensure_future(b.submit(make_request(1000, 1)))
        await wait_until(model.started.is_set, "the first batch to start")
        requests = [make_request(i, 1 + i % 3) for i in range(n)]
        futures: list[asyncio.Future[np.ndarray] | None] = []
        for r in requests:  # submit refuses at once, before anything is awaited
            try:
                futures.append(b.submit(r))
            except QueueFullError:
                futures.append(None)
        rejected = [r for r, f in zip(requests, futures, strict=True) if f is None]
        assert len(rejected) == max(0, n - max_queue)
        assert futures[:max_queue] == [f for f in futures if f is not None]  # the first ones
        assert b.stats.rejected == len(rejected)
        assert b.depth == min(n, max_queue)
        model.gate.set()  # type: ignore[union-attr]
        np.testing.assert_array_equal(await busy, expected(make_request(1000, 1)))
        for req, future in zip(requests, futures, strict=True):
            if future is not None:
                np.testing.assert_array_equal(await future, expected(req))
        await b.close()
        admitted = {r.caller for r, f in zip(requests, futures, strict=True) if f is not None}
        assert model.callers_seen() == admitted | {1000}

    asyncio.run(scenario())


@PROPERTY
@given(n_waiting=st.integers(1, 8), n_patient=st.integers(0, 5),
       concurrency=st.integers(1, 3), max_wait_ms=st.sampled_from([0, 1, 5, 50]))
def test_timed_out_requests_never_reach_the_model(n_waiting: int, n_patient: int,
                                                  concurrency: int, max_wait_ms: int) -> None:
    """Every slot is busy; requests with a short deadline time out while they wait and are
    then never run; the others complete once the model is free."""
    model = Model(gate=threading.Event())

    async def scenario() -> None:
        b = batcher(model, max_batch_size=1000, concurrency=concurrency,
                    max_wait_ms=max_wait_ms)
        blockers = []
        for i in range(concurrency):  # occupy every execution slot
            blockers.append(asyncio.ensure_future(b.submit(make_request(100 + i, 1))))
            await wait_until(lambda: len(model.calls) == len(blockers), "a slot to be taken")
        impatient = [asyncio.ensure_future(b.submit(make_request(i, 2), timeout=0.02))
                     for i in range(n_waiting)]
        patient = [asyncio.ensure_future(b.submit(make_request(50 + i, 2)))
                   for i in range(n_patient)]
        for task in impatient:
            with pytest.raises(BatchTimeoutError):
                await task
        assert b.stats.timeouts == n_waiting
        model.gate.set()  # type: ignore[union-attr]
        await asyncio.gather(*blockers)
        for i, task in enumerate(patient):
            np.testing.assert_array_equal(await task, expected(make_request(50 + i, 2)))
        await b.close()

    asyncio.run(scenario())
    assert model.callers_seen().isdisjoint(range(n_waiting))
    assert model.callers_seen() == {100 + i for i in range(concurrency)} | {
        50 + i for i in range(n_patient)}


def test_results_of_callers_that_timed_out_while_running_are_not_reported() -> None:
    """A batch is running when some of its callers' deadlines pass: they get 504-style
    errors, their batch-mates their rows, and ``on_results`` hears only of the latter (the
    server logs what it answered, not what it computed for nobody)."""
    model = Model(gate=threading.Event())
    reported: list[int] = []

    async def scenario() -> None:
        b = batcher(model, max_batch_size=100, concurrency=1, max_wait_ms=0,
                    on_results=lambda items, _: reported.extend(it.caller for it in items))
        # submitted in one go: the idle model takes all six as one batch
        quick = [asyncio.ensure_future(b.submit(make_request(i, 1), timeout=0.05))
                 for i in range(3)]
        slow = [asyncio.ensure_future(b.submit(make_request(10 + i, 1), timeout=30))
                for i in range(3)]
        await wait_until(model.started.is_set, "the batch to start")
        for task in quick:
            with pytest.raises(BatchTimeoutError):
                await task
        model.gate.set()  # type: ignore[union-attr]
        for i, task in enumerate(slow):
            np.testing.assert_array_equal(await task, expected(make_request(10 + i, 1)))
        await b.close()

    asyncio.run(scenario())
    assert model.calls == [[(0, 1), (1, 1), (2, 1), (10, 1), (11, 1), (12, 1)]]  # one batch
    assert sorted(reported) == [10, 11, 12]


def test_a_request_taken_into_a_waiting_batch_that_times_out_is_not_run() -> None:
    """Two slots, one busy: the next request is taken and waits ``max_wait`` for company;
    its own deadline passes during that wait, so it must not reach the model."""
    model = Model(gate=threading.Event())

    async def scenario() -> None:
        b = batcher(model, max_batch_size=100, concurrency=2, max_wait_ms=300)
        busy = asyncio.ensure_future(b.submit(make_request(100, 1)))
        await wait_until(model.started.is_set, "the first batch to start")
        late = asyncio.ensure_future(b.submit(make_request(1, 1), timeout=0.02))
        await wait_until(lambda: b.depth == 0, "the batcher to take the request")
        assert not late.done()  # taken, waiting for company
        with pytest.raises(BatchTimeoutError):
            await late
        model.gate.set()  # type: ignore[union-attr]
        await busy
        await b.close()

    asyncio.run(scenario())
    assert model.callers_seen() == {100}


@PROPERTY
@given(reqs=st.lists(st.integers(1, 20), min_size=1, max_size=20),
       max_batch_size=st.integers(1, 40), concurrency=st.integers(1, 3),
       max_wait_ms=st.integers(0, 5), close_after=st.integers(0, 6))
def test_close_finishes_everything_admitted_then_refuses(
        reqs: list[int], max_batch_size: int, concurrency: int, max_wait_ms: int,
        close_after: int) -> None:
    model = Model()
    requests = [make_request(i, rows) for i, rows in enumerate(reqs)]

    async def scenario() -> None:
        b = batcher(model, max_batch_size=max_batch_size, concurrency=concurrency,
                    max_wait_ms=max_wait_ms)
        tasks = []
        for i, req in enumerate(requests):
            tasks.append(asyncio.ensure_future(b.submit(req)))
            if i % 4 == 3:
                await asyncio.sleep(0.0005)
        await asyncio.sleep(0)  # every submit has run: all are admitted
        for _ in range(close_after):
            await asyncio.sleep(0)
        await b.close()
        # close() returned: every admitted request has been through the model ...
        assert sorted(model.callers_seen()) == [r.caller for r in requests]
        assert b.depth == 0 and b.running == 0
        # ... and its caller has its answer
        for req, task in zip(requests, tasks, strict=True):
            np.testing.assert_array_equal(await task, expected(req))
        with pytest.raises(BatcherClosedError):
            await b.submit(make_request(999, 1))
        await b.close()  # closing twice is harmless

    asyncio.run(scenario())
    assert 999 not in model.callers_seen()


def test_close_of_an_unused_batcher_returns() -> None:
    async def scenario() -> None:
        b = batcher(Model())
        await b.close()
        with pytest.raises(BatcherClosedError):
            await b.submit(make_request(0, 1))

    asyncio.run(scenario())


def test_a_batch_function_returning_too_few_results_fails_each_request_alone() -> None:
    def short(items: list[Req]) -> list[np.ndarray]:
        return [expected(it) for it in items][:1] if len(items) > 1 else [expected(items[0])]

    async def scenario() -> list[np.ndarray]:
        b = batcher(short, max_batch_size=100, concurrency=1, max_wait_ms=0)
        reqs = [make_request(i, 2) for i in range(5)]
        out = await asyncio.gather(*(b.submit(r) for r in reqs))
        await b.close()
        return list(out)

    for i, result in enumerate(asyncio.run(scenario())):
        np.testing.assert_array_equal(result, expected(make_request(i, 2)))


def test_the_next_batch_starts_before_the_last_one_is_answered() -> None:
    """Once a batch call returns, its slot is free: the batch queued behind it starts before
    the event loop wakes the answered callers, so the model (an inference process) does not
    wait while the loop writes their responses. The order of events shows it: call 2 starts
    before caller 0 (of call 1) resumes."""
    events: list[str] = []
    release = asyncio.Event()

    async def afn(items: list[Req]) -> list[np.ndarray]:
        events.append(f"call {[it.caller for it in items]}")
        if items[0].caller == 0:
            await release.wait()
        return [expected(it) for it in items]

    async def caller(b: AdaptiveBatcher[Req, np.ndarray], i: int) -> None:
        await b.submit(make_request(i, 1))
        events.append(f"answered {i}")

    async def scenario() -> None:
        b = batcher(None, afn=afn, concurrency=1, max_wait_ms=0)
        first = asyncio.ensure_future(caller(b, 0))
        while not events:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(caller(b, i)) for i in (1, 2)]
        await asyncio.sleep(0.01)  # both queue behind the running call
        release.set()
        await asyncio.gather(first, *rest)
        await b.close()

    asyncio.run(scenario())
    assert events[:2] == ["call [0]", "call [1, 2]"], events
    assert events.index("call [1, 2]") < events.index("answered 0"), events


def test_a_held_batch_takes_what_arrives_within_hold_ms_and_a_full_one_goes_at_once() -> None:
    """With ``hold_ms`` (shadow copies) a single-slot batcher that finds the model idle holds
    a short batch for company: requests submitted after it was taken join the same call
    (without ``hold_ms`` they would make a second call). A batch already at
    ``max_batch_size`` is not held, even with a hold of ten minutes."""
    calls: list[list[int]] = []

    async def afn(items: list[Req]) -> list[np.ndarray]:
        calls.append([it.caller for it in items])
        return [expected(it) for it in items]

    async def scenario() -> None:
        b = batcher(None, afn=afn, concurrency=1, max_batch_size=8, hold_ms=50)
        first = b.submit(make_request(0, 1))
        for _ in range(5):  # the batcher takes request 0 and starts holding it
            await asyncio.sleep(0)
        assert not calls
        rest = [b.submit(make_request(i, 1)) for i in (1, 2)]
        await asyncio.wait_for(asyncio.gather(first, *rest), 5)
        await b.close()
        full = batcher(None, afn=afn, concurrency=1, max_batch_size=2, hold_ms=600_000)
        both = asyncio.gather(*(full.submit(make_request(i, 1)) for i in (3, 4)))
        for _ in range(50):  # a bounded number of event-loop turns
            if both.done():
                break
            await asyncio.sleep(0)
        assert both.done(), f"a full batch was held: {calls}"
        await full.close()

    asyncio.run(scenario())
    assert calls == [[0, 1, 2], [3, 4]]


def test_a_batcher_takes_exactly_one_batch_function() -> None:
    async def afn(items: list[Req]) -> list[np.ndarray]:
        return [expected(it) for it in items]

    with pytest.raises(ValueError, match="exactly one batch function"):
        AdaptiveBatcher(None)
    with pytest.raises(ValueError, match="exactly one batch function"):
        AdaptiveBatcher(lambda items: [expected(it) for it in items], afn=afn)
