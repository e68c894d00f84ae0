"""Which request ids one endpoint's log holds: the answer to "was this id ever logged?".

A ``LoggedIds`` reads the ``request_id`` and ``row`` columns of each segment of one kind
(predictions or feedback) once, for the hour folders within its horizon, and keeps them as
sorted 64-bit hashes with each request's row count: 12 bytes per logged request, built only
when asked (a feedback label naming an id the server does not hold in memory). Segments are
immutable once renamed into place, so a refresh reads only new ones and forgets those whose
hour left the horizon. Every process writing to the log directory (workers, inference
processes, other servers) is seen once its segment is on disk.

Hashes are Python's string hashes (per process): two ids share one with odds of about one in
2**64 per pair, which only matters to an attacker who already knows a real id.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from shipyard.names import check_endpoint_name
from shipyard.stores.feedback import hour_start
from shipyard.stores.log_location import join, list_objects, log_root, readable
from shipyard.types import Array

log = logging.getLogger(__name__)

_MERGE_AT = 16  # chunks of one hour folder merged into one past this many


class LoggedIds:
    """Request ids of the ``kind`` log of ``endpoint`` under ``root``, within the last
    ``horizon_s`` seconds (by hour folder). Thread-safe; ``refresh`` runs at most once per
    ``min_interval_s`` unless forced."""

    def __init__(self, root: str | Path, kind: str, endpoint: str, *, horizon_s: float,
                 min_interval_s: float = 0.2) -> None:
        self.folder = join(log_root(root), kind, f"endpoint={check_endpoint_name(endpoint)}")
        self.horizon_s = horizon_s
        self.min_interval_s = min_interval_s
        self._seen: dict[str, float] = {}  # segment paths already read -> their hour
        self._hours: dict[float, list[tuple[Array, Array]]] = {}  # hour start -> chunks
        self._lock = threading.Lock()
        self._refreshed = -math.inf

    def refresh(self, *, force: bool = False) -> None:
        """Read the segments written since the last refresh."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._refreshed < self.min_interval_s:
                return
            self._refreshed = now
            oldest = time.time() - self.horizon_s - 3600.0  # an hour folder ends 1 h later
            for hour in [h for h in self._hours if h < oldest]:
                del self._hours[hour]
            for path in [p for p, h in self._seen.items() if h < oldest]:
                del self._seen[path]
            for hour, path in self._segments(oldest):
                if path in self._seen:
                    continue
                chunk = _read_ids(path)
                self._seen[path] = hour
                if chunk is not None:
                    self._add(hour, chunk)

    def _segments(self, oldest: float) -> Iterable[tuple[float, str]]:
        if not isinstance(self.folder, Path):  # an object store: list only the horizon's days
            for day in _days(oldest, time.time()):
                for uri in list_objects(f"{self.folder}/date={day}"):
                    start = hour_start(Path(uri).parent)
                    if start is not None and start >= oldest:
                        yield start, uri
            return
        if not self.folder.is_dir():
            return
        for date in self.folder.glob("date=*"):
            for hour_dir in date.glob("hour=*"):
                start = hour_start(hour_dir)
                if start is None or start < oldest:
                    continue
                for path in hour_dir.glob("*.parquet"):
                    if not path.name.startswith("."):
                        yield start, str(path)

    def _add(self, hour: float, chunk: tuple[Array, Array]) -> None:
        chunks = self._hours.setdefault(hour, [])
        chunks.append(chunk)
        if len(chunks) > _MERGE_AT:
            self._hours[hour] = [_sorted(np.concatenate([c[0] for c in chunks]),
                                         np.concatenate([c[1] for c in chunks]))]

    def rows(self, request_id: str) -> int | None:
        """Rows the log holds for ``request_id`` (None: not logged, as of the last
        refresh)."""
        return self.rows_of([request_id])[0]

    def rows_of(self, request_ids: Sequence[str]) -> list[int | None]:
        """``rows`` of each id, in one vectorised pass per chunk (a feedback request may
        name many ids: a loop per id and chunk held the event loop for seconds)."""
        keys = np.fromiter((hash(i) for i in request_ids), dtype=np.int64,
                           count=len(request_ids))
        best = np.zeros(len(keys), dtype=np.int64)
        with self._lock:
            for chunks in self._hours.values():
                for hashes, rows in chunks:
                    if not len(hashes):
                        continue
                    at = np.minimum(np.searchsorted(hashes, keys), len(hashes) - 1)
                    hit = hashes[at] == keys  # hashes are unique within a chunk
                    best[hit] = np.maximum(best[hit], rows[at[hit]])
        return [int(b) if b else None for b in best]


def _days(start: float, end: float) -> list[str]:
    """The UTC dates (``YYYY-MM-DD``) from the one of ``start`` to the one of ``end``."""
    first = datetime.fromtimestamp(start, UTC).date()
    last = datetime.fromtimestamp(end, UTC).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _read_ids(path: str) -> tuple[Array, Array] | None:
    """Sorted hashes of a segment's request ids and each one's rows."""
    try:
        fs, (where,) = readable([path])
        table = pq.read_table(where, columns=["request_id", "row"], filesystem=fs)
    except Exception:  # vanished or unreadable: readers of the log report it, not this
        log.warning("cannot read request ids from %s", path, exc_info=True)
        return None
    grouped = table.group_by("request_id", use_threads=False).aggregate([("row", "max")])
    ids = grouped["request_id"].to_pylist()
    hashes = np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))
    rows = np.asarray(grouped["row_max"].to_numpy(), dtype=np.int32) + 1
    return _sorted(hashes, rows)


def _sorted(hashes: Array, rows: Array) -> tuple[Array, Array]:
    """Sorted unique hashes, each with the most rows any of its entries had (one id can
    be logged in several segments: a client's own id used again)."""
    order = np.argsort(hashes, kind="stable")
    hashes, rows = hashes[order], rows[order]
    if len(hashes) < 2:
        return hashes, rows
    starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
    return hashes[starts], np.maximum.reduceat(rows, starts)
