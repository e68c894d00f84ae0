"""``shipyard predict``'s start-up: a plain command line is read without building the typer
app (``cli/plain_args.py``) and means exactly what typer reads it as; the run loads none of
the code a batch run does not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

import shipyard.scoring
from scoring.conftest import customers_with_ids
from shipyard.cli import main
from shipyard.cli.plain_args import Option, plain_kwargs
from shipyard.cli.predict import predict
from shipyard.scoring import BatchSummary

LINES = [
    ["pkg", "--input", "in.parquet", "--output", "out.parquet"],
    ["pkg", "-i", "in.parquet", "-o", "out/", "--passthrough", "id,city", "--batch-size",
     "700", "--workers", "2", "--json"],
    ["--input=in.csv", "models:/churn@production", "--output=s3://b/out/", "--trust", "-q",
     "--max-rejects", "0.01", "--log", "nightly", "--log-dir", "logs", "--rejects",
     "bad.parquet", "--registry", "sqlite:///r.db", "--engine", "ray", "--ray-address",
     "ray://head:10001"],
    ["pkg", "-o", "o.parquet", "-i", "i.parquet", "--max-rejects", "1e-3", "--quiet"],
]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every predict_batch call, answered with an empty summary."""
    seen: list[dict[str, Any]] = []

    def record(model: str, input: str, output: str, **kwargs: Any) -> BatchSummary:
        seen.append({"model": model, "input": input, "output": output, **kwargs})
        return BatchSummary(batch_id="b", output=output)

    monkeypatch.setattr(shipyard.scoring, "predict_batch", record)
    return seen


@pytest.mark.parametrize("line", LINES)
def test_a_plain_line_calls_predict_batch_as_typer_does(
        line: list[str], calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main.app, ["predict", *line])
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(sys, "argv", ["shipyard", "predict", *line])
    assert main._run_plain(sys.argv[1:]) is True  # read without typer
    typer_call, plain_call = calls
    assert plain_call == typer_call


@pytest.mark.parametrize("line", [
    ["pkg", "-i", "a", "-o", "b", "--help"],  # help is typer's
    ["--help"],
    ["pkg", "-i", "a"],  # --output missing
    ["pkg", "-i", "a", "-o", "b", "--workers", "two"],  # not a number
    ["pkg", "-i", "a", "-o", "b", "--workers", "-1"],  # a value that looks like an option
    ["pkg", "-i", "a", "-o", "b", "--batch-size", "1_000"],
    ["pkg", "-i", "a", "-o", "b", "-i", "c"],  # repeated
    ["pkg", "-i", "a", "-o", "b", "--wokers", "2"],  # unknown
    ["pkg", "-i", "a", "-o", "b", "--trust=yes"],  # a flag takes no value
    ["pkg", "-qi", "a", "-o", "b"],  # a cluster of short options
    ["pkg", "other", "-i", "a", "-o", "b"],  # one argument too many
    ["pkg", "-i", "a", "-o", "b", "--", "x"],
    ["pkg", "-i", "a", "-o"],  # no value
])
def test_anything_else_is_left_to_typer(line: list[str]) -> None:
    assert plain_kwargs(predict, line) is None


def test_typer_still_answers_help_and_mistakes(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["shipyard", "predict", "pkg", "--help"])
    with pytest.raises(SystemExit) as done:
        main.run()
    assert done.value.code == 0
    assert "--max-rejects" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["shipyard", "predict", "pkg", "-i", "a", "-o", "b",
                                      "--workers", "two"])
    with pytest.raises(SystemExit) as done:
        main.run()
    assert done.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_a_batch_run_loads_only_what_it_uses(package_dir: Path, tmp_path: Path) -> None:
    """Typer (the command is read from its own declarations), onnx (the graph names no
    external data), the packager, profiles and the registry stay out of a batch run of a
    package directory, and the progress bar's code out of a quiet one; Arrow's allocator is
    told to keep freed pages a while, and numpy's BLAS to start no threads."""
    customers_with_ids(300).to_parquet(tmp_path / "in.parquet")
    unused = ["shipyard.cli.app", "typer", "pydantic", "onnx", "shipyard.runtimes.packager",
              "rich.progress",
              "shipyard.profiles", "sqlalchemy", "shipyard.registry", "scipy",
              "multiprocessing"]
    code = ("import atexit, json, os, sys\n"
            "from shipyard.cli.main import run\n"
            f"atexit.register(lambda: print(json.dumps([[m for m in {unused!r} "
            "if m in sys.modules], os.environ.get('MIMALLOC_PURGE_DELAY'), "
            "os.environ.get('OPENBLAS_NUM_THREADS')])))\n"
            "sys.argv[0] = 'shipyard'\n"
            "run()\n")
    done = subprocess.run(
        [sys.executable, "-c", code, "predict", str(package_dir), "-i",
         str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"), "--quiet",
         "--json"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded, purge_delay, blas_threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == []
    assert (purge_delay, blas_threads) == ("1000", "1")
    assert (tmp_path / "out.parquet").exists()


def test_the_command_and_the_function_batch_alike(calls: list[dict[str, Any]]) -> None:
    from shipyard.scoring.batch import DEFAULT_BATCH_SIZE

    result = CliRunner().invoke(main.app, ["predict", "pkg", "-i", "a", "-o", "b"])
    assert result.exit_code == 0, result.output
    assert calls[0]["batch_size"] == DEFAULT_BATCH_SIZE == 16_384


def _from_env(name: Annotated[str, Option("--name", envvar="NAME")] = "x") -> None:
    """An option typer may read from the environment."""


def _typer_own(name: Annotated[str, typer.Option("--name")] = "x") -> None:
    """Declared with typer itself."""


def _plain(name: Annotated[str, Option("--name", help="a name")] = "x",
           loud: Annotated[bool, Option()] = False) -> None:
    """Plain."""


def test_a_declaration_beyond_help_text_is_left_to_typer() -> None:
    assert plain_kwargs(_from_env, ["--name", "y"]) is None
    assert plain_kwargs(_typer_own, ["--name", "y"]) is None
    assert plain_kwargs(_plain, ["--name", "y", "--no-loud"]) == {"name": "y", "loud": False}
    assert plain_kwargs(_plain, ["--loud"]) == {"name": "x", "loud": True}
    assert plain_kwargs(_plain, []) == {"name": "x", "loud": False}
