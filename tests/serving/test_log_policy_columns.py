"""Issue 14's prediction-log additions: every row records the policy variant and revision
that routed it (through the server's writer and the inference process's), shadow answers
go to their own segments, failed answers to ``errors``, ``read_log`` cuts at ``until``, and
segments written before the new columns still read (as ``""`` / 0)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving.helpers import kill_child_log
from shipyard.errors import ShipyardError
from shipyard.runtimes.child_log import ChildLog, ChildLogger, log_entry
from shipyard.runtimes.process import _subset
from shipyard.runtimes.spool import spool_files
from shipyard.runtimes.spool_replay import replay
from shipyard.stores.predictions import (
    ErrorRecord,
    NothingLoggedError,
    PredictionBatch,
    PredictionLog,
    read_log,
)

T0 = 1.7e9  # 2023-11-14T22:13:20Z


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def batch(ids: list[str], counts: list[int], *, ts: float = T0, version: int = 1,
          **extra: Any) -> PredictionBatch:
    rows = sum(counts)
    x = np.arange(rows, dtype=np.float64)
    return PredictionBatch(
        request_ids=ids, row_counts=counts, latency_ms=[1.0] * len(ids),
        routing_keys=[f"user-{i}" for i in ids], ts=[ts + i for i in range(len(ids))],
        endpoint="iris", model="iris", version=version, inputs={"x": x},
        outputs={"label": np.array(["a", "b"] * rows, dtype=object)[:rows]}, **extra)


def by_row(table: pa.Table, *names: str) -> list[tuple[Any, ...]]:
    return list(zip(*(table[n].to_pylist() for n in ("request_id", "row", *names)),
                    strict=True))


def test_variants_and_revisions_round_trip_through_the_servers_writer(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append(batch(["r1", "r2", "r3"], [2, 1, 3], variants=["stable", "canary", "stable"],
                     policy_revisions=[4, 4, 5]))
    log.append(batch(["r4"], [2], ts=T0 + 10))  # no policy: "" / 0
    log.close()
    table = read_log(tmp_path, "iris")
    assert table.schema.field("policy_revision").type == pa.int32()
    assert by_row(table, "variant", "policy_revision") == [
        ("r1", 0, "stable", 4), ("r1", 1, "stable", 4), ("r2", 0, "canary", 4),
        ("r3", 0, "stable", 5), ("r3", 1, "stable", 5), ("r3", 2, "stable", 5),
        ("r4", 0, "", 0), ("r4", 1, "", 0)]


def test_a_batch_with_the_wrong_number_of_variants_is_not_written_as_wrong_rows(
        tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append(batch(["r1", "r2"], [1, 1], variants=["a"]))
    log.close()
    assert log.stats.written_rows == 0 and log.stats.quarantined_rows == 2
    with pytest.raises(NothingLoggedError):
        read_log(tmp_path, "iris")


def test_shadow_rows_live_apart_from_predictions(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append(batch(["r1", "r2"], [1, 1], variants=["primary"] * 2, policy_revisions=[7, 7]))
    log.append(batch(["r1", "r2"], [1, 1], version=2, variants=["shadow"] * 2,
                     policy_revisions=[7, 7], kind="shadow"))
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions", "shadow"]
    primary = read_log(tmp_path, "iris", kind="predictions")
    assert set(primary["variant"].to_pylist()) == {"primary"}
    assert set(primary["version"].to_pylist()) == {1}
    shadow = read_log(tmp_path, "iris", kind="shadow")
    assert by_row(shadow, "version", "variant") == [("r1", 0, 2, "shadow"),
                                                    ("r2", 0, 2, "shadow")]
    assert log.stats.by_kind == {"predictions": 2, "shadow": 2}


def test_error_rows_are_logged_and_read_in_a_time_range(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    for i, status in enumerate([503, 400, 500]):
        assert log.append(ErrorRecord(
            ts=T0 + i, endpoint="iris", model="iris", version=3, variant="canary",
            policy_revision=2, request_id=f"e{i}", status=status, latency_ms=12.5,
            routing_key=None if i else "k", shadow=i == 2))
    log.close()
    table = read_log(tmp_path, "iris", kind="errors")
    assert table.column_names == ["request_id", "ts", "endpoint", "model", "version",
                                  "variant", "policy_revision", "status", "latency_ms",
                                  "routing_key", "shadow"]
    assert table["status"].to_pylist() == [503, 400, 500]
    assert table["routing_key"].to_pylist() == ["k", "", ""]
    assert table["shadow"].to_pylist() == [False, False, True]
    assert set(table["variant"].to_pylist()) == {"canary"}
    window = read_log(tmp_path, "iris", kind="errors", since=at(T0 + 1), until=at(T0 + 2))
    assert window["request_id"].to_pylist() == ["e1"]
    with pytest.raises(NothingLoggedError):
        read_log(tmp_path, "iris", kind="shadow")
    with pytest.raises(ShipyardError, match="no log kind 'bogus'"):
        read_log(tmp_path, "iris", kind="bogus")


def test_until_is_exclusive_and_combines_with_since_and_limit(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append(batch([f"r{i}" for i in range(6)], [1] * 6))  # ts T0 .. T0+5
    log.close()
    ids = lambda **kw: read_log(tmp_path, "iris", **kw)["request_id"].to_pylist()  # noqa: E731
    assert ids(until=at(T0 + 3)) == ["r0", "r1", "r2"]
    assert ids(since=at(T0 + 1), until=at(T0 + 4)) == ["r1", "r2", "r3"]
    assert ids(since=at(T0 + 1), until=at(T0 + 4), limit=2) == ["r2", "r3"]


def test_segments_older_than_the_policy_columns_read_as_no_policy(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append(batch(["new"], [2], ts=T0 + 100, variants=["b"], policy_revisions=[3]))
    log.close()
    folder = next((tmp_path / "predictions").rglob("*.parquet")).parent
    old = read_log(tmp_path, "iris").drop_columns(["variant", "policy_revision"])
    old = old.set_column(0, "request_id", pa.array(["old", "old"]))
    old = old.set_column(old.column_names.index("ts"), "ts",
                         pa.array([int(T0 * 1e6)] * 2, pa.int64()).cast(
                             pa.timestamp("us", tz="UTC")))
    pq.write_table(old, folder / "0-old.parquet")  # as an older server wrote it
    table = read_log(tmp_path, "iris")
    assert by_row(table, "variant", "policy_revision") == [
        ("old", 0, "", 0), ("old", 1, "", 0), ("new", 0, "b", 3), ("new", 1, "b", 3)]
    next(p for p in folder.iterdir() if p.name != "0-old.parquet").unlink()
    only_old = read_log(tmp_path, "iris")  # no segment has the columns at all
    assert by_row(only_old, "variant", "policy_revision") == [("old", 0, "", 0),
                                                              ("old", 1, "", 0)]


def _child_batch(frame: int) -> tuple[dict[str, Any], dict[str, Any]]:
    x = np.arange(3, dtype="float64") + 10 * frame
    return {"x": x}, {"label": np.array([frame] * 3)}


def _entry(frame: int, seq: int, ids: list[str], **policy: Any) -> dict[str, Any]:
    entry = log_entry([(frame, i, i + 1) for i in range(len(ids))], ids, [1.0] * len(ids),
                      [None] * len(ids), [T0] * len(ids), upto=frame, **policy)
    entry["seq"] = seq
    return entry


def test_the_child_log_writes_variants_revisions_and_shadow_rows(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    logger = ChildLogger(ChildLog(str(root), 3600.0, "iris", "iris", 2), None)
    try:
        logger.record([], 1, *_child_batch(1))
        logger.record([], 2, *_child_batch(2))
        entry = _entry(1, 1, ["a", "b", "c"], variants=["a", "b", "a"], revisions=[9, 9, 9])
        part = _subset(entry, [0, 2])  # what the parent keeps of an entry, per request
        assert part["variants"] == ["a", "a"] and part["revisions"] == [9, 9]
        logger.record([_entry(1, 1, ["a", "b", "c"], variants=["a", "b", "a"],
                              revisions=[9, 9, 9]),
                       _entry(2, 2, ["s1", "s2"], variants=["shadow"] * 2,
                              revisions=[9, 9], shadow=True)])
    finally:
        logger.close()
    assert by_row(read_log(root, "iris"), "variant", "policy_revision") == [
        ("a", 0, "a", 9), ("b", 0, "b", 9), ("c", 0, "a", 9)]
    assert by_row(read_log(root, "iris", kind="shadow"), "variant", "input.x") == [
        ("s1", 0, "shadow", 20.0), ("s2", 0, "shadow", 21.0)]


def test_a_replayed_entry_keeps_its_variants(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    prefix = root / "spool" / "endpoint=iris" / "123-1"
    logger = ChildLogger(ChildLog(str(root), 3600.0, "iris", "iris", 1), None, prefix)
    entry = _entry(1, 1, ["r1", "r2"], variants=["canary", "stable"], revisions=[4, 4])
    shadow = _entry(1, 2, ["r1"], variants=["shadow"], revisions=[4], shadow=True)
    try:
        logger.record([], 1, *_child_batch(1))
        logger.record([entry])  # on disk in the spool; the child dies before writing it
    finally:  # the child dies: no final flush; its files' locks go with it
        kill_child_log(logger)
    done = replay(prefix, [entry, shadow])  # the shadow entry never reached the child
    assert not done.lost
    assert by_row(read_log(root, "iris"), "variant", "policy_revision") == [
        ("r1", 0, "canary", 4), ("r2", 0, "stable", 4)]
    assert by_row(read_log(root, "iris", kind="shadow"), "variant") == [("r1", 0, "shadow")]
    assert not spool_files(prefix)


def test_a_time_range_opens_only_the_segments_of_its_hours(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append(batch(["now"], [1], ts=T0))
    log.append(batch(["before"], [1], ts=T0 - 5 * 3600))
    log.close()
    old = next(p for p in (tmp_path / "predictions").rglob("*.parquet")
               if pq.read_table(p)["request_id"][0].as_py() == "before")
    old.write_bytes(b"not parquet")  # only a read that opens it fails
    table = read_log(tmp_path, "iris", since=at(T0 - 60), inputs=False)
    assert table["request_id"].to_pylist() == ["now"]
    assert not [n for n in table.column_names if n.startswith("input.")]
    assert "output.label" in table.column_names
    with pytest.raises(pa.ArrowInvalid):
        read_log(tmp_path, "iris")
