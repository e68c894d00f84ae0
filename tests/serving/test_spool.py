"""The inference process's spool (issue 13, point 6): a dead child's files replay into the
prediction log exactly once, a torn last record (a kill in the middle of a write) is
discarded alone, and entries the child never received are replayed from the server's copy."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from serving.helpers import kill_child_log
from shipyard.runtimes.child_log import ChildLog, ChildLogger, log_entry
from shipyard.runtimes.spool import batch_record, read_spool, spool_files
from shipyard.runtimes.spool_replay import replay
from shipyard.stores.predictions import read_log


def _batch(frame: int) -> tuple[dict[str, Any], dict[str, Any]]:
    x = np.arange(6, dtype="float64").reshape(3, 2) + 10 * frame
    return {"x": x}, {"label": np.array([frame] * 3), "probabilities": np.full((3, 2), 0.5)}


def _entry(frame: int, seq: int, ids: list[str]) -> dict[str, Any]:
    entry = log_entry([(frame, i, i + 1) for i in range(len(ids))], ids,
                      [1.0] * len(ids), [None] * len(ids), [1.7e9] * len(ids), upto=frame)
    entry["seq"] = seq
    return entry


def _rows(root: Path) -> Counter[tuple[str, int]]:
    table = read_log(root, "iris")
    return Counter(zip(table.column("request_id").to_pylist(), table.column("row").to_pylist(),
                       strict=True))


def test_a_dead_childs_spool_replays_once_without_its_torn_last_record(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    prefix = root / "spool" / "endpoint=iris" / "123-1"
    logger = ChildLogger(ChildLog(str(root), 3600.0, "iris", "iris", 1), ["a", "b"], prefix)
    try:
        first = _entry(1, 1, ["r1", "r2", "r3"])
        logger.record([], 1, *_batch(1))  # batch 1 answered
        logger.record([first], 2, *_batch(2))  # its entry came with batch 2
        logger.flush()  # rotated: batch 1's entry written under the first file's name
        assert _rows(root) == {("r1", 0): 1, ("r2", 0): 1, ("r3", 0): 1}
        logger.record([], 3, *_batch(3))
        # the entry of batch 2 came with a frame the child read; batch 3's was still queued
        second, third = _entry(2, 2, ["s1", "s2"]), _entry(3, 3, ["t1"])
        logger.record([second])
    finally:  # the child dies: no final flush; its files' locks go with it
        kill_child_log(logger)
    current = spool_files(prefix)[-1]
    with current.open("ab") as spool:  # a kill in the middle of batch 4's write
        spool.write(batch_record(4, *_batch(4))[:40])
    assert read_spool(current).torn
    kept = tmp_path / "copy"
    shutil.copytree(root / "spool", kept)

    done = replay(prefix, [first, second, third])  # the server's unsettled entries
    assert not done.lost and done.stats.dropped_rows == 0
    rows = _rows(root)
    assert set(rows.values()) == {1}, rows  # no row twice: r1-r3 were written before
    assert {rid for rid, _ in rows} == {"r1", "r2", "r3", "s1", "s2", "t1"}
    table = read_log(root, "iris").to_pandas().set_index("request_id")
    assert table.loc["t1", "input.x"].tolist() == [30.0, 31.0]  # batch 3, its first row
    assert table.loc["s2", "output.proba.b"] == 0.5
    assert not spool_files(prefix)

    # a replay cut short (its files still there) and done again writes nothing twice
    shutil.rmtree(root / "spool")
    shutil.copytree(kept, root / "spool")
    replay(prefix, [first, second, third])
    assert _rows(root) == rows
