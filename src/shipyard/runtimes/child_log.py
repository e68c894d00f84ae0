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

With a spool (``spool.py``), the rows of each answered batch and the entries the child
received are on disk before its answer leaves, so when the child dies the server replays them
(``spool_replay.py``) and nothing answered is lost; only what the spool cannot give back
(it failed, or a file is unreadable) is counted and named as dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.runtimes.outputs import concat
from shipyard.runtimes.spool import SpoolWriter, batch_record, entries_record
from shipyard.stores.predictions import LogStats, PredictionBatch, PredictionLog
from shipyard.types import Columns, num_rows

log = logging.getLogger("shipyard.serve")


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
              ts: list[float], upto: int, *, variants: list[str] | None = None,
              revisions: list[int] | None = None, shadow: bool = False,
              slot: int = 0, key_names: list[str | None] | None = None) -> dict[str, Any]:
    """A log entry for the child: per kept request its ``(batch id, first row, end row)``
    and its metadata (``variants`` / ``revisions``: the traffic policy's, None: "" / 0;
    ``key_names``: the API keys' names, None: no key);
    ``upto``: the newest batch id this entry settles (the child forgets older batches once
    the entry is written); ``shadow``: the rows are a shadow version's answers (written to
    the ``shadow`` segments); ``slot``: which of a joint process's versions answered them
    (``joint_batch.py``). Lists, as they are: the entry is encoded. The parent adds
    ``seq`` (its number) when it queues the entry."""
    entry = {"kept": kept, "request_ids": request_ids, "latency_ms": latency_ms,
             "routing_keys": routing_keys, "ts": ts, "upto": upto}
    if variants is not None:
        entry["variants"] = variants
    if revisions is not None:
        entry["revisions"] = revisions
    if key_names is not None:
        entry["key_names"] = key_names
    if shadow:
        entry["shadow"] = True
    if slot:
        entry["slot"] = slot
    return entry


def entry_rows(entry: dict[str, Any]) -> int:
    """The rows a log entry names."""
    return sum(b - a for _, a, b in entry["kept"])


def prediction_batch(spec: ChildLog, class_labels: Sequence[Any] | None,
                     entry: dict[str, Any],
                     batches: Mapping[int, tuple[Columns, Columns]]) -> PredictionBatch | None:
    """The rows ``entry`` names, from ``batches`` (id -> inputs, outputs); None when one of
    its batches is not there."""
    kept = entry["kept"]
    parts = [(batches.get(frame), a, b) for frame, a, b in kept]
    held = [(p, a, b) for p, a, b in parts if p is not None]
    if not kept or len(held) != len(kept):
        return None
    return PredictionBatch(
        request_ids=entry["request_ids"], row_counts=[b - a for _, a, b in kept],
        latency_ms=entry["latency_ms"], routing_keys=entry["routing_keys"], ts=entry["ts"],
        endpoint=spec.endpoint, model=spec.model, version=spec.version,
        inputs=_gather([(p[0], a, b) for p, a, b in held]),
        outputs=_gather([(p[1], a, b) for p, a, b in held]), class_labels=class_labels,
        variants=entry.get("variants"), policy_revisions=entry.get("revisions"),
        key_names=entry.get("key_names"), kind="shadow" if entry.get("shadow") else "predictions")


class ChildLogger:
    """The child's side: keeps each batch's inputs and outputs until a log entry says which
    rows to write; a thread of its own writes them every ``flush_interval_s``. With a spool
    (``spool.py``), ``record`` puts a batch's rows and the entries that came with it on disk
    before the answer leaves, and each flush rotates the spool."""

    KEEP = 1024  # batches kept at most (entries normally settle them one batch later)
    CARRY = 64  # batches carried into the next spool file at most (the others are forgotten)
    MAX_BUFFERED_ROWS = 500_000  # rows waiting for the writer, at most (more are dropped)

    def __init__(self, spec: ChildLog, class_labels: Sequence[Any] | None,
                 spool: Path | None = None) -> None:
        self.spec = spec
        self.class_labels = class_labels
        # no writer thread of its own: ``_flush`` feeds it and reads its counters together
        self.log = PredictionLog(spec.root, flush_interval=spec.flush_interval_s,
                                 max_buffered_rows=self.MAX_BUFFERED_ROWS)
        # batch id -> (inputs, outputs, its spool record)
        self.batches: dict[int, tuple[Columns, Columns, bytes]] = {}
        self._lock = threading.Lock()  # batches, _waiting, _rows, _report, _spool
        self._flush_lock = threading.Lock()  # one flush at a time (the thread or a request)
        self._waiting: list[tuple[int, PredictionBatch | int]] = []  # (seq, batch or lost rows)
        self._rows = 0
        self._received = 0  # the newest entry received
        self._open: deque[int] = deque()  # entries received, not settled (their seq)
        self._report: dict[str, Any] = {"settled": 0, **_counters(self.log)}
        self._spool: SpoolWriter | None = None
        if spool is not None:
            try:
                self._spool = SpoolWriter(spool, {**dataclasses.asdict(spec),
                                                  "class_labels": _plain(class_labels)})
            except OSError as exc:
                log.error("prediction log of %s: no spool (%s): rows of answered requests "
                          "are lost if this process dies", spec.endpoint, exc)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shipyard-child-log",
                                        daemon=True)
        self._thread.start()

    def record(self, entries: Sequence[dict[str, Any]], frame: int | None = None,
               inputs: Columns | None = None, outputs: Columns | None = None) -> None:
        """Take the log ``entries`` a frame brought and the rows of the batch it is answering
        (``frame``); with a spool, both are on disk (one write) when this returns. Call
        before the answer leaves."""
        rec = both = b""
        if self._spool is not None:
            if frame is not None and inputs is not None and outputs:
                rec = batch_record(frame, inputs, outputs)
            both = entries_record(list(entries)) + rec if entries else rec
        with self._lock:
            if both and self._spool is not None:
                try:
                    self._spool.append(both)
                except OSError as exc:
                    self._lose_spool(exc)
            for entry in entries:
                self._take(entry)
            if frame is not None and inputs is not None and outputs:
                self.batches[frame] = (inputs, outputs, rec)
                if len(self.batches) > self.KEEP:
                    del self.batches[next(iter(self.batches))]

    def _take(self, entry: dict[str, Any]) -> None:
        """Queue the rows ``entry`` names for the writer (or count them dropped when the
        batches are forgotten or the queue is full: never write wrong rows)."""
        rows = entry_rows(entry)
        item: PredictionBatch | int = rows
        if self._rows + rows <= self.MAX_BUFFERED_ROWS:
            built = prediction_batch(self.spec, self.class_labels, entry, {
                f: (b[0], b[1]) for f in {k[0] for k in entry["kept"]}
                if (b := self.batches.get(f)) is not None})
            item = rows if built is None else built
        seq = entry.get("seq", 0)
        self._waiting.append((seq, item))
        self._open.append(seq)
        self._received = max(self._received, seq)
        if not isinstance(item, int):
            self._rows += rows
        for frame in [f for f in self.batches if f <= entry["upto"]]:
            del self.batches[frame]

    def _lose_spool(self, exc: OSError) -> None:
        log.error("prediction log of %s: the spool failed (%s): rows of answered requests "
                  "are lost if this process dies", self.spec.endpoint, exc)
        if self._spool is not None:
            self._spool.release(self._spool.close())  # its entries are in memory: written
        self._spool = None

    def _run(self) -> None:
        while not self._stop.wait(self.spec.flush_interval_s):
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        """Write every queued entry now; then they are settled. With a spool: rotate it (or
        close it when ``final``), write the entries under the old file's name, delete it."""
        with self._flush_lock:
            with self._lock:
                waiting, self._waiting, self._rows = self._waiting, [], 0
                spool, done = self._spool, self._rotate(final)
            for _, item in waiting:
                if isinstance(item, int):
                    self.log.count_dropped(item)
                else:
                    self.log.append(item)
            # a segment it cannot write is counted dropped there
            self.log.flush(None if done is None else done.stem)
            if spool is not None and done is not None:
                spool.release(done)
            with self._lock:
                settled = waiting[-1][0] if waiting else self._report["settled"]
                self._report = {"settled": settled, **_counters(self.log)}
                while self._open and self._open[0] <= settled:
                    self._open.popleft()

    def _rotate(self, final: bool) -> Path | None:
        """The spool file to write and delete now (None: none); called under the lock."""
        spool = self._spool
        if spool is None:
            return None
        if final:
            self._spool = None
            return spool.close()
        if not spool.dirty:
            return None
        for frame in list(self.batches)[:-self.CARRY]:  # too old to be named by an entry now
            del self.batches[frame]
        try:
            return spool.rotate(self._received, b"".join(b[2] for b in self.batches.values()))
        except OSError as exc:
            self._lose_spool(exc)  # the file is gone: its entries are written untagged
            return None

    def report(self) -> dict[str, Any]:
        """The newest settled entry and the log's counters at that moment."""
        with self._lock:
            return self._report

    def state(self) -> tuple[dict[str, Any], int | None, int]:
        """``report()``, and of that moment the oldest entry received and not settled
        (None: none) and the newest entry received."""
        with self._lock:
            return self._report, self._open[0] if self._open else None, self._received

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush(final=True)


def joint_report(loggers: Sequence[ChildLogger]) -> dict[str, Any]:
    """``report()`` of a process with a logger per version: settled is the newest entry
    such that every entry up to it is settled by its version's logger (entries reach the
    loggers in order, so one received by none is newer than every received one); the
    counters are the loggers' added up."""
    states = [logger.state() for logger in loggers]
    settled = max(received for _, _, received in states)
    for _, first_open, _ in states:
        if first_open is not None:
            settled = min(settled, first_open - 1)
    stats = LogStats.total([LogStats(**report["log_stats"]) for report, _, _ in states])
    return {"settled": settled, "log_stats": {**vars(stats), "by_kind": dict(stats.by_kind)}}


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


def _plain(values: Sequence[Any] | None) -> list[Any] | None:
    """Class labels as JSON has them."""
    return None if values is None else [v.item() if isinstance(v, np.generic) else v
                                        for v in values]
