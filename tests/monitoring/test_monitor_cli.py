"""``shipyard monitor run|status`` over a real prediction log: text, JSON and errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitoring.test_monitor_service import ENDPOINT, HOUR, Traffic, save_reference
from shipyard.cli.main import app
from shipyard.errors import ShipyardError

runner = CliRunner()


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three hours of traffic ending in the last complete hour: normal, then drifted."""
    root = tmp_path_factory.mktemp("cli")
    reference = save_reference(root / "reference.profile")
    traffic = Traffic(root / "logs")
    end = time.time() // HOUR * HOUR
    traffic.send(end - 3 * HOUR, HOUR, 30, feedback=True)
    traffic.send(end - 2 * HOUR, HOUR, 30, feedback=True, shift=1.0)
    traffic.send(end - HOUR, HOUR, 30, shift=1.0)
    return root / "logs", reference


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_run_prints_drift_quality_performance(logged: tuple[Path, Path]) -> None:
    log_dir, reference = logged
    code, out = _run("monitor", "run", ENDPOINT, "--log-dir", str(log_dir), "--reference",
                     str(reference), "--window", "1h")
    assert code == 0, out
    assert "windows" in out  # the table of windows, then the newest in detail
    assert "x0" in out and "drift" in out  # the drifted column, with its test
    assert "quality" in out and "latency" in out
    assert "estimated" in out  # label-free estimate for the newest (unlabelled) window


def test_run_json_and_status(logged: tuple[Path, Path]) -> None:
    log_dir, reference = logged
    code, out = _run("monitor", "run", ENDPOINT, "--log-dir", str(log_dir), "--reference",
                     str(reference), "--window", "1h", "--since", "4h", "--json")
    assert code == 0, out
    data = json.loads(out)
    complete = [w for w in data["windows"] if w["window"]["complete"] and w["rows"]]
    assert [w["rows"] for w in complete] == [600, 600, 600]
    assert [w["metrics"]["drifted(x0)"] for w in complete] == [0.0, 1.0, 1.0]
    assert complete[0]["performance"]["realised"]["rows"] == 600
    x0 = complete[1]["drift"]["columns"]["x0"]
    assert {"method", "statistic", "p_value", "effect_size", "drifted"} <= set(x0)

    code, out = _run("monitor", "status", ENDPOINT, "--log-dir", str(log_dir))
    assert code == 0, out
    assert "window" in out and "history" in out and "x0" in out
    code, out = _run("monitor", "status", ENDPOINT, "--log-dir", str(log_dir), "--json",
                     "--history", "2")
    status = json.loads(out)
    assert len(status["history"]) == 2 and status["windows_stored"] >= 3
    assert status["latest"]["key"] == status["history"][-1]["key"]


def test_run_last_n_rows(logged: tuple[Path, Path]) -> None:
    log_dir, reference = logged
    code, out = _run("monitor", "run", ENDPOINT, "--log-dir", str(log_dir), "--reference",
                     str(reference), "--last", "300", "--json")
    assert code == 0, out
    (window,) = json.loads(out)["windows"]
    assert window["rows"] == 300 and window["window"]["kind"] == "rows"


def test_run_with_serve_config_rules(logged: tuple[Path, Path], tmp_path: Path) -> None:
    log_dir, reference = logged
    config = tmp_path / "serve.yaml"
    config.write_text(f"log_dir: {log_dir}\n"
                      "endpoints:\n"
                      f"  - name: {ENDPOINT}\n"
                      f"    model: {tmp_path / 'missing-package'}\n"
                      "    monitor:\n"
                      f"      reference: {reference}\n"
                      "      every: 1h\n"
                      "      rules: ['drifted(x0) > 0.5']\n")
    code, out = _run("monitor", "run", ENDPOINT, "--config", str(config), "--since", "4h",
                     "--json")
    assert code == 0, out
    alerts = json.loads(out)["alerts"]
    assert [(a["state"], a["rule"]) for a in alerts] == [("firing", "drifted(x0) > 0.5")]
    code, out = _run("monitor", "status", ENDPOINT, "--config", str(config))
    assert "FIRING" in out and "drifted(x0) > 0.5" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--window", "soon"], "--window must be a duration"),
    (["--window", "15m", "--every", "1h"], "must be at least --every"),
    (["--last", "10", "--window", "1h"], "--rows (--last) takes the newest rows"),
    (["--rows", "10", "--since", "2h"], "does not combine with --window, --every or --since"),
    (["--last", "0"], "--last must be a positive"),
    (["--rows", "10", "--offset", "-1"], "--offset must not be negative"),
    (["--window", "1h", "--offset", "5"], "--offset skips rows of a --rows N window"),
    (["--since", "yesterday"], "--since takes an ISO 8601 time"),
    (["--until", "soon"], "--until takes an ISO 8601 time"),
    (["--since", "1h", "--until", "2h"], "--until must be later than --since"),
    (["--window", "1h", "--reference", "/nowhere/ref.parquet"], "neither a file"),
])
def test_bad_arguments_are_clear_errors(logged: tuple[Path, Path], args: list[str],
                                        message: str) -> None:
    log_dir, _ = logged
    with pytest.raises(ShipyardError) as error:
        _run("monitor", "run", ENDPOINT, "--log-dir", str(log_dir), *args)
    assert message in str(error.value)


def test_unknown_endpoint_is_one_line_without_traceback(logged: tuple[Path, Path]) -> None:
    log_dir, _ = logged
    for command in ("run", "status"):
        done = subprocess.run([sys.executable, "-m", "shipyard.cli.main", "monitor", command,
                               "nobody", "--log-dir", str(log_dir)],
                              capture_output=True, text=True)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert "nobody" in done.stderr and done.stderr.count("error:") == 1
