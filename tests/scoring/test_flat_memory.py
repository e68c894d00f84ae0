"""Batch scoring streams: the Arrow memory in use while scoring stays that of a few batches,
whatever the input's size (it grew by every batch read when the Parquet reader cached the
row groups it had read until the file closed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import shipyard.scoring.batch as batch_module
from scoring.conftest import customers_with_ids
from shipyard.scoring import BatchSummary, predict_batch

ROWS_PER_GROUP = 2_000
GROUPS = 60


def test_arrow_memory_stays_flat_while_a_large_file_streams(
        package_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = customers_with_ids(ROWS_PER_GROUP)
    source = tmp_path / "big.parquet"
    table = pa.Table.from_pandas(data, preserve_index=False)
    with pq.ParquetWriter(source, table.schema) as writer:
        for group in range(GROUPS):  # the same rows again, with ids of their own
            ids = pa.array(np.arange(ROWS_PER_GROUP) + group * ROWS_PER_GROUP)
            writer.write_table(table.set_column(0, "id", ids))
    per_group = table.nbytes
    seen: list[int] = []
    note = batch_module.note

    def noted(summary: BatchSummary, scored: object, reasons: object) -> None:
        seen.append(pa.total_allocated_bytes())
        note(summary, scored, reasons)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_module, "note", noted)
    summary = predict_batch(package_dir, source, tmp_path / "out.parquet", passthrough=["id"],
                            batch_size=ROWS_PER_GROUP, workers=1, progress=False)
    assert summary.scored == ROWS_PER_GROUP * GROUPS and len(seen) == GROUPS
    # a few batches in flight at most, not the whole file's 60
    assert max(seen) < 10 * per_group, (max(seen), per_group)
    assert max(seen[GROUPS // 2:]) < 2 * max(seen[:10]) + per_group


@pytest.mark.parametrize("cores", [2, 16])
def test_a_local_file_reads_the_same_rows_whoever_decodes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int) -> None:
    """Two cores: decoded on the reader's thread through a small buffer; more: on Arrow's
    threads. Either way, the rows and their numbering are the file's."""
    from shipyard.stores.table_sources import open_source, read_chunks

    rng = np.random.default_rng(0)
    table = pa.table({"id": np.arange(50_000), **{f"f{i}": rng.standard_normal(50_000)
                                                  for i in range(8)}})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=12_000)
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    chunks = list(read_chunks(open_source(str(tmp_path / "in.parquet")), 5_000,
                              columns=["f3", "id"]))
    assert [c.first_row for c in chunks] == list(range(0, 50_000, 5_000))
    read = pa.Table.from_batches([c.batch for c in chunks])
    assert read.equals(table.select(["f3", "id"]))
