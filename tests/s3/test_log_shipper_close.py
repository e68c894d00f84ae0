"""At shutdown the log shipper starts no upload after its time budget: a store that does not
answer cannot hold a server's exit for minutes; what is not uploaded stays in the outbox and
is said in the log, and the next start uploads it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from shipyard.stores import log_shipping
from shipyard.stores.log_shipping import LogShipper


def _segments(outbox: Path, n: int) -> list[Path]:
    folder = outbox / "predictions" / "endpoint=ep" / "date=2026-12-06" / "hour=10"
    folder.mkdir(parents=True)
    paths = [folder / f"seg-{i:02d}.parquet" for i in range(n)]
    for path in paths:
        path.write_bytes(b"PAR1")
    return paths


def test_close_stops_uploading_at_its_budget_and_keeps_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    paths = _segments(tmp_path / "outbox", 10)
    tried: list[str] = []

    def hung(source: Path, uri: str) -> None:  # a store that times out every upload
        tried.append(uri)
        time.sleep(0.2)
        raise OSError("Timeout was reached")

    monkeypatch.setattr(log_shipping, "upload_file", hung)
    shipper = LogShipper(tmp_path / "outbox", "s3://bucket/logs")
    with caplog.at_level(logging.ERROR, logger="shipyard.stores.log_shipping"):
        shipper.close(budget_s=0.5)
    assert 1 <= len(tried) <= 4  # uploads started within the budget only
    assert all(p.exists() for p in paths)  # nothing deleted that was not uploaded
    assert "not uploaded to s3://bucket/logs in time" in caplog.text

    uploaded: list[str] = []
    monkeypatch.setattr(log_shipping, "upload_file", lambda s, u: uploaded.append(u))
    assert LogShipper(tmp_path / "outbox", "s3://bucket/logs").ship() == 10
    assert not any(p.exists() for p in paths) and len(uploaded) == 10
