"""The prediction log names the API key (its name, never the secret) that sent each request:
through the server's writer, through the inference process's (log entries, their merging and
subsetting, the spool replay), null without keys, and segments written before the column
still read (as null)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from serving.helpers import kill_child_log
from shipyard.runtimes.child_log import ChildLog, ChildLogger, log_entry
from shipyard.runtimes.process import _merge, _subset
from shipyard.runtimes.spool_replay import replay
from shipyard.service.batch_calls import Ticket
from shipyard.service.request_log import LogTarget, RequestLog, log_in_process
from shipyard.stores.predictions import PredictionBatch, PredictionLog, PredictionRecord, read_log

T0 = 1.7e9


def batch(ids: list[str], counts: list[int], start: float = T0,
          **extra: Any) -> PredictionBatch:
    rows = sum(counts)
    return PredictionBatch(
        request_ids=ids, row_counts=counts, latency_ms=[1.0] * len(ids),
        routing_keys=[None] * len(ids), ts=[start + i for i in range(len(ids))],
        endpoint="iris", model="iris", version=1,
        inputs={"x": np.arange(rows, dtype=np.float64)},
        outputs={"label": np.zeros(rows, dtype=np.int64)}, **extra)


def keys_by_row(table: pa.Table) -> list[tuple[str, int, str | None]]:
    return list(zip(table["request_id"].to_pylist(), table["row"].to_pylist(),
                    table["api_key"].to_pylist(), strict=True))


def test_key_names_round_trip_through_the_servers_writer(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append(batch(["r1", "r2", "r3"], [2, 1, 1], key_names=["shop", None, "scraper"]))
    log.append(batch(["r4"], [2], start=T0 + 5))  # a server without keys
    log.append(PredictionRecord("r5", T0 + 9, "iris", "iris", 1, 1.0, None,
                                {"x": np.ones(1)}, {"label": np.zeros(1, np.int64)},
                                key_name="shop"))
    log.close()
    table = read_log(tmp_path, "iris")
    assert table.schema.field("api_key").type == pa.string()
    assert keys_by_row(table) == [("r1", 0, "shop"), ("r1", 1, "shop"), ("r2", 0, None),
                                  ("r3", 0, "scraper"), ("r4", 0, None), ("r4", 1, None),
                                  ("r5", 0, "shop")]


def test_tickets_carry_the_key_name_to_the_log(tmp_path: Path) -> None:
    from shipyard.service.batch_calls import run_batch

    class Model:
        class runtime:  # noqa: N801 - what run_batch calls
            @staticmethod
            def predict(inputs: dict[str, Any]) -> dict[str, Any]:
                return {"label": np.zeros(len(inputs["x"]), np.int64)}

    class Gate:
        def answered(self, endpoint: str, ids: list[str], counts: list[int]) -> None:
            pass

    log = PredictionLog(tmp_path)
    tickets = [Ticket({"x": np.ones(2)}, "a", None, key_name="shop"),
               Ticket({"x": np.ones(1)}, "b", None)]
    shares = run_batch(Model(), tickets)  # type: ignore[arg-type]
    RequestLog(log, Gate()).batch(  # type: ignore[arg-type]
        LogTarget("iris", "iris", 1, 1.0, None, None), tickets, shares)
    log.close()
    assert keys_by_row(read_log(tmp_path, "iris")) == [("a", 0, "shop"), ("a", 1, "shop"),
                                                       ("b", 0, None)]


def test_segments_older_than_the_key_column_read_as_no_key(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append(batch(["new"], [1], key_names=["shop"]))
    log.close()
    folder = next((tmp_path / "predictions").rglob("*.parquet")).parent
    old = read_log(tmp_path, "iris").drop_columns(["api_key"])
    old = old.set_column(0, "request_id", pa.array(["old"]))
    pq.write_table(old, folder / "0-old.parquet")  # as an older server wrote it
    assert sorted(keys_by_row(read_log(tmp_path, "iris"))) == [("new", 0, "shop"),
                                                               ("old", 0, None)]
    next(p for p in folder.iterdir() if p.name != "0-old.parquet").unlink()
    assert keys_by_row(read_log(tmp_path, "iris")) == [("old", 0, None)]


def _child_batch(frame: int) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"x": np.arange(3, dtype="float64") + 10 * frame}, {"label": np.array([frame] * 3)}


def _entry(frame: int, seq: int, ids: list[str], **extra: Any) -> dict[str, Any]:
    entry = log_entry([(frame, i, i + 1) for i in range(len(ids))], ids, [1.0] * len(ids),
                      [None] * len(ids), [T0] * len(ids), upto=frame, **extra)
    entry["seq"] = seq
    return entry


def test_log_entries_carry_key_names_through_merge_and_subset() -> None:
    keyed = _entry(1, 1, ["a", "b", "c"], key_names=["shop", None, "prober"])
    assert _subset(keyed, [0, 2])["key_names"] == ["shop", "prober"]
    unkeyed = _entry(2, 2, ["d"])
    assert not _merge(dict(keyed), unkeyed)  # one carries key names, the other not
    more = _entry(2, 2, ["d"], key_names=["shop"])
    merged = dict(keyed)
    assert _merge(merged, more) and merged["key_names"] == ["shop", None, "prober", "shop"]


def test_log_in_process_names_the_tickets_keys() -> None:
    sent: list[dict[str, Any]] = []

    class Process:
        def log(self, entry: dict[str, Any]) -> None:
            sent.append(entry)

    tickets = [Ticket({"x": np.ones(1)}, "a", None, key_name="shop"),
               Ticket({"x": np.ones(1)}, "b", None)]
    log_in_process(Process(), tickets, [(1, 0, 1), (1, 1, 2)])  # type: ignore[arg-type]
    without = [Ticket({"x": np.ones(1)}, "c", None)]
    log_in_process(Process(), without, [(2, 0, 1)])  # type: ignore[arg-type]
    assert sent[0]["key_names"] == ["shop", None] and "key_names" not in sent[1]


def test_the_child_log_and_its_spool_replay_write_key_names(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    logger = ChildLogger(ChildLog(str(root), 3600.0, "iris", "iris", 1), None)
    try:
        logger.record([], 1, *_child_batch(1))
        logger.record([_entry(1, 1, ["a", "b", "c"], key_names=["shop", None, "shop"])])
    finally:
        logger.close()
    assert keys_by_row(read_log(root, "iris")) == [("a", 0, "shop"), ("b", 0, None),
                                                   ("c", 0, "shop")]

    other = tmp_path / "replayed"
    prefix = other / "spool" / "endpoint=iris" / "123-1"
    logger = ChildLogger(ChildLog(str(other), 3600.0, "iris", "iris", 1), None, prefix)
    entry = _entry(1, 1, ["r1", "r2"], key_names=["scraper", "scraper"])
    try:
        logger.record([], 1, *_child_batch(1))
        logger.record([entry])
    finally:  # the child dies before writing it
        kill_child_log(logger)
    assert not replay(prefix, [entry]).lost
    assert keys_by_row(read_log(other, "iris")) == [("r1", 0, "scraper"),
                                                    ("r2", 0, "scraper")]
