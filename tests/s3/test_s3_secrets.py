"""S3 credentials come from the environment and never show: not in the log records of a
failing S3 operation, not in the exceptions it raises, not in an inference process's
environment (``test_s3_serving.py``)."""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import pytest

import shipyard
from s3_server import S3Server
from shipyard.registry import Registry
from shipyard.settings import Settings
from shipyard.stores.log_shipping import LogShipper
from shipyard.stores.predictions import FeedbackRecord, PredictionLog, read_log


def _missing_bucket() -> str:
    return f"no-such-bucket-{uuid.uuid4().hex[:12]}"


def _text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def test_failing_s3_writes_and_reads_never_show_the_secret(
        s3_env: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"s3://{_missing_bucket()}/logs"

    log = PredictionLog(url)
    log.append(FeedbackRecord("r1", time.time(), "ep", [1, 0]))
    log.close()
    assert log.stats.write_errors == 1 and log.stats.written_rows == 0
    assert log.stats.dropped_rows == 2  # nor could it be quarantined there: counted

    with pytest.raises(Exception) as reading:
        read_log(url, "ep", kind="feedback")

    outbox = tmp_path / "outbox"
    segment = outbox / "predictions" / "endpoint=ep" / "date=2026-01-01" / "hour=00" / "a.parquet"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"PAR1")
    shipper = LogShipper(outbox, url)
    assert shipper.ship() == 0 and shipper.failures == 1
    assert segment.exists()  # kept for the next round

    x, model = _iris_model()
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}",
                        artifacts=f"s3://{_missing_bucket()}/artifacts", actor="tester",
                        settings=Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")}))
    try:
        with pytest.raises(Exception) as registering:
            registry.register(shipyard.package(model, x, name="iris"))
    finally:
        registry.close()

    assert caplog.records, "the failed writes were logged"
    for text in (caplog.text, _text(reading.value), _text(registering.value)):
        assert s3_env.secret_key not in text
        assert "AWS_SECRET_ACCESS_KEY" not in text


def _iris_model() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, target = load_iris(return_X_y=True, as_frame=True)
    return x, LogisticRegression(max_iter=300).fit(x, target)
