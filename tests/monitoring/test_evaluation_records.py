"""``shipyard evaluate`` in a CI pipeline (issue 18): evaluate a package directory with a gate
and --record, register it, and the version shows the evaluation (``models show``, lineage);
``rollout canary --require-evaluation`` refuses a version whose evaluation failed and starts
once a passing one is recorded. Also the calibration part of an evaluation: the reliability
table and the ECE against a direct computation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.cli.main import app
from shipyard.monitoring.performance import expected_calibration_error
from shipyard.service.evaluation import evaluate

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"{args}: {result.output}\n{result.exception!r}"
    return " ".join(result.output.split())


def refused(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code != 0, args
    assert isinstance(result.exception, shipyard.ShipyardError), (args, result.output)
    return str(result.exception)


@pytest.fixture
def registry_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("SHIPYARD_REGISTRY_URL", url)
    for var in ("SHIPYARD_ARTIFACTS", "SHIPYARD_ACTOR"):
        monkeypatch.delenv(var, raising=False)
    return url


def test_train_package_evaluate_register_canary(cancer: dict[str, Any], tmp_path: Path,
                                                registry_env: str) -> None:
    data, good, weak = str(cancer["path"]), str(cancer["good_dir"]), str(cancer["weak_dir"])
    strict = tmp_path / "gate.yaml"
    strict.write_text("rules:\n  - accuracy >= 0.9\n  - size_mb <= 50\n")
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("- accuracy >= 0.5\n")
    common = ("--data", data, "--target", "target", "--resamples", "50")
    # the weak candidate, evaluated as a directory with --record: fails, and is kept
    shown = run("evaluate", weak, *common, "--gate", str(strict), "--record", code=1)
    assert "gate failed: 1 of 2" in shown and "recorded in the registry as evaluation #1 " \
        "(failed)" in shown
    run("models", "register", good)
    run("models", "register", weak)
    assert "#1 failed" in run("models", "show", "cancer/2")
    show = json.loads(run("models", "show", "cancer/2", "--json"))
    assert [(e["id"], e["verdict"], e["failed_rules"]) for e in show["evaluations"]] == [
        (1, "failed", ["accuracy >= 0.9"])]
    assert show["evaluations"][0]["value"] < 0.9
    assert json.loads(run("models", "show", "cancer/1", "--json"))["evaluations"] == []
    run("deploy", "shop", "models:/cancer/1")
    said = refused("rollout", "canary", "shop", "--to", "models:/cancer/2",
                   "--require-evaluation")
    assert "failed its gate: accuracy >= 0.9" in said and "--override-evaluation" in said
    # a models:/ candidate is recorded by default; a passing gate lets the canary start
    verdict = json.loads(runner.invoke(app, ["evaluate", "models:/cancer/2", *common,
                                             "--gate", str(lenient), "--json"]).output)
    assert verdict["gate"]["passed"] is True and verdict["recorded"] == 2
    assert verdict["data"]["sha256"] and verdict["data"]["rows"] == len(cancer["y"])
    run("rollout", "canary", "shop", "--to", "models:/cancer/2", "--require-evaluation")
    lineage = json.loads(run("models", "lineage", "cancer/2", "--json"))
    assert [(e["id"], e["verdict"], e["source"]) for e in lineage["evaluations"]] == [
        (2, "passed", "models:/cancer/2"), (1, "failed", weak)]
    table = run("models", "lineage", "cancer/2")
    assert "evaluated" in table and "#2 passed" in table and "#1 failed" in table
    # --no-record keeps nothing
    run("evaluate", "models:/cancer/2", *common, "--no-record")
    assert len(json.loads(run("models", "lineage", "cancer/2", "--json"))["evaluations"]) == 2


def test_calibration_matches_a_direct_computation(cancer: dict[str, Any]) -> None:
    result = evaluate(str(cancer["good_dir"]), cancer["path"], "target", resamples=100)
    c = result.candidate
    proba = cancer["good"].predict_proba(cancer["test"])
    truth = cancer["y"]
    correct = proba.argmax(axis=1) == truth
    confidence = proba.max(axis=1)
    assert sum(b["rows"] for b in c.calibration) == len(truth)
    for b in c.calibration:
        inside = (confidence > b["from"]) & (confidence <= b["to"])
        assert b["rows"] == inside.sum()
        assert b["accuracy"] == pytest.approx(correct[inside].mean())
        assert b["confidence"] == pytest.approx(confidence[inside].mean())
    ece = c.metrics["calibration_error"]
    assert ece is not None
    assert ece.estimate == pytest.approx(expected_calibration_error(proba, truth))
    assert ece.low <= ece.estimate <= ece.high
    assert c.fingerprint and len(c.fingerprint) == 64
    assert np.isclose(sum(b["rows"] * abs(b["accuracy"] - b["confidence"])
                          for b in c.calibration) / len(truth), ece.estimate)


def test_an_alias_moved_during_the_evaluation_is_not_credited_with_it(
        cancer: dict[str, Any], registry_env: str) -> None:
    """``models:/cancer@production`` is resolved again when the record is written; if the
    alias moved meanwhile, the record stays with the evaluated bytes and its audit names no
    version (not the one the alias points at now)."""
    from shipyard.registry import Registry
    from shipyard.service.evaluation_records import record

    with Registry() as reg:
        reg.register(str(cancer["good_dir"]), alias="production")
        reg.register(str(cancer["weak_dir"]))
        result = evaluate("models:/cancer@production", cancer["path"], "target",
                          resamples=20, registry=reg)
        reg.set_alias("cancer", "production", 2)
        kept = record(result, [], reg)
        assert kept.fingerprint == result.candidate.fingerprint
        assert reg.evaluations.of_version("cancer/2") == []
        (audit,) = reg.audit(action="evaluation.record")
        assert (audit.model, audit.version) == (None, None)


def test_a_registry_that_cannot_be_reached_fails_before_the_work(
        cancer: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--record opens the registry first: an unreachable one is said at once, not after
    the evaluation ran (whose output was then lost)."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHIPYARD_REGISTRY_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = runner.invoke(app, ["evaluate", str(cancer["good_dir"]), "--data",
                                 str(cancer["path"]), "--target", "target", "--resamples",
                                 "20", "--record", "--markdown", str(tmp_path / "pr.md")])
    assert isinstance(result.exception, shipyard.ShipyardError), result.output
    assert "cannot reach the registry" in str(result.exception)
    assert not (tmp_path / "pr.md").exists()  # nothing was evaluated
