"""Uploading inference processes' log segments to a prediction log on an object store.

An inference process runs model code, so it never gets the server's cloud credentials
(``runtimes/child_env.py``). When the log is on an object store (``s3://bucket/logs``), each
inference process writes its segments (and keeps its spool) under a local *outbox* with the
log's own layout, exactly as it would write a local log; this process, which holds the
credentials, uploads each finished segment to the same key under the log's URL and then
deletes the local file. Segments are renamed into place before they are seen here, so only
whole files travel; one that fails to upload stays for the next round. Uploading one twice
(a crash between upload and delete, or a spool replay writing the same segment again) puts
an identical object: nothing is logged twice. Quarantined records stay in the outbox.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from shipyard.stores.log_location import upload_file

log = logging.getLogger(__name__)

KINDS = ("predictions", "shadow", "errors", "feedback")
CLOSE_BUDGET_S = 30.0  # at shutdown, no upload starts after this


class LogShipper:
    """Uploads the segments under ``outbox`` to the log at ``url`` every ``interval_s``
    seconds (a thread of its own once started), and once more on ``close``."""

    def __init__(self, outbox: Path, url: str, *, interval_s: float = 1.0) -> None:
        self.outbox = outbox
        self.url = url.rstrip("/")
        self.interval_s = interval_s
        self.shipped = 0  # segments uploaded
        self.failures = 0  # uploads that failed (their segments were retried)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LogShipper:
        self.outbox.mkdir(parents=True, exist_ok=True)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipyard-log-shipper",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.ship()

    def ship(self, *, deadline: float | None = None) -> int:
        """Upload every finished segment now (none started after ``deadline``, a
        ``time.monotonic()`` moment); returns how many were uploaded."""
        with self._lock:
            done = 0
            segments = self._segments()
            for i, path in enumerate(segments):
                if deadline is not None and time.monotonic() >= deadline:
                    log.error("prediction log: %d segment(s) not uploaded to %s in time; "
                              "they stay in %s and are uploaded when a server with this log "
                              "starts again", len(segments) - i, self.url, self.outbox)
                    break
                key = path.relative_to(self.outbox).as_posix()
                try:
                    upload_file(path, f"{self.url}/{key}")
                except (OSError, ValueError) as exc:  # pyarrow's errors are OSError subtypes
                    self.failures += 1
                    log.error("prediction log: could not upload %s (%s: %s); retried at the "
                              "next round", key, type(exc).__name__, exc)
                    continue
                path.unlink(missing_ok=True)
                done += 1
            self.shipped += done
            return done

    def _segments(self) -> list[Path]:
        return sorted(p for kind in KINDS for p in (self.outbox / kind).rglob("*.parquet")
                      if not p.name.startswith("."))

    def close(self, *, budget_s: float = CLOSE_BUDGET_S) -> None:
        """Stop the thread and upload what is left, starting no upload after ``budget_s``
        seconds (call after the inference processes wrote their last segments): a store
        that does not answer delays a shutdown by at most about this plus one upload's
        timeout; what is not uploaded stays in the outbox, said in the log."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.ship(deadline=time.monotonic() + budget_s)
