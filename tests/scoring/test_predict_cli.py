"""``shipyard predict`` end to end: the CLI, a registry URI, ``--log`` read back by
``shipyard monitor run``, and a run killed half-way that leaves nothing at its destination."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from scoring.conftest import BAD_ROWS, customers_with_ids, expected, with_bad_rows
from shipyard.cli.main import app
from shipyard.scoring import RejectLimitError

runner = CliRunner()


def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_cli_scores_and_prints_a_json_summary(package_dir: Path, tmp_path: Path) -> None:
    data = with_bad_rows(customers_with_ids(2100))
    data.to_parquet(tmp_path / "in.parquet")
    code, out = _cli("predict", str(package_dir), "--input", str(tmp_path / "in.parquet"),
                     "--output", str(tmp_path / "out.parquet"), "--passthrough", "id,city",
                     "--batch-size", "700", "--workers", "2", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (2100, 2096, 4)
    assert summary["rejects"] == str(tmp_path / "out.rejects.parquet")
    table = pq.read_table(tmp_path / "out.parquet").to_pandas()
    good = data.drop(index=list(BAD_ROWS))
    pd.testing.assert_frame_equal(table, expected(package_dir, good, ["id", "city"]))


def test_cli_max_rejects_fails_with_the_reason(package_dir: Path, tmp_path: Path) -> None:
    with_bad_rows(customers_with_ids(2100)).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(RejectLimitError, match="4 of 2100 rows failed validation"):
        _cli("predict", str(package_dir), "-i", str(tmp_path / "in.parquet"),
             "-o", str(tmp_path / "out"), "--max-rejects", "0.0001", "--quiet")
    assert not (tmp_path / "out").exists()
    assert pq.read_table(tmp_path / "out.rejects.parquet").num_rows == 4


def test_registry_uri_and_log_then_monitor(package_dir: Path, tmp_path: Path) -> None:
    """Rows scored from ``models:/customers@production`` with ``--log`` are monitored as
    served traffic is: ``monitor run`` finds the logged version's reference itself."""
    from shipyard.registry import Registry
    from shipyard.settings import Settings

    env = {"SHIPYARD_HOME": str(tmp_path / "home")}
    with Registry(settings=Settings.from_env(env)) as registry:
        registry.register(package_dir, alias="production")
    customers_with_ids(1500).to_parquet(tmp_path / "in.parquet")
    code, out = _cli("predict", "models:/customers@production", "-i",
                     str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"),
                     "--log", "nightly", "--batch-size", "500", "--json", env=env)
    assert code == 0, out
    summary = json.loads(out)
    assert summary["logged"] == 1500
    logged = pq.read_table(tmp_path / "home" / "logs" / "predictions",
                           partitioning=None).to_pandas()
    assert set(logged["model"]) == {"customers"} and set(logged["version"]) == {1}
    assert set(logged["routing_key"]) == {summary["batch_id"]}
    assert sorted(logged["request_id"].unique()) == sorted(
        f"{summary['batch_id']}-{start}" for start in (0, 500, 1000))
    assert {"input.age", "input.city", "output.label", "output.proba.2"} <= set(logged)

    code, out = _cli("monitor", "run", "nightly", "--last", "1500", "--json", env=env)
    assert code == 0, out
    (window,) = json.loads(out)["windows"]
    assert window["rows"] == 1500
    assert "age" in window["drift"]["columns"]


def _predict_process(package: Path, source: Path, dest: Path) -> subprocess.Popen[bytes]:
    code = "import sys; from shipyard.cli.main import run; sys.argv[0] = 'shipyard'; run()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "predict", str(package), "-i", str(source), "-o",
         str(dest), "--batch-size", "100", "--workers", "1", "--quiet"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_staging(parent: Path, process: subprocess.Popen[bytes]) -> None:
    """Until the run has staged output (its staging file exists), or it ends."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if any(p.name.startswith(".out.parquet.staging-") and p.stat().st_size
               for p in parent.iterdir()):
            return
        time.sleep(0.01)
    raise AssertionError("the run never staged output")


@pytest.mark.parametrize("earlier_output", [False, True])
def test_killed_run_leaves_nothing_then_rerun_completes(package_dir: Path, tmp_path: Path,
                                                        earlier_output: bool) -> None:
    source, dest = tmp_path / "in.parquet", tmp_path / "out.parquet"
    customers_with_ids(200_000).to_parquet(source)
    if earlier_output:  # a finished run's output must survive a killed re-run untouched
        customers_with_ids(10).to_parquet(source.with_name("small.parquet"))
        code, out = _cli("predict", str(package_dir), "-i", str(tmp_path / "small.parquet"),
                         "-o", str(dest), "--quiet")
        assert code == 0, out
        before = dest.read_bytes()
    process = _predict_process(package_dir, source, dest)
    try:
        _wait_for_staging(tmp_path, process)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    if earlier_output:
        assert dest.read_bytes() == before
    else:
        assert not dest.exists()
    assert any(p.name.startswith(".out.parquet.staging-") for p in tmp_path.iterdir())

    code, out = _cli("predict", str(package_dir), "-i", str(source), "-o", str(dest),
                     "--quiet", "--json")
    assert code == 0, out
    assert pq.read_metadata(dest).num_rows == 200_000
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the killed run's staging file was cleared


def test_a_worker_elsewhere_fetches_a_registry_model_itself(
        package_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray actor on another node has no copy of the driver's fetched package: it fetches
    the same version from the registry."""
    from dataclasses import replace

    from shipyard.registry import Registry
    from shipyard.scoring.models import resolve

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    with Registry() as registry:
        registry.register(package_dir, alias="production")
    source = resolve("models:/customers@production")
    assert (source.model, source.version, source.uri) == ("customers", 1, "models:/customers/1")
    elsewhere = replace(source, path=tmp_path / "not-on-this-node")
    model = elsewhere.load()
    assert model.manifest.name == "customers" and model.path.is_dir()
