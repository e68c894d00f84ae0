"""The batcher's deadline for one batch call (``deadline_s``): a call past it fails its whole
batch with ``BatchDeadlineError`` (no retry one by one); an awaited call is cancelled; a call
in a thread keeps its slot until it returns, and while every slot is held so the batcher
refuses requests at once (``BatcherStuckError``) instead of queueing them."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from shipyard.batching import (
    AdaptiveBatcher,
    BatchDeadlineError,
    BatcherStuckError,
    BatchTimeoutError,
)


def test_an_awaited_call_past_its_deadline_fails_its_batch_and_is_cancelled() -> None:
    calls: list[list[str]] = []
    cancelled = []

    async def model(items: list[str]) -> list[str]:
        calls.append(items)
        if "hang" in items:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(items)
                raise
        return [i.upper() for i in items]

    async def run() -> None:
        batcher: AdaptiveBatcher[str, str] = AdaptiveBatcher(None, afn=model, deadline_s=0.2)
        assert await batcher.submit("first") == "FIRST"
        hung = [batcher.submit("a"), batcher.submit("hang")]  # one batch
        for future in hung:
            with pytest.raises(BatchDeadlineError, match=r"deadline of 0\.2 s"):
                await future
        assert calls == [["first"], ["a", "hang"]]  # not retried one by one
        assert cancelled == [["a", "hang"]]
        assert await batcher.submit("b") == "B"
        assert batcher.stats.past_deadline == 1 and not batcher.wedged
        await batcher.close()

    asyncio.run(run())


def test_a_thread_call_past_its_deadline_keeps_its_slot_and_requests_are_refused() -> None:
    gate = threading.Event()

    def model(items: list[str]) -> list[str]:
        if "hang" in items:
            gate.wait(30)
        return [i.upper() for i in items]

    async def run() -> None:
        batcher: AdaptiveBatcher[str, str] = AdaptiveBatcher(model, deadline_s=0.2)
        hung = batcher.submit("hang")
        await asyncio.sleep(0.05)  # the call started: the next request queues behind it
        queued = batcher.submit("behind")
        with pytest.raises(BatchDeadlineError):
            await hung
        assert isinstance(BatchDeadlineError("x"), BatchTimeoutError)  # answered as a 504
        assert batcher.wedged
        with pytest.raises(BatcherStuckError, match="stuck"):
            await queued  # refused when the call went past its deadline, not at a timeout
        with pytest.raises(BatcherStuckError):
            batcher.submit("later")
        gate.set()  # the call returns at last: its slot serves again
        deadline = time.monotonic() + 5
        while batcher.wedged:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert await batcher.submit("later") == "LATER"
        gate.clear()
        hung = batcher.submit("hang")
        with pytest.raises(BatchDeadlineError):
            await hung
        started = time.monotonic()
        await batcher.close()  # bounded, although the call still runs
        assert time.monotonic() - started < 1
        gate.set()

    asyncio.run(run())
