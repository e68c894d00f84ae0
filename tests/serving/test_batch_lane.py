"""Batchers on one `Lane` (an endpoint's versions, each in its own inference process) take
turns: a batcher waits for the other's call in progress before it takes its batch, so what
arrives meanwhile joins one call; a slow call makes the others wait at most the lane's bound,
once per slow call."""

from __future__ import annotations

import asyncio

import pytest

from shipyard.batching import AdaptiveBatcher, Lane


class Model:
    """An awaited batch function that records its calls; a call holding ``"hold"`` waits
    for ``release``."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, items: list[str]) -> list[str]:
        self.calls.append(list(items))
        if "hold" in items:
            self.started.set()
            await self.release.wait()
        return [i.upper() for i in items]


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_batcher_waits_for_the_other_versions_call_and_batches_what_arrived() -> None:
    async def run(lane: Lane | None) -> list[list[str]]:
        a_model, b_model = Model(), Model()
        a: AdaptiveBatcher[str, str] = AdaptiveBatcher(None, afn=a_model, lane=lane)
        b: AdaptiveBatcher[str, str] = AdaptiveBatcher(None, afn=b_model, lane=lane)
        held = a.submit("hold")
        await a_model.started.wait()
        answers = []
        for i in range(5):  # b's requests trickle in while a's call is in progress
            answers.append(b.submit(f"b{i}"))
            await _settle()
        a_model.release.set()
        assert await held == "HOLD"
        assert await asyncio.gather(*answers) == [f"B{i}" for i in range(5)]
        await a.close()
        await b.close()
        return b_model.calls

    assert asyncio.run(run(Lane(max_wait_ms=60_000))) == [["b0", "b1", "b2", "b3", "b4"]]
    # without a lane b calls at once with its first request: more, smaller calls
    assert len(asyncio.run(run(None))) > 1


def test_a_slow_call_delays_the_other_versions_once_and_by_the_bound_only() -> None:
    async def run() -> None:
        lane = Lane(max_wait_ms=20)
        slow, fast = Model(), Model()
        a: AdaptiveBatcher[str, str] = AdaptiveBatcher(None, afn=slow, lane=lane)
        b: AdaptiveBatcher[str, str] = AdaptiveBatcher(None, afn=fast, lane=lane)
        hung = a.submit("hold")
        await slow.started.wait()
        # b is answered while a's call still holds the lane: it waited, then ran beside it
        assert await asyncio.wait_for(b.submit("x"), 5) == "X"
        assert lane.gave_up == 1
        for i in range(3):  # the same slow call: nobody waits on it again
            assert await asyncio.wait_for(b.submit(f"y{i}"), 5) == f"Y{i}"
        assert lane.gave_up == 1 and not hung.done()
        slow.release.set()
        assert await hung == "HOLD"
        # the lane is free again: a new slow call is waited on (and given up on) once more
        slow.release.clear()
        slow.started.clear()
        hung = a.submit("hold")
        await slow.started.wait()
        assert await asyncio.wait_for(b.submit("z"), 5) == "Z"
        assert lane.gave_up == 2
        slow.release.set()
        await hung
        await a.close()
        await b.close()

    asyncio.run(run())


def test_a_failed_call_gives_the_lane_back() -> None:
    async def run() -> None:
        lane = Lane(max_wait_ms=60_000)

        async def broken(items: list[str]) -> list[str]:
            raise RuntimeError("model error")

        a: AdaptiveBatcher[str, str] = AdaptiveBatcher(None, afn=broken, lane=lane)
        b: AdaptiveBatcher[str, str] = AdaptiveBatcher(None, afn=Model(), lane=lane)
        for item in ("one", "two"):
            with pytest.raises(RuntimeError, match="model error"):
                await a.submit(item)
        # a waiter would wait a minute if a's failed calls had kept the lane
        assert await asyncio.wait_for(b.submit("ok"), 5) == "OK"
        assert lane.gave_up == 0 and not lane._lock.locked()
        await a.close()
        await b.close()

    asyncio.run(run())


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_wait_ms"):
        Lane(max_wait_ms=-1)
