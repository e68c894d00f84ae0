"""The prediction log on a real S3 server (moto's, on 127.0.0.1): segments written as whole
objects, read back, monitored by ``shipyard monitor run`` and looked up by request id."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from monitoring.test_monitor_service import (
    CLASSES,
    ENDPOINT,
    HOUR,
    make_rows,
    predict,
    save_reference,
)
from s3_server import S3Server
from shipyard.cli.main import app
from shipyard.stores.log_index import LoggedIds
from shipyard.stores.log_location import LogLocationError, log_root
from shipyard.stores.predictions import (
    FeedbackRecord,
    NothingLoggedError,
    PredictionLog,
    PredictionRecord,
    read_log,
)

runner = CliRunner()


def _write_hour(url: str, rows: int = 60) -> list[int]:
    """An hour of predictions of ``ENDPOINT``, each labelled with its own prediction."""
    hour = time.time() // HOUR * HOUR - HOUR
    log = PredictionLog(url)
    rng = np.random.default_rng(0)
    predicted = []
    for n in range(rows):
        batch = make_rows(1, rng)
        labels, proba = predict(batch)
        predicted.append(int(labels[0]))
        log.append(PredictionRecord(f"r{n}", hour + n, ENDPOINT, "demo", 1, 1.0, None, batch,
                                    {"label": labels, "probabilities": proba}, CLASSES))
        log.append(FeedbackRecord(f"r{n}", hour + n + 0.5, ENDPOINT, [int(labels[0])]))
        if n % 20 == 19:
            log.flush()  # several segments, as a running server writes them
    log.close()
    assert log.stats.written_rows == 2 * rows and log.stats.write_errors == 0
    return predicted


def test_the_log_is_written_to_s3_and_read_back(s3_env: S3Server) -> None:
    bucket = s3_env.bucket()
    url = f"s3://{bucket}/serving/logs"
    predicted = _write_hour(url)

    keys = s3_env.keys(bucket)
    predictions = [k for k in keys if k.startswith("serving/logs/predictions/endpoint=demo/")]
    feedback = [k for k in keys if k.startswith("serving/logs/feedback/endpoint=demo/")]
    assert len(predictions) == 3 and len(feedback) == 3  # one object per flush and kind
    assert len(keys) == 6  # no temporary object is left behind
    assert all("/date=" in k and "/hour=" in k and k.endswith(".parquet") for k in keys)

    table = read_log(url, ENDPOINT)
    assert table["request_id"].to_pylist() == [f"r{n}" for n in range(60)]
    assert table["output.label"].to_pylist() == predicted
    assert read_log(url, ENDPOINT, kind="feedback", limit=5).num_rows == 5

    ids = LoggedIds(url, "predictions", ENDPOINT, horizon_s=3 * HOUR)
    ids.refresh(force=True)
    assert ids.rows_of(["r0", "r59", "never"]) == [1, 1, None]

    shown = runner.invoke(app, ["logs", ENDPOINT, "--log-dir", url, "--json", "--limit", "3"])
    assert shown.exit_code == 0, shown.output
    assert [r["request_id"] for r in json.loads(shown.output)] == ["r57", "r58", "r59"]


def test_monitor_run_reads_a_log_on_s3(s3_env: S3Server, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    bucket = s3_env.bucket()
    url = f"s3://{bucket}/logs"
    _write_hour(url)
    reference = save_reference(tmp_path / "reference.profile")

    result = runner.invoke(app, ["monitor", "run", ENDPOINT, "--log-dir", url,
                                 "--reference", str(reference), "--window", "1h", "--json"])
    assert result.exit_code == 0, result.output
    windows = [w for w in json.loads(result.output)["windows"] if w["rows"]]
    assert windows[-1]["rows"] == 60
    assert windows[-1]["metrics"]["labelled"] == 60
    assert windows[-1]["metrics"]["accuracy"] == 1.0

    # its history (appended, locked) stays on local disk; the bucket holds only the log
    status = runner.invoke(app, ["monitor", "status", ENDPOINT, "--log-dir", url, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["windows_stored"] >= 1
    assert not [k for k in s3_env.keys(bucket) if k.startswith("logs/monitor/")]
    assert list((tmp_path / "home" / "remote-logs").glob("*/monitor/endpoint=demo/*.jsonl"))


def test_nothing_logged_on_s3_says_so(s3_env: S3Server) -> None:
    url = f"s3://{s3_env.bucket()}/logs"
    result = runner.invoke(app, ["logs", ENDPOINT, "--log-dir", url])
    assert isinstance(result.exception, NothingLoggedError)
    assert f"no predictions logged for endpoint {ENDPOINT!r} under {url}" in str(
        result.exception)


def test_a_log_in_a_bucket_that_does_not_exist_is_an_error_not_an_empty_log(
        s3_env: S3Server) -> None:
    url = "s3://no-such-bucket-here/logs"
    result = runner.invoke(app, ["logs", ENDPOINT, "--log-dir", url])
    assert isinstance(result.exception, LogLocationError)
    assert "bucket s3://no-such-bucket-here does not exist" in str(result.exception)


def test_a_log_url_with_credentials_in_it_is_refused() -> None:
    with pytest.raises(LogLocationError) as caught:
        log_root("s3://AKIAEXAMPLE:wJalrXUtnFEMI-secret@bucket/logs")
    assert "wJalrXUtnFEMI-secret" not in str(caught.value)
