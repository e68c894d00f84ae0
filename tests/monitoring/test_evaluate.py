"""``shipyard evaluate`` (issue 18, first step): metrics equal scikit-learn's on the same rows,
with intervals; per slice; a paired comparison that finds a worse model worse; markdown and
JSON output; regression too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error
from typer.testing import CliRunner

import shipyard
from shipyard.cli.app import app
from shipyard.errors import MonitoringError
from shipyard.service.evaluation import evaluate
from shipyard.service.evaluation_report import markdown


def test_metrics_equal_scikit_learns_with_intervals_slices_and_a_comparison(
        cancer: dict[str, object]) -> None:
    result = evaluate(str(cancer["good_dir"]), cancer["path"], "target",  # type: ignore[arg-type]
                      against=str(cancer["weak_dir"]), slices=["size", "mean_texture"],
                      resamples=200)
    good = cancer["good"].predict(cancer["test"])  # type: ignore[attr-defined]
    y = cancer["y"]
    c = result.candidate
    assert c.task == "classification" and c.rows == len(y)  # type: ignore[arg-type]
    assert c.metrics["accuracy"].estimate == pytest.approx(accuracy_score(y, good))
    assert c.metrics["f1"].estimate == pytest.approx(f1_score(y, good))
    for interval in c.metrics.values():
        assert interval is not None and interval.low <= interval.estimate <= interval.high
    # slices: each column's slices cover every row; the worst is named
    for column in ("size", "mean_texture"):
        assert sum(s.rows for s in c.slices if s.column == column) == c.rows
        assert c.worst_slice(column) is not None and c.spread(column) is not None
    large = next(s for s in c.slices if s.column == "size" and s.value == "large")
    mask = cancer["test"]["mean_radius"].to_numpy() > 14  # type: ignore[index]
    assert large.metric.estimate == pytest.approx(accuracy_score(y[mask], good[mask]))
    # the weak model is worse, and the paired test says so
    assert result.against is not None and result.comparison is not None
    assert result.comparison.difference > 0.1 and result.comparison.significant(0.001)
    text = markdown(result)
    assert "| accuracy |" in text and "(worst)" in text and "p = " in text
    assert c.latency_ms["p99"] >= c.latency_ms["p50"] > 0 and c.size_bytes > 0


def test_regression_and_the_command(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    fit = LinearRegression().fit(x.iloc[::2], y.iloc[::2])
    flat = Ridge(alpha=1e6).fit(x.iloc[::2], y.iloc[::2])
    a = shipyard.package(fit, x.iloc[::2], name="diabetes").save(tmp_path / "a")
    b = shipyard.package(flat, x.iloc[::2], name="diabetes").save(tmp_path / "b")
    test = x.iloc[1::2].assign(progress=y.iloc[1::2].to_numpy())
    test.to_csv(tmp_path / "test.csv", index=False)
    result = evaluate(str(a), tmp_path / "test.csv", "progress", against=str(b),
                      resamples=200)
    want = fit.predict(x.iloc[1::2])
    truth = y.iloc[1::2].to_numpy()
    assert result.candidate.metrics["rmse"].estimate == pytest.approx(  # type: ignore[union-attr]
        np.sqrt(mean_squared_error(truth, want)), rel=1e-6)
    assert result.candidate.metrics["mae"].estimate == pytest.approx(  # type: ignore[union-attr]
        mean_absolute_error(truth, want), rel=1e-6)
    assert result.comparison is not None and result.comparison.difference < 0
    assert result.comparison.significant(0.01)  # lower RMSE than the flat model
    shown = CliRunner().invoke(app, ["evaluate", str(a), "--data", str(tmp_path / "test.csv"),
                                     "--target", "progress", "--against", str(b),
                                     "--resamples", "100", "--json",
                                     "--markdown", str(tmp_path / "eval.md")])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert doc["comparison"]["metric"] == "rmse" and doc["candidate"]["task"] == "regression"
    assert "## Evaluation of" in (tmp_path / "eval.md").read_text()
    with pytest.raises(MonitoringError, match="no column 'nope'"):
        evaluate(str(a), tmp_path / "test.csv", "nope")
    pd.DataFrame({"a": [1]}).to_json(tmp_path / "x.json")
    with pytest.raises(MonitoringError, match=r"parquet or \.csv"):
        evaluate(str(a), tmp_path / "x.json", "a")
