"""A flood of feedback naming forged request ids cannot tie the server up.

Every id a worker does not hold in memory waits up to a grace period for other workers' log
flushes. The lookups of all waiting requests are one shared, vectorised poll in a thread (not a
loop per request and id on the event loop), and the ids that may wait at once are capped: past
the cap a request is refused at once with 503 + Retry-After. See
``shipyard.service.feedback_lookup``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from shipyard.batching import QueueFullError
from shipyard.errors import UnknownRequestError
from shipyard.packaging.signature import Signature
from shipyard.service.feedback import FeedbackGate, FeedbackItem
from shipyard.stores.log_index import LoggedIds

SIGNATURE = Signature("tabular", (), task="regression")


def _items(prefix: str, n: int) -> list[FeedbackItem]:
    return [FeedbackItem(f"{prefix}-{i}", [1.0]) for i in range(n)]


def _gate(tmp_path: Path, **options: Any) -> FeedbackGate:
    return FeedbackGate(tmp_path, ["ep"], CollectorRegistry(), horizon_s=3600.0,
                        grace_s=1.0, **options)


async def _refused(gate: FeedbackGate, items: list[FeedbackItem]) -> type[Exception]:
    try:
        await gate.admit("ep", SIGNATURE, items, lambda record: True)
    except Exception as exc:
        return type(exc)
    raise AssertionError("forged feedback was admitted")


def test_ids_waiting_for_other_workers_are_capped(tmp_path: Path) -> None:
    gate = _gate(tmp_path, max_waiting_ids=5)

    async def scenario() -> None:
        first = asyncio.create_task(_refused(gate, _items("a", 5)))
        await asyncio.sleep(0.2)  # five ids wait now: the pool is full
        assert await _refused(gate, _items("b", 1)) is QueueFullError
        assert await first is UnknownRequestError
        # the pool is empty again: a request larger than the cap alone may wait
        assert await _refused(gate, _items("c", 8)) is UnknownRequestError

    asyncio.run(scenario())
    busy = gate.rows.labels("ep", "busy")._value.get()
    assert busy == 1.0


def test_waiting_requests_share_one_lookup_off_the_event_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refreshes: list[str] = []
    lookups: list[tuple[int, str]] = []  # (ids looked up, thread)
    refresh, rows = LoggedIds.refresh, LoggedIds.rows
    rows_of = getattr(LoggedIds, "rows_of", None)

    def counted_refresh(self: LoggedIds, **options: Any) -> None:
        refreshes.append(threading.current_thread().name)
        refresh(self, **options)

    def counted_rows(self: LoggedIds, request_id: str) -> int | None:
        lookups.append((1, threading.current_thread().name))
        return rows(self, request_id)

    def counted_rows_of(self: LoggedIds, ids: Any) -> list[int | None]:
        lookups.append((len(ids), threading.current_thread().name))
        assert rows_of is not None
        return list(rows_of(self, ids))

    monkeypatch.setattr(LoggedIds, "refresh", counted_refresh)
    monkeypatch.setattr(LoggedIds, "rows", counted_rows)
    monkeypatch.setattr(LoggedIds, "rows_of", counted_rows_of, raising=False)
    gate = _gate(tmp_path)
    requests = 60

    async def scenario() -> None:
        loop_thread = threading.current_thread().name
        results = await asyncio.gather(*(_refused(gate, _items(f"r{n}", 100))
                                         for n in range(requests)))
        assert set(results) == {UnknownRequestError}
        assert loop_thread not in {thread for _, thread in lookups}

    asyncio.run(scenario())
    # one refresh and one lookup per poll for every waiting request together (a grace of
    # 1 s is about 4 polls), not one per request and poll; every forged id was looked up
    assert len(refreshes) < requests, len(refreshes)
    assert len(lookups) < requests, len(lookups)
    assert max(n for n, _ in lookups) == requests * 100
