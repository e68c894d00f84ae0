"""``shipyard predict`` from ``s3://`` to ``s3://`` on a real S3 server (moto's, on 127.0.0.1):
output equal to ``load(...).predict``, exact rejects, nothing published by a failed run,
``--log`` to a log on S3 that ``monitor run`` reads, and failures that name the URL in one
line and never show the secret."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from s3_server import S3Server
from scoring.conftest import (
    BAD_ROWS,
    customers_with_ids,
    expected,
    package_dir,  # noqa: F401  (the batch tests' package)
    with_bad_rows,
)
from shipyard.cli.main import app
from shipyard.scoring import RejectLimitError, predict_batch
from shipyard.stores.predictions import read_log

runner = CliRunner()


def _put(server: S3Server, bucket: str, key: str, frame: pd.DataFrame) -> None:
    body = io.BytesIO()
    frame.to_parquet(body, index=False)
    server.client().put_object(Bucket=bucket, Key=key, Body=body.getvalue())


def _get(server: S3Server, bucket: str, key: str) -> pd.DataFrame:
    body = server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pandas()


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _expected_rejects(data: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"row": list(BAD_ROWS), "reason": [r for _, _, r in BAD_ROWS.values()],
                         "id": data.loc[list(BAD_ROWS), "id"].to_numpy()})


@pytest.mark.parametrize(("inputs", "output"), [("file", "scores.parquet"),
                                                ("folder", "scores/")])
def test_s3_in_s3_out_equals_load_predict_with_exact_rejects(
        s3_env: S3Server, package_dir: Path, inputs: str, output: str) -> None:  # noqa: F811
    bucket = s3_env.bucket()
    data = with_bad_rows(customers_with_ids(2100))
    if inputs == "file":
        _put(s3_env, bucket, "in/customers.parquet", data)
    else:  # three parts, rows numbered across them in path order
        for n, start in enumerate((0, 700, 1400)):
            _put(s3_env, bucket, f"in/part-{n}.parquet", data.iloc[start:start + 700])
    code, out = _cli("predict", str(package_dir), "-i", f"s3://{bucket}/in/"
                     + ("customers.parquet" if inputs == "file" else ""),
                     "-o", f"s3://{bucket}/{output}", "--passthrough", "id",
                     "--batch-size", "500", "--workers", "2", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (2100, 2096, 4)
    assert summary["rejects"] == f"s3://{bucket}/scores.rejects.parquet"

    outputs = [k for k in s3_env.keys(bucket) if not k.startswith("in/")]
    if output == "scores.parquet":
        assert outputs == ["scores.parquet", "scores.rejects.parquet"]  # no staging left
        scored = _get(s3_env, bucket, "scores.parquet")
    else:
        assert outputs == ["scores.rejects.parquet", "scores/_SUCCESS",
                           "scores/part-00000.parquet"]
        scored = _get(s3_env, bucket, "scores/part-00000.parquet")
    good = data.drop(index=list(BAD_ROWS))
    pd.testing.assert_frame_equal(scored, expected(package_dir, good, ["id"]))
    pd.testing.assert_frame_equal(_get(s3_env, bucket, "scores.rejects.parquet"),
                                  _expected_rejects(data))


@pytest.mark.parametrize("output", ["scores.parquet", "scores/"])
def test_a_failed_run_publishes_nothing_and_a_rerun_does(
        s3_env: S3Server, package_dir: Path, output: str) -> None:  # noqa: F811
    bucket = s3_env.bucket()
    data = with_bad_rows(customers_with_ids(2100))
    _put(s3_env, bucket, "in/bad.parquet", data)
    _put(s3_env, bucket, "good/in.parquet", data.drop(index=list(BAD_ROWS)))
    earlier = b"an earlier run's output"
    client = s3_env.client()
    target = "scores.parquet" if output == "scores.parquet" else "scores/part-00000.parquet"
    client.put_object(Bucket=bucket, Key=target, Body=earlier)
    before = s3_env.keys(bucket)

    with pytest.raises(RejectLimitError, match="of 2100 rows failed validation"):
        predict_batch(package_dir, f"s3://{bucket}/in/bad.parquet", f"s3://{bucket}/{output}",
                      passthrough=["id"], max_rejects=0.001, batch_size=300, progress=False)
    # only the rejects appear (so the reasons can be read); the earlier output is untouched
    assert s3_env.keys(bucket) == sorted([*before, "scores.rejects.parquet"])
    assert client.get_object(Bucket=bucket, Key=target)["Body"].read() == earlier

    summary = predict_batch(package_dir, f"s3://{bucket}/good/in.parquet",
                            f"s3://{bucket}/{output}", passthrough=["id"], max_rejects=0.001,
                            batch_size=300, progress=False)
    assert (summary.rows, summary.rejected) == (2096, 0)
    published = [k for k in s3_env.keys(bucket) if k.startswith("scores")]
    if output == "scores.parquet":
        assert published == ["scores.parquet", "scores.rejects.parquet"]
    else:
        assert published == ["scores.rejects.parquet", "scores/_SUCCESS",
                             "scores/part-00000.parquet"]
    scored = _get(s3_env, bucket, target)
    good = data.drop(index=list(BAD_ROWS)).reset_index(drop=True)
    pd.testing.assert_frame_equal(scored, expected(package_dir, good, ["id"]))


def test_log_to_s3_then_monitor_reads_it(s3_env: S3Server, package_dir: Path,  # noqa: F811
                                         tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # a log mistaken for a local path would land here
    bucket = s3_env.bucket()
    logs = f"s3://{bucket}/logs"
    _put(s3_env, bucket, "in/customers.parquet", customers_with_ids(1500))
    code, out = _cli("predict", str(package_dir), "-i", f"s3://{bucket}/in/customers.parquet",
                     "-o", f"s3://{bucket}/scores.parquet", "--log", "nightly",
                     "--log-dir", logs, "--batch-size", "500", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["logged"] == 1500
    assert list(tmp_path.iterdir()) == []
    assert [k for k in s3_env.keys(bucket, "logs/")
            if not k.startswith("logs/predictions/endpoint=nightly/")] == []

    logged = read_log(logs, "nightly").to_pandas()
    assert sorted(logged["request_id"].unique()) == sorted(
        f"{summary['batch_id']}-{start}" for start in (0, 500, 1000))
    assert set(logged["routing_key"]) == {summary["batch_id"]}
    assert len(logged) == 1500

    code, out = _cli("monitor", "run", "nightly", "--log-dir", logs, "--reference",
                     str(package_dir), "--last", "1500", "--json")
    assert code == 0, out
    (window,) = json.loads(out)["windows"]
    assert window["rows"] == 1500
    assert "age" in window["drift"]["columns"]


def _shipyard(server: S3Server, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``shipyard`` command in a process of its own, pointed at ``server``."""
    code = "import sys; from shipyard.cli.main import run; sys.argv[0] = 'shipyard'; run()"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_failing_s3_runs_say_so_in_one_line_without_the_secret(
        s3_server: S3Server, package_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    bucket = s3_server.bucket()
    _put(s3_server, bucket, "in/customers.parquet", customers_with_ids(50))
    source = f"s3://{bucket}/in/customers.parquet"
    missing = "s3://no-such-bucket-for-batch"
    cases = {  # arguments -> what the one line must name
        ("-i", f"{missing}/in/", "-o", f"s3://{bucket}/a.parquet"): f"{missing}/in/",
        ("-i", source, "-o", f"{missing}/scores.parquet"): f"{missing}/scores.parquet",
        ("-i", source, "-o", f"{missing}/scores/"): f"{missing}/scores/",
        ("-i", source, "-o", f"s3://{bucket}/b.parquet", "--rejects",
         f"{missing}/rejects.parquet"): f"{missing}/rejects.parquet",
        ("-i", source, "-o", f"s3://{bucket}/c.parquet", "--log", "nightly", "--log-dir",
         f"{missing}/logs"): missing,
    }
    for args, named in cases.items():
        done = _shipyard(s3_server, "predict", str(package_dir), *args, "--quiet")
        text = done.stdout + done.stderr
        assert done.returncode == 1, text
        assert s3_server.secret_key not in text and "AWS_SECRET_ACCESS_KEY" not in text
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), text
        assert named in lines[0] and "does not exist" in lines[0], text
    # a failed run published nothing, beside the input
    assert s3_server.keys(bucket) == ["in/customers.parquet"]


def test_a_killed_runs_staging_on_s3_is_removed_by_the_next_run(
        s3_env: S3Server, package_dir: Path) -> None:  # noqa: F811
    """A run killed before publishing leaves its staging objects (hidden by their leading
    dot); the next run to that destination removes those of dead processes on this machine,
    and leaves another machine's alone (its process cannot be checked from here)."""
    from shipyard.scoring.publish import HOST

    bucket = s3_env.bucket()
    _put(s3_env, bucket, "in/customers.parquet", customers_with_ids(300))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    client = s3_env.client()
    mine_file = f".scores.parquet.staging-{dead}-0a0a0a0a-{HOST}"
    mine_folder = f".scores.parquet.staging-{dead}-0b0b0b0b-{HOST}/part-00000.parquet"
    other_host = f".scores.parquet.staging-{dead}-0c0c0c0c-ffffffff"
    other_name = f".other.parquet.staging-{dead}-0d0d0d0d-{HOST}"
    for key in (mine_file, mine_folder, other_host, other_name):
        client.put_object(Bucket=bucket, Key=key, Body=b"half-written")
    code, out = _cli("predict", str(package_dir), "-i", f"s3://{bucket}/in/customers.parquet",
                     "-o", f"s3://{bucket}/scores.parquet")
    assert code == 0, out
    left = sorted(k for k in s3_env.keys(bucket) if not k.startswith("in/"))
    assert left == sorted([other_host, other_name, "scores.parquet"])
    assert len(_get(s3_env, bucket, "scores.parquet")) == 300
