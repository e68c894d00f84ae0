"""The shipyard command line: version, package, inspect, quickstart."""

import json
import re
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import shipyard
from shipyard._version import __version__
from shipyard.cli.main import app
from shipyard.settings import Settings

runner = CliRunner()


def _shipyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shipyard.cli.main", *args],
                          capture_output=True, text=True)


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("version", "package", "inspect", "quickstart"):
        assert command in result.output


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def _iris_files(tmp_path: Path) -> tuple[Path, Path, LogisticRegression, pd.DataFrame]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    model_file = tmp_path / "model.joblib"
    joblib.dump(model, model_file)
    sample = tmp_path / "train.csv"
    x.assign(species=y).to_csv(sample, index=False)
    return model_file, sample, model, x


def test_package_and_inspect_a_joblib_file(tmp_path: Path) -> None:
    model_file, sample, model, x = _iris_files(tmp_path)
    out = tmp_path / "pkg"
    result = runner.invoke(app, ["package", str(model_file), "--sample", str(sample),
                                 "--target", "species", "--name", "iris", "-o", str(out),
                                 "--trust"])
    assert result.exit_code == 0, result.output
    loaded = shipyard.load(out)
    assert loaded.runtime.name == "onnx"
    assert loaded.signature.input_names == list(x.columns)  # target column dropped
    assert (loaded.predict(x).predictions == model.predict(x)).all()

    shown = runner.invoke(app, ["inspect", str(out)])
    assert shown.exit_code == 0
    assert "model.onnx" in shown.output and "match their SHA-256" in shown.output
    as_json = runner.invoke(app, ["inspect", str(out), "--json"])
    assert json.loads(as_json.output)["name"] == "iris"


def test_package_refuses_pickle_without_trust(tmp_path: Path) -> None:
    model_file, sample, _, _ = _iris_files(tmp_path)
    result = _shipyard("package", str(model_file), "--sample", str(sample), "--target",
                       "species", "--name", "iris", "-o", str(tmp_path / "pkg"))
    assert result.returncode == 1
    assert "--trust" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pkg").exists()


def test_package_an_onnx_file(tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(to_onnx(model, x[:1].astype(np.float32)).SerializeToString())
    sample = tmp_path / "x.npy"
    np.save(sample, x.astype(np.float32))
    out = tmp_path / "pkg"
    result = runner.invoke(app, ["package", str(onnx_file), "--sample", str(sample),
                                 "--name", "raw", "-o", str(out)])
    assert result.exit_code == 0, result.output
    loaded = shipyard.load(out)
    np.testing.assert_array_equal(loaded.predict(x).predictions, model.predict(x))


def test_inspect_reports_tampering_cleanly(tmp_path: Path) -> None:
    model_file, sample, _, _ = _iris_files(tmp_path)
    out = tmp_path / "pkg"
    runner.invoke(app, ["package", str(model_file), "--sample", str(sample), "--target",
                        "species", "--name", "iris", "-o", str(out), "--trust"])
    with (out / "model.onnx").open("ab") as fh:
        fh.write(b"x")
    result = _shipyard("inspect", str(out))
    assert result.returncode == 1
    assert "model.onnx" in result.stderr and "modified" in result.stderr


def test_unknown_sample_format_is_a_clear_error(tmp_path: Path) -> None:
    model_file, _, _, _ = _iris_files(tmp_path)
    bad = tmp_path / "x.txt"
    bad.write_text("1,2,3")
    result = _shipyard("package", str(model_file), "--sample", str(bad), "--name", "m",
                       "-o", str(tmp_path / "p"), "--trust")
    assert result.returncode == 1
    assert ".csv" in result.stderr


def test_quickstart_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["quickstart", "--dir", str(tmp_path / "qs")])
    assert result.exit_code == 0, result.output
    assert "agree with scikit-learn on 100.0%" in result.output
    assert shipyard.load(tmp_path / "qs").name == "breast-cancer"
    # the monitoring reference is the validation split, not the rows the model trained on
    assert "298 training, 128 validation and 143 held-out test rows" in " ".join(
        result.output.split())
    assert shipyard.load(tmp_path / "qs").manifest.metadata["reference"] == {
        "source": "holdout", "rows": 128, "target": True}
    assert "monitoring reference: 128 held-out rows, with target" in result.output
    assert "registered models:/breast-cancer/1" in result.output
    assert "sent 40 rows in 10 requests" in result.output
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/ui/", result.output)
    # the log held the 40 rows and the drifted copy of the 143 held-out rows when it was read
    assert "holds 183 rows (shipyard logs breast-cancer)" in " ".join(result.output.split())
    from shipyard.stores.predictions import read_log

    logged = read_log(tmp_path / "home" / "logs", "breast-cancer")
    feedback = read_log(tmp_path / "home" / "logs", "breast-cancer", kind="feedback")
    assert set(logged.slice(0, 40).column("request_id").to_pylist()) <= set(
        feedback.column("request_id").to_pylist())
    # the monitor finds exactly the three features the quickstart shifted
    assert "3 of 30 input columns drifted" in result.output
    for feature in ("mean radius", "mean texture", "worst area"):
        assert f"   {feature}: ks" in result.output
    # and writes a standalone report of that traffic, with the drifted features' charts
    report = tmp_path / "home" / "reports" / "breast-cancer.html"
    assert "report of the last hour (183 rows" in " ".join(result.output.split())
    html = report.read_text(encoding="utf-8")
    assert "mean radius" in html and html.count('role="img"') >= 30
    assert not re.search(r'(?:src|href)\s*=\s*["\']?(?:https?:|//)', html)
    _assert_rollouts(result.output, tmp_path / "home" / "logs")
    _assert_batch_scored(result.output, tmp_path / "qs-batch")


def _assert_batch_scored(output: str, folder: Path) -> None:
    """The quickstart ends by batch-scoring the held-out rows (and two it refuses) with the
    production version (v2 by then), and prints the command for Ray."""
    import pyarrow.parquet as pq

    text = " ".join(output.split())
    assert "15. batch-scored" in text and "143 rows scored, 2 rejected" in text
    assert "--engine ray" in text
    scores = pq.read_table(folder / "scores.parquet").to_pandas()
    rejects = pq.read_table(folder / "scores.rejects.parquet").to_pandas()
    assert scores["id"].tolist() == list(range(143))  # the bad rows 143 and 144 are apart
    assert sorted(rejects["row"].tolist()) == [143, 144]  # row numbers in the input file
    assert all("mean radius" in reason for reason in rejects["reason"])
    production = shipyard.load(shipyard.Registry(settings=Settings.from_env()).fetch(
        "models:/breast-cancer@production"))
    source = pq.read_table(folder / "to-score.parquet").to_pandas().drop(columns="id")
    expected = production.predict(source.head(143)).predictions
    assert scores["prediction"].tolist() == list(expected)


def _assert_rollouts(output: str, logs: Path) -> None:
    """v2 went through every canary step and was promoted; v3 was rolled back on its own,
    with the failed checks as the reason; the registry says so."""
    from shipyard.routing import Single
    from shipyard.stores.predictions import read_log

    text = " ".join(output.split())
    assert "breast-cancer/2: logistic regression (C=0.1)" in text
    assert "20% advance to 50%: every check passed" in text
    assert "50% advance to 100%: every check passed" in text
    assert "100% promote all traffic to breast-cancer/2, @production moved to v2" in text
    assert "promoted: breast-cancer/2 takes all traffic (was breast-cancer/1), " \
           "@production -> v2" in text
    # v3 calls every row benign: its labelled accuracy drops and its predictions drift;
    # quality can fail it on 30 labels a side, drift once min_requests predictions are in
    failed = r"failed (prediction_drift|quality)"
    assert re.search(rf"20% fail {failed}", text), text
    assert re.search(r"rolled back automatically: all traffic back on breast-cancer/2; why: "
                     rf"step 1/3 \(20%\): {failed}", text), text
    # each analysis printed its numbers: requests, and the accuracy of both versions
    assert "stable / candidate: requests" in text and "accuracy 0.9" in text
    assert " 0 failed" in text  # not one request failed through both canaries
    registry = shipyard.Registry(settings=Settings.from_env())
    assert registry.get_version("breast-cancer@production").version == 2
    current = registry.deployments.current("breast-cancer")
    assert current is not None and current[1] == Single("breast-cancer/2")
    bad, good = registry.rollouts.history("breast-cancer")[:2]
    assert (good.candidate, good.state, bad.candidate, bad.state) == (
        "breast-cancer/2", "promoted", "breast-cancer/3", "aborted")
    assert [d.outcome for d in good.decisions if d.outcome != "wait"] == [
        "start", "advance", "advance", "pass", "promote"]
    assert [d.outcome for d in bad.decisions if d.outcome != "wait"] == [
        "start", "fail", "fail", "abort"]
    assert bad.reason is not None and re.search(failed, bad.reason), bad.reason
    # the three versions answered, each under a policy that named it
    logged = read_log(logs, "breast-cancer", inputs=False)
    assert set(logged.column("version").to_pylist()) == {1, 2, 3}


@pytest.mark.parametrize(("flags", "serve", "keep"), [
    ([], True, None), (["--serve"], True, True), (["--no-serve"], False, None),
    (["--serve", "--no-keep-serving"], True, False)])
def test_quickstart_serve_keeps_serving(flags: list[str], serve: bool, keep: bool | None,
                                        monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    """``--serve`` keeps the demo server (and its dashboard) up after the demo traffic."""
    import shipyard.cli.quickstart as quickstart

    seen: dict[str, object] = {}
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path))
    monkeypatch.setattr(quickstart, "run_quickstart",
                        lambda console, directory, settings, **kw: seen.update(kw))
    result = runner.invoke(app, ["quickstart", *flags])
    assert result.exit_code == 0, result.output
    assert seen == {"serve": serve, "keep_serving": keep}


def test_the_demo_server_says_where_its_dashboard_is() -> None:
    import threading

    from rich.console import Console

    from shipyard.cli.quickstart_serve import until_stopped

    console = Console(record=True, width=200)
    done = threading.Thread(target=lambda: None)
    done.start()
    done.join()
    until_stopped(console, "http://127.0.0.1:8123", done, keep_serving=True)
    text = console.export_text()
    assert "dashboard: http://127.0.0.1:8123/ui/" in text and "serving until Ctrl-C" in text
