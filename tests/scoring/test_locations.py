"""Inputs and outputs named by URL: ``file://`` through pyarrow's filesystems, and fsspec's
in-memory filesystem, which (like S3) cannot rename, so output is published by copying the
parts and writing the ``_SUCCESS`` marker last."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scoring.conftest import BAD_ROWS, customers_with_ids, expected, with_bad_rows
from shipyard.scoring import predict_batch
from shipyard.scoring.publish import MARKER


def test_file_urls(package_dir: Path, tmp_path: Path) -> None:
    data = with_bad_rows(customers_with_ids(2100))
    data.to_parquet(tmp_path / "in.parquet")
    summary = predict_batch(package_dir, f"file://{tmp_path}/in.parquet",
                            f"file://{tmp_path}/out.parquet", passthrough=["id"],
                            progress=False)
    assert summary.rejected == 4
    assert summary.rejects == f"file://{tmp_path}/out.rejects.parquet"
    assert (tmp_path / "out.rejects.parquet").is_file()
    good = data.drop(index=list(BAD_ROWS))
    assert pq.read_table(tmp_path / "out.parquet").to_pandas().equals(
        expected(package_dir, good, ["id"]))


def test_a_store_without_rename_gets_parts_then_the_marker(package_dir: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    data = customers_with_ids(2500)
    buffer = io.BytesIO()
    data.to_parquet(buffer)
    memory.pipe("/bucket/in/data.parquet", buffer.getvalue())
    predict_batch(package_dir, "memory://bucket/in/", "memory://bucket/scores/",
                  passthrough=["id"], batch_size=500, progress=False)
    names = sorted(p.rsplit("/", 1)[1] for p in memory.ls("/bucket/scores", detail=False))
    assert names == [MARKER, "part-00000.parquet"]
    assert not [p for p in memory.ls("/bucket", detail=False) if "staging" in p]
    with memory.open("/bucket/scores/part-00000.parquet", "rb") as handle:
        out = pq.read_table(handle).to_pandas()
    assert out.equals(expected(package_dir, data, ["id"]))
