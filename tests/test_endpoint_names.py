"""Endpoint names become folder names (prediction log, monitor history): every place that
turns one into a path refuses a name that would lead outside its directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.errors import InvalidNameError
from shipyard.names import check_endpoint_name, is_safe_name
from shipyard.service.config import ConfigError, EndpointConfig, ServeConfig
from shipyard.service.monitor_history import MonitorHistory
from shipyard.stores.predictions import FeedbackRecord, PredictionLog, read_log

BAD = ["x/../../../outside", "../outside", "..", ".", "a/b", "iris\n", "", "a\\b", " iris",
       "iris\x00", "-iris"]
runner = CliRunner()


def _nothing_outside(root: Path) -> None:
    """Nothing was written beside the log directory (its parent holds only it)."""
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name]


@pytest.mark.parametrize("name", BAD)
def test_the_validator_refuses_names_that_are_not_one_safe_path_part(name: str) -> None:
    assert not is_safe_name(name)
    with pytest.raises(InvalidNameError, match="invalid endpoint name"):
        check_endpoint_name(name)


@pytest.mark.parametrize("name", ["iris", "fraud-v2", "a.b_c", "A1", "x" * 128])
def test_the_validator_accepts_ordinary_names(name: str) -> None:
    assert check_endpoint_name(name) == name


def test_the_serve_config_refuses_a_trailing_newline() -> None:
    with pytest.raises(ConfigError, match="invalid endpoint name"):
        EndpointConfig(name="iris\n", model="/pkgs/iris")
    with pytest.raises(ConfigError, match="invalid endpoint name"):
        ServeConfig.from_dict({"endpoints": [{"name": "iris\n", "model": "/pkgs/iris"}]})


def test_monitor_run_cannot_write_outside_the_log_dir(tmp_path: Path) -> None:
    """The review's reproduction: ``monitor run 'x/../../../outside' --log-dir L``."""
    logs = tmp_path / "deep" / "er" / "logs"
    logs.mkdir(parents=True)
    result = subprocess.run([sys.executable, "-m", "shipyard.cli.main", "monitor", "run",
                             "x/../../../outside", "--log-dir", str(logs)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "invalid endpoint name 'x/../../../outside'" in result.stderr + result.stdout
    assert not any(tmp_path.rglob("history.jsonl")) and not any(tmp_path.rglob("alerts.json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]
    _nothing_outside(logs)


@pytest.mark.parametrize("command", [["monitor", "status"], ["logs"], ["logs", "--feedback"]])
def test_other_commands_refuse_the_name_too(tmp_path: Path, command: list[str]) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    result = runner.invoke(app, [*command[:2], "../outside", *command[2:], "--log-dir",
                                 str(logs)])
    assert isinstance(result.exception, InvalidNameError), result.output
    assert "invalid endpoint name '../outside'" in str(result.exception)


def test_monitor_history_refuses_the_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError, match="invalid endpoint name"):
        MonitorHistory(tmp_path / "logs", "x/../../outside")
    assert not any(tmp_path.rglob("*"))


def test_reading_the_log_refuses_the_name(tmp_path: Path) -> None:
    outside = tmp_path / "feedback" / "endpoint=x" / "secret.parquet"
    outside.parent.mkdir(parents=True)
    outside.write_bytes(b"not for you")
    with pytest.raises(InvalidNameError, match="invalid endpoint name"):
        read_log(tmp_path / "logs", "../feedback/endpoint=x/..", kind="feedback")


def test_the_log_writer_never_writes_a_segment_outside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    log = PredictionLog(root)
    log.append(FeedbackRecord("r1", 1.7e9, "../../escaped", [1]))
    log.flush()
    log.close()
    assert log.stats.written_rows == 0 and log.stats.dropped_rows == 1  # counted, not lost
    assert not any(tmp_path.rglob("*.parquet"))
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["logs"])
