"""``PredictionLog`` in process: a full buffer drops (and counts) instead of blocking, a
segment that cannot be written is counted and does not stop the writer, readers never see
temporary files."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from shipyard.stores import predictions
from shipyard.stores.predictions import (
    FeedbackRecord,
    PredictionBatch,
    PredictionLog,
    PredictionRecord,
    read_log,
)


def record(request_id: str, rows: int, endpoint: str = "ep") -> PredictionRecord:
    a = np.arange(rows, dtype=np.float64)
    return PredictionRecord(request_id=request_id, ts=time.time(), endpoint=endpoint,
                            model="m", version=1, latency_ms=1.0, routing_key=None,
                            inputs={"a": a}, outputs={"value": a * 2})


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")


def logged_ids(root: Path, endpoint: str = "ep") -> list[str]:
    table = read_log(root, endpoint)
    return [rid for rid, row in zip(table.column("request_id").to_pylist(),
                                    table.column("row").to_pylist(), strict=True) if row == 0]


def test_a_full_buffer_drops_and_counts_records(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, max_buffered_rows=10)  # no writer thread: nothing drains
    assert log.append(record("a", 4))
    assert log.append(record("b", 4))
    assert not log.append(record("c", 4))  # 12 rows > 10: dropped, not queued
    assert log.append(record("d", 2))  # exactly full is fine
    assert not log.append(FeedbackRecord("a", time.time(), "ep", [1]))
    assert log.stats.dropped_rows == 5
    assert log.buffered_rows == 10
    log.close()
    assert sorted(logged_ids(tmp_path)) == ["a", "b", "d"]
    assert log.stats.written_rows == 10
    assert log.append(record("e", 10))  # the buffer has room again after a flush


def test_append_does_not_wait_for_a_slow_disk(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush stuck writing a segment holds no lock that ``append`` needs."""
    log = PredictionLog(tmp_path, max_buffered_rows=100)
    entered, release = threading.Event(), threading.Event()
    real_write = pq.write_table

    def slow_write(*args: Any, **kwargs: Any) -> None:
        entered.set()
        assert release.wait(10)
        real_write(*args, **kwargs)

    assert getattr(predictions, "pq") is pq  # noqa: B009 - not re-exported
    monkeypatch.setattr(pq, "write_table", slow_write)  # the module the log writes with
    assert log.append(record("first", 5))
    flusher = threading.Thread(target=log.flush)
    flusher.start()
    assert entered.wait(10)
    outcomes: list[bool] = []
    appender = threading.Thread(
        target=lambda: outcomes.extend(log.append(record(f"r{i}", 10)) for i in range(20)))
    appender.start()
    appender.join(10)
    stuck = appender.is_alive()
    release.set()
    flusher.join(10)
    assert not stuck, "append blocked behind a segment write"
    assert outcomes == [True] * 10 + [False] * 10  # 100 rows fit; the rest are dropped
    assert log.stats.dropped_rows == 100
    log.close()
    assert len(logged_ids(tmp_path)) == 11


def test_a_segment_write_error_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    # a file where the endpoint's folder should be: every segment of "bad" fails to write
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "endpoint=bad").write_text("in the way")
    log = PredictionLog(tmp_path, flush_interval=0.05).start()
    try:
        log.append(record("x1", 3, endpoint="bad"))
        log.append(record("ok1", 2))  # the same flush: its segment is written
        wait_until(lambda: log.stats.write_errors == 1 and log.stats.written_rows == 2,
                   "the first flush")
        # not lost: written aside as JSON lines and counted (see PredictionLog._quarantine)
        assert log.stats.quarantined_rows == 3 and log.stats.dropped_rows == 0
        log.append(record("x2", 1, endpoint="bad"))
        wait_until(lambda: log.stats.write_errors == 2, "the second failed write")
        log.append(record("ok2", 4))
        wait_until(lambda: log.stats.written_rows == 6, "a write after the errors")
        assert log._thread is not None and log._thread.is_alive()
    finally:
        log.close()
    assert log.stats.write_errors == 2
    assert log.stats.quarantined_rows == 4 and log.stats.dropped_rows == 0
    assert logged_ids(tmp_path) == ["ok1", "ok2"]
    aside = "".join(p.read_text() for p in (tmp_path / "quarantine").rglob("*.jsonl"))
    assert '"x1"' in aside and '"x2"' in aside


def test_close_flushes_everything_and_readers_ignore_temporary_files(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval=3600).start()
    for i in range(50):
        log.append(record(f"r{i}", 1 + i % 3))
    log.close()
    files = list(tmp_path.rglob("*"))
    assert not [p for p in files if p.name.startswith(".")]  # no temporary file left behind
    segments = [p for p in files if p.suffix == ".parquet"]
    assert len(segments) == 1
    time_ns, pid, seq = segments[0].stem.split("-")
    assert int(time_ns) > 0 and int(pid) > 0 and int(seq) >= 0
    # what a crash mid-write leaves: a dot-prefixed partial file; readers skip it
    folder = segments[0].parent
    (folder / f".{segments[0].name}.tmp").write_bytes(b"PAR1 half a file")
    (folder / ".half.parquet").write_bytes(b"PAR1 half a file")
    assert logged_ids(tmp_path) == [f"r{i}" for i in range(50)]


def test_a_batch_record_logs_exactly_what_one_record_per_request_would(tmp_path: Path) -> None:
    """The server appends one ``PredictionBatch`` per model call; the log must read back the
    same as with one ``PredictionRecord`` per request."""
    now, labels = time.time(), ["no", "yes"]
    sizes, keys = [2, 1, 3], ["k1", None, "k3"]
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    proba = np.linspace(0, 1, 12).reshape(6, 2)
    bounds = np.cumsum([0, *sizes])
    singles = PredictionLog(tmp_path / "singles")
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        singles.append(PredictionRecord(
            request_id=f"r{i}", ts=now + i, endpoint="ep", model="m", version=3,
            latency_ms=float(i), routing_key=keys[i], inputs={"x": x[lo:hi]},
            outputs={"label": np.array(labels * 3, dtype=object)[lo:hi],
                     "probabilities": proba[lo:hi]}, class_labels=labels))
    batched = PredictionLog(tmp_path / "batched")
    assert batched.append(PredictionBatch(
        request_ids=["r0", "r1", "r2"], row_counts=sizes, latency_ms=[0.0, 1.0, 2.0],
        routing_keys=keys, ts=[now, now + 1, now + 2], endpoint="ep", model="m", version=3,
        inputs={"x": x},
        outputs={"label": np.array(labels * 3, dtype=object), "probabilities": proba},
        class_labels=labels))
    assert batched.buffered_rows == 6
    singles.close()
    batched.close()
    one, other = read_log(tmp_path / "singles", "ep"), read_log(tmp_path / "batched", "ep")
    assert one.schema == other.schema
    assert one.to_pylist() == other.to_pylist()
    assert other.column("request_id").to_pylist() == ["r0", "r0", "r1", "r2", "r2", "r2"]
    assert other.column("row").to_pylist() == [0, 1, 0, 0, 1, 2]


def test_segments_dictionary_encode_strings_and_integers_not_floats(tmp_path: Path) -> None:
    """Dictionary encoding where values repeat (endpoint, model, labels, categories), never
    for float columns (trying them cost most of a segment's write time) or request ids; the
    values read back are the same either way."""
    rows = 500
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(rows, 3)), "city": np.array(["a", "b"] * (rows // 2),
                                                                dtype=object)}
    outputs = {"label": rng.integers(0, 2, rows), "probabilities": rng.random((rows, 2))}
    log = PredictionLog(tmp_path)
    log.append(PredictionBatch(
        request_ids=[f"r{i}" for i in range(rows)], row_counts=[1] * rows,
        latency_ms=[1.0] * rows, routing_keys=["k"] * rows, ts=[time.time()] * rows,
        endpoint="ep", model="m", version=1, inputs=inputs, outputs=outputs,
        class_labels=[0, 1]))
    log.close()
    (segment,) = (tmp_path / "predictions").rglob("*.parquet")
    meta = pq.ParquetFile(segment).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: set(meta.column(i).encodings)
                 for i in range(meta.num_columns)}
    dictionary = {name for name, enc in encodings.items()
                  if enc & {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}}
    assert {"endpoint", "model", "routing_key", "version", "input.city",
            "output.label"} <= dictionary
    assert not dictionary & {"request_id", "latency_ms", "output.proba.0", "output.proba.1"}
    assert not any(name.startswith("input.x") for name in dictionary)
    table = read_log(tmp_path, "ep")
    assert table.column("request_id").to_pylist() == [f"r{i}" for i in range(rows)]
    assert table.column("input.city").to_pylist() == inputs["city"].tolist()
    np.testing.assert_array_equal(np.array(table.column("input.x").to_pylist()), inputs["x"])
    np.testing.assert_array_equal(table.column("output.proba.1").to_numpy(),
                                  outputs["probabilities"][:, 1])
