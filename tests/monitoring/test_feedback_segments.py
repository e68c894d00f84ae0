"""One bad label never loses other labels or stops the monitor: feedback segments are written
whole or set aside, and read whatever types older versions stored."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import shipyard.stores.predictions as predictions
from monitoring.test_monitor_service import (
    CLASSES,
    ENDPOINT,
    HOUR,
    make_rows,
    predict,
    save_reference,
)
from shipyard.cli.main import app
from shipyard.stores.predictions import (
    FeedbackRecord,
    PredictionLog,
    PredictionRecord,
    read_log,
)

runner = CliRunner()


def test_a_mixed_label_never_loses_the_other_labels_of_its_segment(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    now = time.time()
    log.append(FeedbackRecord("a", now, ENDPOINT, [0, 1]))
    log.append(FeedbackRecord("b", now, ENDPOINT, [1, True]))  # what 0.x let through
    log.append(FeedbackRecord("c", now, ENDPOINT, [1]))
    log.close()
    assert log.stats.dropped_rows == 0 and log.stats.written_rows == 5
    rows = read_log(tmp_path, ENDPOINT, kind="feedback").to_pylist()
    assert {r["request_id"] for r in rows} == {"a", "b", "c"}


def test_a_record_that_cannot_be_written_is_quarantined_not_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = predictions.feedback_table

    def failing(records: list[FeedbackRecord]) -> pa.Table:
        if any(r.request_id == "bad" for r in records):
            raise pa.ArrowInvalid("cannot write this record")
        return real(records)

    monkeypatch.setattr(predictions, "feedback_table", failing)
    log = PredictionLog(tmp_path)
    now = time.time()
    for request_id in ("a", "bad", "c"):
        log.append(FeedbackRecord(request_id, now, ENDPOINT, [1, 0]))
    log.close()
    assert sorted((r["request_id"], r["row"]) for r in read_log(
        tmp_path, ENDPOINT, kind="feedback").to_pylist()) == [("a", 0), ("a", 1), ("c", 0),
                                                              ("c", 1)]
    assert log.stats.write_errors == 1 and log.stats.quarantined_rows == 2
    assert log.stats.dropped_rows == 0
    aside = list((tmp_path / "quarantine" / "feedback" / f"endpoint={ENDPOINT}").glob("*.jsonl"))
    assert len(aside) == 1
    kept = json.loads(aside[0].read_text())
    assert kept["request_id"] == "bad" and kept["labels"] == [1, 0]


def _old_segment(root: Path, hour: float, name: str, ids: list[str], labels: list[Any],
                 kind: pa.DataType) -> None:
    """A feedback segment as shipyard wrote it before replacements were marked: no
    ``replace`` column, labels typed as they came."""
    stamp = time.gmtime(hour)
    folder = (root / "feedback" / f"endpoint={ENDPOINT}" /
              f"date={time.strftime('%Y-%m-%d', stamp)}" / f"hour={stamp.tm_hour:02d}")
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "request_id": pa.array(ids, pa.string()),
        "row": pa.array([0] * len(ids), pa.int32()),
        "ts": pa.array([int((hour + 60) * 1e6)] * len(ids), pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
        "endpoint": pa.array([ENDPOINT] * len(ids)),
        "label": pa.array(labels, kind)}), folder / f"{name}.parquet")


@pytest.fixture
def mixed_log(tmp_path: Path) -> tuple[Path, list[int]]:
    """An hour of predictions with old feedback segments: ints, booleans and strings."""
    root = tmp_path / "logs"
    hour = time.time() // HOUR * HOUR - HOUR
    log = PredictionLog(root)
    rng = np.random.default_rng(0)
    predicted = []
    for n in range(60):
        rows = make_rows(1, rng)
        labels, proba = predict(rows)
        predicted.append(int(labels[0]))
        log.append(PredictionRecord(f"r{n}", hour + n, ENDPOINT, "demo", 1, 1.0, None, rows,
                                    {"label": labels, "probabilities": proba}, CLASSES))
    log.close()
    ids = [f"r{n}" for n in range(60)]
    _old_segment(root, hour, "1-ints", ids[:20], predicted[:20], pa.int64())
    _old_segment(root, hour, "2-bools", ids[20:40], [bool(v) for v in predicted[20:40]],
                 pa.bool_())
    _old_segment(root, hour, "3-strings", ids[40:], [str(v) for v in predicted[40:59]] +
                 ["cat"], pa.string())  # one label that fits no class
    return root, predicted


def test_logs_feedback_reads_old_segments_of_mixed_types(mixed_log: tuple[Path, list[int]]
                                                          ) -> None:
    root, _ = mixed_log
    result = runner.invoke(app, ["logs", ENDPOINT, "--feedback", "--log-dir", str(root),
                                 "--json", "--limit", "100"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 60 and {r["request_id"] for r in rows} == {f"r{n}" for n in range(60)}


def test_monitor_run_joins_old_segments_of_mixed_types(mixed_log: tuple[Path, list[int]],
                                                       tmp_path: Path) -> None:
    root, _ = mixed_log
    reference = save_reference(tmp_path / "reference.profile")
    result = runner.invoke(app, ["monitor", "run", ENDPOINT, "--log-dir", str(root),
                                 "--reference", str(reference), "--window", "1h", "--json"])
    assert result.exit_code == 0, result.output
    windows = [w for w in json.loads(result.output)["windows"] if w["rows"]]
    # every label joined, cast to the predictions' type: each equals its prediction; the
    # one that fits no type is null, and the run says so
    assert windows[-1]["metrics"]["labelled"] == 59
    assert windows[-1]["metrics"]["accuracy"] == 1.0
    assert "1 feedback label(s) do not fit" in " ".join(json.loads(result.output)["notes"])
