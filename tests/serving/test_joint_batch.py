"""The pieces of a joint inference process (``runtimes/joint_batch.py``, the child's log per
version): a batch split by version and merged back in request order, OIP ids mapped back to
their requests, and the settled entry of several loggers never ahead of one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.runtimes.child_log import ChildLog, ChildLogger, joint_report, log_entry
from shipyard.runtimes.frames import RawAnswer
from shipyard.runtimes.joint_batch import answer_joint, split

SPECS = [{"model": "m", "version": 1}, {"model": "m", "version": 2}]


def test_a_batch_splits_by_version_with_its_infer_requests_renumbered() -> None:
    spec = {"specs": SPECS, "slots": [1, 0, 1, 1], "request_ids": ["a", "b", "c", "d"],
            "infer": [[2, None], [3, 17]], "bodies": False}
    (zero, own0), (one, own1) = split(spec, 2)
    assert zero == [1] and own0 == {**SPECS[0], "request_ids": ["b"], "bodies": False}
    assert one == [0, 2, 3]
    assert own1 == {**SPECS[1], "request_ids": ["a", "c", "d"], "bodies": False,
                    "infer": [[1, None], [2, 17]]}
    with pytest.raises(ValueError, match="versions this process does not hold"):
        split({**spec, "slots": [2, 0, 1, 1]}, 2)


def test_answers_merge_back_in_request_order_with_rows_per_version() -> None:
    seen: list[tuple[Any, dict[str, Any], list[bytes]]] = []

    def handler(model: Any, spec: dict[str, Any], bodies: list[Any]) -> RawAnswer:
        seen.append((model, spec, [bytes(b) for b in bodies]))
        n = len(bodies)
        x = np.arange(n, dtype=np.float32) + (100 if model == "v2" else 0)
        ids = {str(j): "own-id" for j, _ in spec.get("infer", ())}
        return RawAnswer([200] * n, [b"%s:%s" % (model.encode(), b) for b in bodies],
                         [(i, i + 1) for i in range(n)], {"x": x}, {"y": x * 2}, [n], ids)

    spec = {"specs": SPECS, "slots": [1, 0, 1], "request_ids": ["a", "b", "c"],
            "infer": [[2, None]]}
    joint = answer_joint(["v1", "v2"], handler, spec,  # type: ignore[list-item]
                         [memoryview(b"p"), memoryview(b"q"), memoryview(b"r")])
    assert [s[0] for s in seen] == ["v1", "v2"]
    assert joint.bodies == [b"v2:p", b"v1:q", b"v2:r"]
    assert joint.reply["statuses"] == [200, 200, 200]
    assert joint.reply["ranges"] == [(0, 1), (0, 1), (1, 2)]  # rows of its version's share
    assert joint.reply["calls"] == [[0, 1], [1, 2]]
    assert seen[1][1]["infer"] == [[1, None]]  # the batch's request 2 is v2's request 1
    assert joint.reply["ids"] == {"2": "own-id"}
    assert joint.kept[0][0]["x"].tolist() == [0.0]
    assert joint.kept[1][1]["y"].tolist() == [200.0, 202.0]


def _entry(seq: int, slot: int) -> dict[str, Any]:
    entry = log_entry([(seq, 0, 1)], [f"r{seq}"], [1.0], [None], [0.0], upto=seq, slot=slot)
    entry["seq"] = seq
    return entry


def test_the_settled_entry_waits_for_the_slowest_version(tmp_path: Path) -> None:
    loggers = [ChildLogger(ChildLog(str(tmp_path), 3600.0, "e", "m", v), None)
               for v in (1, 2)]
    x = {"x": np.zeros(1, dtype=np.float32)}
    try:
        for seq, slot in ((1, 0), (2, 1), (3, 0)):
            loggers[slot].record([], seq, x, x)
            loggers[slot].record([_entry(seq, slot)])
        assert joint_report(loggers)["settled"] == 0
        loggers[0].flush()  # entries 1 and 3 written; 2 is not
        report = joint_report(loggers)
        assert report["settled"] == 1 and report["log_stats"]["written_rows"] == 2
        loggers[1].flush()
        report = joint_report(loggers)
        assert report["settled"] == 3 and report["log_stats"]["written_rows"] == 3
    finally:
        for logger in loggers:
            logger.close()
