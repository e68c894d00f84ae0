"""``shipyard evaluate --data s3://...`` (issue 18): evaluation data read from the real S3
server (moto's, on 127.0.0.1) gives the same metrics and the same data fingerprint as the same
file on disk; a folder of CSV parts is read whole; a missing object is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from s3_server import S3Server
from shipyard.errors import MonitoringError
from shipyard.service.evaluation import evaluate


def test_evaluation_data_from_s3(s3_env: S3Server, tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True, as_frame=True)
    x.columns = ["sl", "sw", "pl", "pw"]
    model = LogisticRegression(max_iter=1000).fit(x[::2], y[::2])
    package = str(shipyard.package(model, x[::2], name="iris").save(tmp_path / "pkg"))
    rows = x[1::2].assign(species=y[1::2].to_numpy())
    rows.to_parquet(tmp_path / "holdout.parquet")
    bucket = s3_env.bucket()
    client = s3_env.client()
    client.upload_file(str(tmp_path / "holdout.parquet"), bucket, "eval/holdout.parquet")
    for part, chunk in enumerate((rows.iloc[:40], rows.iloc[40:])):
        client.put_object(Bucket=bucket, Key=f"parts/part-{part}.csv",
                          Body=chunk.to_csv(index=False).encode())

    local = evaluate(package, tmp_path / "holdout.parquet", "species", resamples=50)
    remote = evaluate(package, f"s3://{bucket}/eval/holdout.parquet", "species", resamples=50)
    assert remote.candidate.metrics == local.candidate.metrics
    assert remote.data["sha256"] == local.data["sha256"] and remote.data["rows"] == 75
    assert remote.data["location"] == f"s3://{bucket}/eval/holdout.parquet"
    folder = evaluate(package, f"s3://{bucket}/parts", "species", resamples=50)
    assert folder.data["files"] == 2 and folder.data["rows"] == 75
    assert folder.candidate.metrics["accuracy"] == local.candidate.metrics["accuracy"]
    with pytest.raises(MonitoringError, match=rf"s3://{bucket}/nothing.parquet.*does not "
                                              "exist"):
        evaluate(package, f"s3://{bucket}/nothing.parquet", "species")
