"""The inference process's prediction log: it writes the rows of the batches it answered.

The child holds each batch's inputs and outputs already, so the server process neither keeps
them nor spends its GIL on Arrow and Parquet. The server sends a log entry per answered batch
(``log_entry``: which rows, request ids, latencies), numbered by ``seq``; the child keeps the
rows until the entry names them, then writes them.

Every answer of the child says which entries are *settled*: written to a segment (renamed into
place), or counted as dropped. The server keeps the entries that are not settled yet; if the
child dies, exactly those rows are lost, and the server counts and names them
(``process.py``). The counters the child reports come from the same moment as the settled
number, so a row is never counted both written and lost because of when it was asked.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

from shipyard.runtimes.outputs import concat
from shipyard.stores.predictions import PredictionBatch, PredictionLog
from shipyard.types import Columns, num_rows


@dataclasses.dataclass(frozen=True)
class ChildLog:
    """Where and as what the child logs its batches (the server's prediction log)."""

    root: str
    flush_interval_s: float
    endpoint: str
    model: str
    version: int


def log_entry(kept: list[tuple[int, int, int]], request_ids: list[str],
              latency_ms: list[float], routing_keys: list[str | None],
              ts: list[float], upto: int) -> dict[str, Any]:
    """A log entry for the child: per kept request its ``(batch id, first row, end row)``
    and its metadata; ``upto``: the newest batch id this entry settles (the child forgets
    older batches once the entry is written). Lists, as they are: the entry is encoded.
    The parent adds ``seq`` (its number) when it queues the entry."""
    return {"kept": kept, "request_ids": request_ids, "latency_ms": latency_ms,
            "routing_keys": routing_keys, "ts": ts, "upto": upto}


def entry_rows(entry: dict[str, Any]) -> int:
    """The rows a log entry names."""
    return sum(b - a for _, a, b in entry["kept"])


class ChildLogger:
    """The child's side: keeps each batch's inputs and outputs until a log entry says which
    rows to write; a thread of its own writes them every ``flush_interval_s``."""

    KEEP = 1024  # batches kept at most (entries normally settle them one batch later)
    MAX_BUFFERED_ROWS = 500_000  # rows waiting for the writer, at most (more are dropped)

    def __init__(self, spec: ChildLog, class_labels: Sequence[Any] | None) -> None:
        self.spec = spec
        self.class_labels = class_labels
        # no writer thread of its own: ``_flush`` feeds it and reads its counters together
        self.log = PredictionLog(spec.root, flush_interval=spec.flush_interval_s,
                                 max_buffered_rows=self.MAX_BUFFERED_ROWS)
        self.batches: dict[int, tuple[Columns, Columns]] = {}
        self._lock = threading.Lock()  # _waiting, _rows, _report
        self._flush_lock = threading.Lock()  # one flush at a time (the thread or a request)
        self._waiting: list[tuple[int, PredictionBatch | int]] = []  # (seq, batch or lost rows)
        self._rows = 0
        self._report: dict[str, Any] = {"settled": 0, **_counters(self.log)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shipyard-child-log",
                                        daemon=True)
        self._thread.start()

    def keep(self, frame: int, inputs: Columns, outputs: Columns) -> None:
        self.batches[frame] = (inputs, outputs)
        if len(self.batches) > self.KEEP:
            del self.batches[next(iter(self.batches))]

    def write(self, entry: dict[str, Any]) -> None:
        """Queue the rows ``entry`` names for the writer (or count them dropped when the
        batches are forgotten or the queue is full: never write wrong rows)."""
        kept = entry["kept"]
        parts = [(self.batches.get(frame), a, b) for frame, a, b in kept]
        held = [(p, a, b) for p, a, b in parts if p is not None]
        rows = entry_rows(entry)
        item: PredictionBatch | int = rows
        if kept and len(held) == len(kept) and self._rows + rows <= self.MAX_BUFFERED_ROWS:
            item = PredictionBatch(
                request_ids=entry["request_ids"], row_counts=[b - a for _, a, b in kept],
                latency_ms=entry["latency_ms"], routing_keys=entry["routing_keys"],
                ts=entry["ts"], endpoint=self.spec.endpoint, model=self.spec.model,
                version=self.spec.version,
                inputs=_gather([(p[0], a, b) for p, a, b in held]),
                outputs=_gather([(p[1], a, b) for p, a, b in held]),
                class_labels=self.class_labels)
        with self._lock:
            self._waiting.append((entry.get("seq", 0), item))
            if not isinstance(item, int):
                self._rows += rows
        for frame in [f for f in self.batches if f <= entry["upto"]]:
            del self.batches[frame]

    def _run(self) -> None:
        while not self._stop.wait(self.spec.flush_interval_s):
            self.flush()

    def flush(self) -> None:
        """Write every queued entry now; then they are settled."""
        with self._flush_lock:
            with self._lock:
                waiting, self._waiting, self._rows = self._waiting, [], 0
            for _, item in waiting:
                if isinstance(item, int):
                    self.log.count_dropped(item)
                else:
                    self.log.append(item)
            self.log.flush()  # a segment it cannot write is counted dropped there
            with self._lock:
                settled = waiting[-1][0] if waiting else self._report["settled"]
                self._report = {"settled": settled, **_counters(self.log)}

    def report(self) -> dict[str, Any]:
        """The newest settled entry and the log's counters at that moment."""
        with self._lock:
            return self._report

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()


def _counters(log: PredictionLog) -> dict[str, Any]:
    stats = log.stats  # its fields, as dataclasses.asdict has them, but cheaper
    return {"log_stats": {**vars(stats), "by_kind": dict(stats.by_kind)}}


def _gather(parts: list[tuple[Columns, int, int]]) -> Columns:
    """Rows ``[a, b)`` of each part's columns, concatenated. Consecutive ranges of one part
    (a batch's requests, in order) are one slice; a whole part is not copied."""
    merged: list[tuple[Columns, int, int]] = []
    for cols, a, b in parts:
        if merged and merged[-1][0] is cols and merged[-1][2] == a:
            merged[-1] = (cols, merged[-1][1], b)
        else:
            merged.append((cols, a, b))
    return concat([cols if a == 0 and b == num_rows(cols) else {k: v[a:b] for k, v in cols.items()}
                   for cols, a, b in merged])
