"""The evaluation gate (issue 18): rules parse in the alert rules' style with a caret under the
bad part; a gate that should fail fails with the rule and the numbers shown, and the command
exits 1; one that should pass passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.app import app
from shipyard.monitoring.evaluation_gate import GateRuleError, parse_gate, parse_gate_rule
from shipyard.service.evaluation import check_gate, evaluate


def test_rules_parse_and_bad_ones_point_at_the_problem() -> None:
    rule = parse_gate_rule("accuracy >= against - 0.01")
    assert (rule.metric, rule.op, rule.threshold, rule.against) == ("accuracy", ">=", -0.01,
                                                                   True)
    rule = parse_gate_rule("worst_slice(accuracy, by=size) >= 0.8")
    assert (rule.metric, rule.by, rule.threshold) == ("accuracy", "size", 0.8)
    assert parse_gate_rule("p99_ms <= 20").metric == "p99_ms"
    assert parse_gate_rule("accuracy >= production").against
    for text, words in (("accuracy = 0.9", "expected a comparison"),
                        ("accuracy >= lots", "expected a number or 'against'"),
                        ("accuracy >= 0.9 please", "unexpected text"),
                        ("worst_slice(accuracy) >= 0.8", "worst_slice(METRIC, by=COLUMN)"),
                        ("accuracy >= against -", "expected a number after '-'")):
        with pytest.raises(GateRuleError, match=r"invalid gate rule") as caught:
            parse_gate_rule(text)
        assert words in str(caught.value) and "^" in str(caught.value), str(caught.value)
    with pytest.raises(GateRuleError, match="no rules"):
        parse_gate({"rules": []})


def test_a_gate_that_is_not_a_list_or_could_never_be_checked_is_refused() -> None:
    """Before any work, with the reason: rules that are not a list (a number, one string
    read character by character), an infinite offset, a slice metric slices never hold."""
    for doc in ({"rules": 3}, {"rules": "accuracy >= 0.9"}, {"rules": {"a": 1}}):
        with pytest.raises(GateRuleError, match="the gate's rules are a list"):
            parse_gate(doc)  # type: ignore[arg-type]
    with pytest.raises(GateRuleError, match="offset 1e999 is out of range"):
        parse_gate_rule("accuracy >= against - 1e999")
    with pytest.raises(GateRuleError, match="headline metric: accuracy or rmse, not 'f1'"):
        parse_gate_rule("worst_slice(f1, by=region) >= 0.5")


def test_a_gate_fails_and_passes_with_the_numbers(cancer: dict[str, object],
                                                  tmp_path: Path) -> None:
    result = evaluate(str(cancer["weak_dir"]), cancer["path"], "target",  # type: ignore[arg-type]
                      against=str(cancer["good_dir"]), slices=["size"], resamples=100)
    rules = parse_gate(["accuracy >= 0.9", "accuracy >= against - 0.01",
                        "worst_slice(accuracy, by=size) >= 0.5", "size_mb <= 50",
                        "worst_slice(accuracy, by=region) >= 0.5", "auc >= 0.5"])
    verdicts = {v.rule.text: v for v in check_gate(result, rules)}
    weak = result.candidate.metrics["accuracy"].estimate  # type: ignore[union-attr]
    good = result.against.metrics["accuracy"].estimate  # type: ignore[union-attr]
    assert weak < 0.9 and not verdicts["accuracy >= 0.9"].passed
    assert f"{weak:.4g}" in verdicts["accuracy >= 0.9"].reason
    failed = verdicts["accuracy >= against - 0.01"]
    assert not failed.passed and failed.threshold == pytest.approx(good - 0.01)
    assert verdicts["size_mb <= 50"].passed
    assert "--slices region" in verdicts["worst_slice(accuracy, by=region) >= 0.5"].reason
    # a regressor's slices hold rmse: the rule says so rather than asking for --slices again
    (wrong,) = check_gate(result, parse_gate(["worst_slice(rmse, by=size) <= 1"]))
    assert not wrong.passed and "--slices" not in wrong.reason
    assert "the slices of 'size' hold accuracy" in wrong.reason
    assert "no metric 'auc'" in verdicts["auc >= 0.5"].reason
    # the command: exit 1 and the failing rule named; a passing gate exits 0
    (tmp_path / "gate.yaml").write_text("rules:\n  - accuracy >= 0.9\n  - size_mb <= 50\n")
    args = ["evaluate", str(cancer["weak_dir"]), "--data", str(cancer["path"]), "--target",
            "target", "--resamples", "50", "--gate", str(tmp_path / "gate.yaml"),
            "--markdown", str(tmp_path / "pr.md")]
    shown = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert shown.exit_code == 1, shown.output
    assert "FAIL accuracy >= 0.9" in shown.output and "gate failed: 1 of 2" in shown.output
    assert "**Gate: failed**" in (tmp_path / "pr.md").read_text()
    (tmp_path / "gate.yaml").write_text("- accuracy >= 0.5\n")
    shown = CliRunner().invoke(app, [*args, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["gate"]["passed"] is True
    (tmp_path / "gate.yaml").write_text("- accuracy => 0.5\n")
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code != 0 and "invalid gate rule" in str(bad.exception)


def test_a_handful_of_unlucky_rows_fails_no_gate(cancer: dict[str, object],
                                                 tmp_path: Path) -> None:
    """A slice under --min-slice-rows (30) is shown with its wide interval and marked, but it
    is never its column's worst: four rows the model gets wrong do not fail
    ``worst_slice(accuracy, by=batch) >= 0.8``; with --min-slice-rows 1 they do, and a column
    with no slice big enough fails its rule saying so."""
    import numpy as np
    import pandas as pd

    from shipyard.service.evaluation_report import markdown

    data = pd.read_parquet(cancer["path"])  # type: ignore[call-overload]
    features = data.drop(columns=["target", "size"])
    wrong = np.flatnonzero(cancer["good"].predict(features)  # type: ignore[attr-defined]
                           != data["target"].to_numpy())[:4]
    assert len(wrong) == 4
    batch = np.array(["main"] * len(data), dtype=object)
    batch[wrong] = "odd"
    data.assign(batch=batch, tiny=np.where(np.arange(len(data)) < 10, "a", "b")).to_parquet(
        tmp_path / "rows.parquet")
    rule = parse_gate(["worst_slice(accuracy, by=batch) >= 0.8"])
    result = evaluate(str(cancer["good_dir"]), tmp_path / "rows.parquet", "target",
                      slices=["batch"], resamples=50)
    odd = next(s for s in result.candidate.slices if s.value == "odd")
    assert odd.rows == 4 and odd.metric is not None and odd.metric.estimate == 0.0
    assert not result.candidate.eligible(odd)
    assert result.candidate.worst_slice("batch").value == "main"  # type: ignore[union-attr]
    (verdict,) = check_gate(result, rule)
    assert verdict.passed, verdict.reason
    assert "| odd (under 30 rows) | 4 |" in markdown(result, [verdict])
    listed = {s["value"]: s["eligible"] for s in result.to_dict()["candidate"]["slices"]}
    assert listed == {"main": True, "odd": False}
    strict = evaluate(str(cancer["good_dir"]), tmp_path / "rows.parquet", "target",
                      slices=["batch"], resamples=50, min_slice_rows=1)
    (verdict,) = check_gate(strict, rule)
    assert not verdict.passed and verdict.value == 0.0
    none_big = evaluate(str(cancer["good_dir"]), tmp_path / "rows.parquet", "target",
                        slices=["tiny"], resamples=50, min_slice_rows=1000)
    (verdict,) = check_gate(none_big, parse_gate(["worst_slice(accuracy, by=tiny) >= 0.5"]))
    assert not verdict.passed
    assert verdict.reason == "no slice of 'tiny' has 1000 or more rows (--min-slice-rows)"
