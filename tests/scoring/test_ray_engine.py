"""``--engine ray``: Ray Data actors call the same scorer; the output equals the local
engine's row for row (one bounded test on a local Ray with 2 CPUs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from scoring.conftest import BAD_ROWS, customers_with_ids, with_bad_rows
from shipyard.scoring import predict_batch


def test_ray_output_equals_the_local_engine(ray_session: Any, package_dir: Path,
                                            tmp_path: Path) -> None:
    data = with_bad_rows(customers_with_ids(3000))
    folder = tmp_path / "in"
    folder.mkdir()
    # files of falling sizes: Ray Data's reader, given them as one list, may balance them
    # into another order
    data.iloc[:1400].to_parquet(folder / "a.parquet")
    data.iloc[1400:2400].to_parquet(folder / "b.parquet")
    data.iloc[2400:].to_parquet(folder / "c.parquet")
    local = predict_batch(package_dir, folder, tmp_path / "local", passthrough=["id"],
                          batch_size=400, workers=2, progress=False)
    on_ray = predict_batch(package_dir, folder, tmp_path / "ray", passthrough=["id"],
                           batch_size=400, workers=2, engine="ray", progress=False,
                           log_endpoint="ray-batch", log_dir=tmp_path / "logs")
    assert pq.read_table(tmp_path / "ray").equals(pq.read_table(tmp_path / "local"))
    assert (on_ray.rows, on_ray.scored, on_ray.rejected) == (local.rows, local.scored, 4)
    assert on_ray.rejects is not None and local.rejects is not None
    ray_rejects = pq.read_table(on_ray.rejects).to_pandas()
    local_rejects = pq.read_table(local.rejects).to_pandas()
    assert ray_rejects["id"].tolist() == local_rejects["id"].tolist() == \
        data["id"].iloc[sorted(BAD_ROWS)].tolist()
    assert ray_rejects["reason"].tolist() == local_rejects["reason"].tolist()
    assert ray_rejects["row"].tolist() == local_rejects["row"].tolist() == sorted(BAD_ROWS)
    one_file = predict_batch(package_dir, folder, tmp_path / "ray.parquet", passthrough=["id"],
                             batch_size=400, workers=2, engine="ray", progress=False)
    assert one_file.scored == local.scored
    assert pq.read_table(tmp_path / "ray.parquet").equals(pq.read_table(tmp_path / "local"))
    logged = pq.read_table(tmp_path / "logs" / "predictions", partitioning=None)
    assert logged.num_rows == local.scored  # the actors logged every scored row
    assert set(logged.column("routing_key").to_pylist()) == {on_ray.batch_id}
