"""The prediction log: requests, responses and feedback as Parquet segments.

The hot path only appends to an in-memory buffer (``append`` never blocks on disk). A
background thread flushes every ``flush_interval`` seconds, one segment per endpoint, hour
and model version, each written to a temporary name and renamed, so readers never see half a
file and a crash loses at most the last interval. ``close()`` flushes everything.

Layout: ``ROOT/{predictions,shadow,errors,feedback}/endpoint=NAME/date=YYYY-MM-DD/hour=HH/
*.parquet``, under a local directory or an object-store URL (``s3://bucket/logs``:
``log_location.py``; a segment there is one upload, which appears whole). Prediction rows:
``request_id, row, ts, endpoint, model, version, latency_ms, routing_key, variant,
policy_revision, api_key`` (the traffic policy's variant and revision that routed the
request; ``""`` / 0 without a policy, and in segments older than them; ``api_key``: the
*name* of the API key that sent the request, never the key, null without keys and in
segments older than it), one ``input.<name>`` column per
input and ``output.label`` / ``output.value`` / ``output.proba.<class>`` / ``output.<name>``
columns. ``shadow`` segments have the same columns: a shadow version's answers to copied
requests (the primary's request id, variant ``shadow``); the monitor and feedback read only
``predictions``. ``errors``: failed answers (``error_records.py``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.names import check_endpoint_name
from shipyard.stores.error_records import ErrorRecord as ErrorRecord
from shipyard.stores.error_records import error_table
from shipyard.stores.feedback import FeedbackRecord, feedback_table
from shipyard.stores.log_location import join, log_root, write_object
from shipyard.stores.log_reader import NothingLoggedError as NothingLoggedError
from shipyard.stores.log_reader import read_log as read_log
from shipyard.types import Array, Columns

log = logging.getLogger(__name__)
_SEQ = itertools.count()


@dataclass
class PredictionRecord:
    """One served request (``rows`` rows)."""

    request_id: str
    ts: float  # seconds since the epoch
    endpoint: str
    model: str
    version: int
    latency_ms: float
    routing_key: str | None
    inputs: Columns
    outputs: Columns
    class_labels: Sequence[Any] | None = None
    key_name: str | None = None  # the API key's name (never the key)

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values()))) if self.inputs else 0


@dataclass
class PredictionBatch:
    """Several served requests of one endpoint and model version, answered by one model
    call: their rows concatenated in request order. The server logs one per batch, so the
    hot path appends once per batch and the writer handles whole arrays."""

    request_ids: Sequence[str]
    row_counts: Sequence[int]  # rows of each request
    latency_ms: Sequence[float]
    routing_keys: Sequence[str | None]
    ts: Sequence[float]  # seconds since the epoch; the batch goes to the first one's hour
    endpoint: str
    model: str
    version: int
    inputs: Columns
    outputs: Columns
    class_labels: Sequence[Any] | None = None
    variants: Sequence[str] | None = None  # one per request; None: all ""
    policy_revisions: Sequence[int] | None = None  # one per request; None: all 0
    key_names: Sequence[str | None] | None = None  # API key names per request; None: all null
    kind: Literal["predictions", "shadow"] = "predictions"

    @property
    def rows(self) -> int:
        return sum(self.row_counts)


def _as_batch(record: PredictionRecord | PredictionBatch) -> PredictionBatch:
    if isinstance(record, PredictionBatch):
        return record
    return PredictionBatch([record.request_id], [record.rows], [record.latency_ms],
                           [record.routing_key], [record.ts], record.endpoint, record.model,
                           record.version, record.inputs, record.outputs, record.class_labels,
                           key_names=None if record.key_name is None else [record.key_name])


Record = PredictionRecord | PredictionBatch | FeedbackRecord | ErrorRecord


@dataclass
class LogStats:
    written_rows: int = 0
    dropped_rows: int = 0
    segments: int = 0
    write_errors: int = 0
    quarantined_rows: int = 0  # written aside (``quarantine/``) after a failed segment write
    by_kind: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def total(parts: Sequence[LogStats]) -> LogStats:
        """Counters of several writers of one log, added up."""
        out = LogStats()
        for part in parts:
            out.written_rows += part.written_rows
            out.dropped_rows += part.dropped_rows
            out.segments += part.segments
            out.write_errors += part.write_errors
            out.quarantined_rows += part.quarantined_rows
            for kind, rows in part.by_kind.items():
                out.by_kind[kind] = out.by_kind.get(kind, 0) + rows
        return out


class PredictionLog:
    """Buffer + background writer. ``append`` returns False when the record was dropped."""

    def __init__(self, root: str | Path, *, flush_interval: float = 1.0,
                 max_buffered_rows: int = 500_000) -> None:
        self.root = log_root(root)  # a Path, or an object store's URL
        self.flush_interval = flush_interval
        self.max_buffered_rows = max_buffered_rows
        self.stats = LogStats()
        self._buffer: list[Record] = []
        self._buffered_rows = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PredictionLog:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipyard-log-writer",
                                            daemon=True)
            self._thread.start()
        return self

    def append(self, record: Record) -> bool:
        rows = record.rows
        with self._lock:
            if self._buffered_rows + rows > self.max_buffered_rows:
                self.stats.dropped_rows += rows
                return False
            self._buffer.append(record)
            self._buffered_rows += rows
        return True

    def count_dropped(self, rows: int) -> None:
        """Count rows that could not be logged at all (they never reached the buffer)."""
        with self._lock:
            self.stats.dropped_rows += rows

    @property
    def buffered_rows(self) -> int:
        return self._buffered_rows

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()

    def flush(self, name: str | None = None) -> int:
        """Write everything buffered now; returns the rows written. With ``name``, each
        segment's file name is derived from it (and the model version) instead of being
        unique: writing the same records again under the same name replaces the segment
        with an identical one (an inference process's spool replay, ``runtimes/spool.py``)."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
                self._buffered_rows = 0
            if not batch:
                return 0
            written = 0
            for key, records in _group(batch).items():
                try:
                    written += self._write(key, records, name)
                except Exception:  # a bad segment must not stop the writer
                    log.exception("prediction log: could not write a segment for %s", key)
                    with self._lock:
                        self.stats.write_errors += 1
                    written += self._write_apart(key, records)
            return written

    def _write_apart(self, key: tuple[str, str, str, int], records: list[Any]) -> int:
        """A segment failed: write its records one by one, so one bad record never takes
        the others with it; one that fails alone goes to ``quarantine/`` as JSON lines."""
        written = 0
        for record in records:
            if len(records) > 1:
                try:
                    written += self._write(key, [record])
                    continue
                except Exception:
                    log.exception("prediction log: could not write a record of %s", key)
            self._quarantine(key, record)
        return written

    def _quarantine(self, key: tuple[str, str, str, int], record: Any) -> None:
        kind, endpoint, hour, _version = key
        folder = join(self.root, "quarantine")
        try:  # a bad endpoint name is dropped and counted: it must never name a folder
            folder = join(folder, kind, f"endpoint={check_endpoint_name(endpoint)}")
            line = _record_json(record)
            if isinstance(folder, Path):
                folder.mkdir(parents=True, exist_ok=True)
                with (folder / f"{hour}-{os.getpid()}.jsonl").open("a",
                                                                     encoding="utf-8") as out:
                    out.write(line + "\n")
            else:  # an object store cannot append: one object per quarantined record
                write_object(f"{folder}/{hour}-{_unique()}.jsonl", (line + "\n").encode())
        except Exception:
            log.exception("prediction log: could not quarantine a record of %s; dropped", key)
            with self._lock:  # append() updates dropped_rows under the same lock
                self.stats.dropped_rows += record.rows
            return
        log.error("prediction log: %d row(s) of %s quarantined under %s", record.rows, key,
                  folder)
        with self._lock:
            self.stats.quarantined_rows += record.rows

    def _write(self, key: tuple[str, str, str, int], records: list[Any],
               name: str | None = None) -> int:
        kind, endpoint, hour, version = key
        check_endpoint_name(endpoint)  # it names a folder
        table = (feedback_table(records) if kind == "feedback"
                 else error_table(records) if kind == "errors"
                 else _prediction_table(records))
        stamp = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        folder = join(self.root, kind, f"endpoint={endpoint}", f"date={stamp:%Y-%m-%d}",
                      f"hour={stamp:%H}")
        name = f"{_unique()}.parquet" if name is None else f"{name}-v{version}.parquet"
        options: dict[str, Any] = {"compression": "zstd",
                                   "use_dictionary": _dictionary_columns(table)}
        if isinstance(folder, Path):
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp"
            pq.write_table(table, tmp, **options)
            tmp.replace(folder / name)
        else:  # one upload: the object appears whole, so no temporary name is needed
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, **options)
            write_object(f"{folder}/{name}", sink.getvalue().to_pybytes())
        self.stats.written_rows += table.num_rows
        self.stats.segments += 1
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + table.num_rows
        return int(table.num_rows)

    def close(self) -> None:
        """Stop the writer and flush everything still buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()


def _unique() -> str:
    """A segment's name: unique across processes and writers of one log."""
    return f"{time.time_ns()}-{os.getpid()}-{next(_SEQ)}"


def _record_json(record: Any) -> str:
    """A record as one JSON line (arrays as lists): what the quarantine keeps."""
    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray | np.generic):
            return value.tolist()
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    fields = {name: plain(getattr(record, name)) for name in record.__dataclass_fields__}
    return json.dumps({"record": type(record).__name__, **fields}, default=str)


def _dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth dictionary-encoding: strings, integers and booleans repeat
    (endpoint, model, routing key, labels, categories). Floats rarely do, and trying them
    took most of a segment's write time and made files larger; request ids never repeat."""
    return [f.name for f in table.schema if f.name != "request_id" and (
        pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        or pa.types.is_integer(f.type) or pa.types.is_boolean(f.type))]


def _hour(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H")


def _group(batch: list[Record]) -> dict[tuple[str, str, str, int], list[Any]]:
    groups: dict[tuple[str, str, str, int], list[Any]] = {}
    for rec in batch:
        key: tuple[str, str, str, int]
        if isinstance(rec, PredictionBatch):
            key = (rec.kind, rec.endpoint, _hour(rec.ts[0]), rec.version)
        elif isinstance(rec, PredictionRecord):
            key = ("predictions", rec.endpoint, _hour(rec.ts), rec.version)
        elif isinstance(rec, ErrorRecord):
            key = ("errors", rec.endpoint, _hour(rec.ts), 0)
        else:
            key = ("feedback", rec.endpoint, _hour(rec.ts), 0)
        groups.setdefault(key, []).append(rec)
    return groups


def _column(parts: list[Array]) -> pa.Array:
    arr = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if arr.dtype.kind == "O":
        return pa.array([None if v is None else str(v) for v in arr], type=pa.string())
    if arr.ndim > 1:  # one fixed-size list per row, built without Python objects
        width = int(np.prod(arr.shape[1:]))
        return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), width)
    return pa.array(arr)


def _per_request(batch: PredictionBatch, values: Sequence[Any] | None,
                 default: Any) -> Sequence[Any]:
    """``values`` (one per request of ``batch``), or ``default`` for each."""
    if values is None:
        return [default] * len(batch.row_counts)
    if len(values) != len(batch.row_counts):
        raise ValueError(f"{len(values)} variants, policy revisions or key names for "
                         f"{len(batch.row_counts)} requests")
    return values


def _repeat_strings(values: list[str], counts: Array) -> pa.Array:
    """One string per request -> one per row: the few distinct values, taken by index (no
    Python object per row)."""
    strings = pa.array(values, type=pa.string())
    if len(values) == counts.sum():
        return strings
    coded = strings.dictionary_encode()
    return coded.dictionary.take(pa.array(np.repeat(coded.indices.to_numpy(), counts)))


def _key_column(batches: list[PredictionBatch], counts: Array) -> pa.Array:
    """``api_key``: one key name (or null) per request -> one per row."""
    if all(b.key_names is None for b in batches):
        return pa.nulls(int(counts.sum()), type=pa.string())
    names = pa.array([k for b in batches for k in _per_request(b, b.key_names, None)],
                     type=pa.string())
    if len(names) == counts.sum():
        return names
    return names.take(pa.array(np.repeat(np.arange(len(names)), counts)))


def _prediction_table(records: list[PredictionRecord | PredictionBatch]) -> pa.Table:
    batches = [_as_batch(r) for r in records]
    counts = np.fromiter((n for b in batches for n in b.row_counts), dtype=np.int64)
    per_batch = [b.rows for b in batches]

    def per_request(values: list[Any]) -> Any:  # one value per request -> one per row
        if len(values) == len(counts) == counts.sum():
            return values
        return np.repeat(np.asarray(values, dtype=object), counts).tolist()

    def per_batch_rows(values: list[Any], dtype: str) -> Array:
        return np.repeat(np.asarray(values, dtype=dtype), per_batch)

    meta: dict[str, pa.Array] = {
        "request_id": pa.array(per_request([i for b in batches for i in b.request_ids]),
                               type=pa.string()),
        "row": pa.array((np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
                        .astype(np.int32)),
        "ts": pa.array(np.repeat(np.asarray([t * 1e6 for b in batches for t in b.ts],
                                            dtype="float64").astype("int64"), counts),
                       type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "endpoint": pa.array(per_batch_rows([b.endpoint for b in batches], "object").tolist(),
                             type=pa.string()),
        "model": pa.array(per_batch_rows([b.model for b in batches], "object").tolist(),
                          type=pa.string()),
        "version": pa.array(per_batch_rows([b.version for b in batches], "int32")),
        "latency_ms": pa.array(np.repeat(np.asarray(
            [v for b in batches for v in b.latency_ms], dtype="float32"), counts)),
        "routing_key": pa.array(per_request([k or "" for b in batches
                                             for k in b.routing_keys]), type=pa.string()),
        "variant": _repeat_strings([v for b in batches
                                    for v in _per_request(b, b.variants, "")], counts),
        "policy_revision": pa.array(np.repeat(np.asarray(
            [r for b in batches for r in _per_request(b, b.policy_revisions, 0)],
            dtype=np.int32), counts)),
        "api_key": _key_column(batches, counts),
    }
    first = batches[0]
    for name in first.inputs:
        meta[f"input.{name}"] = _column([b.inputs[name] for b in batches])
    for name in first.outputs:
        if name == "probabilities" and first.class_labels is not None:
            for i, label in enumerate(first.class_labels):
                meta[f"output.proba.{label}"] = _column(
                    [b.outputs[name][:, i] for b in batches])
        else:
            meta[f"output.{name}"] = _column([b.outputs[name] for b in batches])
    return pa.table(meta)
