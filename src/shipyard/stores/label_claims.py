"""Which requests have feedback labels: one claim per (endpoint, request id), shared by every
process that writes a log directory.

A label waits in its writer's buffer for up to a flush interval before its segment is on disk,
so two workers of ``--workers N`` (or two servers on one log directory) labelling one request
within that time each found no label and both answered 200 (35 of 200 racing pairs on a
``--workers 2`` server): the reader keeps the first, and the second caller's label was ignored
although it was told it was taken. A claim is the one place that decides: a row of an SQLite
table (``LOG_DIR/claims/labels.sqlite3``, WAL; SQLite's file locks serialise processes on one
machine's file system), looked up and inserted in one ``BEGIN IMMEDIATE`` transaction, so
exactly one of the racing requests finds no claim. Claims older than the feedback horizon are
deleted, at most once an hour.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

_CHUNK = 500  # ids per IN (...): below SQLite's limit on bound parameters


class LabelClaims:
    """Claims on labelling requests, under ``root`` (a log directory). Thread-safe; blocking
    (call it from a thread, not the event loop)."""

    def __init__(self, root: str | Path, *, horizon_s: float) -> None:
        self.path = Path(root) / "claims" / "labels.sqlite3"
        self.horizon_s = horizon_s
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pruned = -math.inf

    def claim(self, endpoint: str, request_ids: Sequence[str],
              replacing: Sequence[bool]) -> tuple[set[str], set[str]]:
        """Claim every id, all or none: returns (ids claimed before, ids refused). An id
        claimed before is refused unless its ``replacing`` is true; when any is refused
        nothing is claimed."""
        with self._lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                before = self._claimed(db, endpoint, sorted(set(request_ids)))
                refused = {i for i, again in zip(request_ids, replacing, strict=True)
                           if i in before and not again}
                if not refused:
                    now = time.time()
                    db.executemany("INSERT OR IGNORE INTO claims VALUES (?, ?, ?)",
                                   [(endpoint, i, now) for i in set(request_ids)])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._prune(db)
            return before, refused

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS claims (endpoint TEXT NOT NULL, "
                       "request_id TEXT NOT NULL, ts REAL NOT NULL, "
                       "PRIMARY KEY (endpoint, request_id)) WITHOUT ROWID")
            db.execute("CREATE INDEX IF NOT EXISTS claims_ts ON claims (ts)")
            self._db = db
        return self._db

    @staticmethod
    def _claimed(db: sqlite3.Connection, endpoint: str, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            part = ids[start:start + _CHUNK]
            marks = ", ".join("?" * len(part))
            found.update(row[0] for row in db.execute(
                f"SELECT request_id FROM claims WHERE endpoint = ? AND request_id IN "
                f"({marks})", [endpoint, *part]))
        return found

    def _prune(self, db: sqlite3.Connection) -> None:
        now = time.monotonic()
        if now - self._pruned < 3600.0:
            return
        self._pruned = now
        db.execute("DELETE FROM claims WHERE ts < ?", (time.time() - self.horizon_s,))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
