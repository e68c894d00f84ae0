"""The server's side of the prediction log of its inference processes that died.

When a child dies (``process.py``), the log entries it had not settled are replayed from its
spool (``spool_replay.py``) off the event loop, after ``GRACE_S``: entries for batches the
dead child answered that the server queues only after noticing the death (the batch's
callers were answered just before) join the replay meanwhile. What no replay can give back
is counted as dropped and named in the server's log (``count_lost``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shipyard.runtimes.child_log import entry_rows
from shipyard.runtimes.spool_replay import Replayed, replay
from shipyard.stores.predictions import LogStats

log = logging.getLogger("shipyard.serve")


@dataclasses.dataclass
class _Dead:
    prefix: Path  # its spool files
    first: int  # the batch ids it was sent: [first, end)
    end: int
    entries: list[dict[str, Any]]  # not settled when it died, and those that came later
    slot: int = 0  # which of a joint process's versions these spool files log


def count_lost(endpoint: str, entries: Sequence[dict[str, Any]]) -> int:
    """Name the request ids of ``entries`` in the server's log as not logged; their rows."""
    rows = sum(entry_rows(e) for e in entries)
    if not rows:
        return 0
    ids = [rid for e in entries for rid in e["request_ids"]]
    log.warning("endpoint %s: %d logged rows of %d answered requests were lost with "
                "their inference process (counted as dropped); their request ids follow",
                endpoint, rows, len(ids))
    for start in range(0, len(ids), 200):
        log.warning("endpoint %s: not logged: %s", endpoint, " ".join(ids[start:start + 200]))
    return rows


def replayed_stats(endpoint: str, done: Replayed) -> LogStats:
    """A replay's counters, with the rows it could not give back counted (and named) as
    dropped."""
    return LogStats.total([done.stats, LogStats(dropped_rows=count_lost(endpoint, done.lost))])


class DeadChildren:
    """Replays of one deployment's dead children; ``on_stats`` hears each replay's counters
    (the rows it wrote, and those lost as ``dropped_rows``). Use on the event loop."""

    GRACE_S = 0.5

    def __init__(self, endpoint: str, on_stats: Callable[[LogStats], None]) -> None:
        self.endpoint = endpoint
        self._on_stats = on_stats
        self._collecting: list[_Dead] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def died(self, prefix: Path, first: int, end: int,
             unsettled: Sequence[dict[str, Any]], slot: int = 0) -> None:
        """A child that was sent batches ``[first, end)`` died: replay its spool (that of
        its version ``slot``, with that version's entries, for a joint process)."""
        dead = _Dead(prefix, first, end, list(unsettled), slot)
        self._collecting.append(dead)
        task = asyncio.get_running_loop().create_task(self._replay(dead))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def late(self, entry: dict[str, Any]) -> bool:
        """Add an entry (with its ``seq``) for batches a dead child answered to that child's
        replay; False when none takes it (too late: the caller counts it lost)."""
        frames = [frame for frame, _, _ in entry["kept"]]
        for dead in self._collecting:
            if dead.slot == entry.get("slot", 0) and \
                    all(dead.first <= f < dead.end for f in frames):
                dead.entries.append(entry)
                return True
        return False

    async def _replay(self, dead: _Dead) -> None:
        try:
            await asyncio.sleep(self.GRACE_S)
        finally:
            self._collecting.remove(dead)
        loop = asyncio.get_running_loop()
        try:
            done = await loop.run_in_executor(None, replay, dead.prefix, dead.entries)
        except Exception:
            log.exception("endpoint %s: could not replay the spool %s", self.endpoint,
                          dead.prefix)
            self._on_stats(LogStats(dropped_rows=count_lost(self.endpoint, dead.entries)))
            return
        if done.stats.written_rows:
            log.warning("endpoint %s: %d logged rows replayed from the spool of an "
                        "inference process that stopped", self.endpoint,
                        done.stats.written_rows)
        self._on_stats(replayed_stats(self.endpoint, done))

    async def wait(self) -> None:
        """Until every replay has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
