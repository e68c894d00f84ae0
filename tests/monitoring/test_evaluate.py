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
    with pytest.raises(MonitoringError, match=r"x\.json' is neither \.parquet nor \.csv"):
        evaluate(str(a), tmp_path / "x.json", "a")


def test_labels_match_by_value_and_missing_labels_are_left_out_and_counted(
        cancer: dict[str, object], tmp_path: Path) -> None:
    """A target read as floats (a CSV column with a gap) matches a model's int classes, as
    the monitor matches them; a row without a label is left out, counted, not a wrong one."""
    y = cancer["y"].astype(float)  # type: ignore[attr-defined]
    y[:3] = np.nan
    data = cancer["test"].assign(target=y, size=["a"] * 40 + [None] * (len(y) - 40))  # type: ignore[attr-defined]
    data.to_csv(tmp_path / "gaps.csv", index=False)
    result = evaluate(str(cancer["good_dir"]), tmp_path / "gaps.csv", "target",
                      slices=["size"], resamples=50)
    good = cancer["good"].predict(cancer["test"])[3:]  # type: ignore[attr-defined]
    truth = cancer["y"][3:]  # type: ignore[index]
    c = result.candidate
    assert c.rows == len(truth) and result.data["unlabelled"] == 3
    assert c.metrics["accuracy"].estimate == pytest.approx(  # type: ignore[union-attr]
        accuracy_score(truth, good))
    assert c.metrics["f1"].estimate == pytest.approx(f1_score(truth, good))  # type: ignore[union-attr]
    # a slice value that is missing is the slice `missing`: a column's slices hold every row
    assert {s.value: s.rows for s in c.slices} == {"a": 37, "missing": len(truth) - 37}
    shown = CliRunner().invoke(app, ["evaluate", str(cancer["good_dir"]), "--data",
                                     str(tmp_path / "gaps.csv"), "--target", "target",
                                     "--resamples", "20"])
    assert shown.exit_code == 0 and "3 row(s) without a 'target' label left out" in \
        shown.output.replace("\n", " ")


def test_a_target_that_cannot_be_the_models_is_refused(cancer: dict[str, object],
                                                       tmp_path: Path) -> None:
    """The wrong --target column is an error naming it, not a classifier at 0% or a
    traceback from a regressor."""
    with pytest.raises(MonitoringError, match=r"none of the target's values \(large, small\) "
                                              r"is one of .*'s classes \(0, 1\)"):
        evaluate(str(cancer["good_dir"]), cancer["path"], "size", resamples=20)  # type: ignore[arg-type]
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    fit = LinearRegression().fit(x, y)
    pkg = shipyard.package(fit, x, name="diabetes").save(tmp_path / "reg")
    x.assign(band=np.where(y > 150, "high", "low")).to_parquet(tmp_path / "d.parquet")
    with pytest.raises(MonitoringError, match=r"is a regression model but the target holds "
                                              r"values that are not numbers \('high', 'low'"):
        evaluate(str(pkg), tmp_path / "d.parquet", "band", resamples=20)


def test_the_data_fingerprint_of_one_file_is_its_sha256(cancer: dict[str, object]) -> None:
    """What `sha256sum holdout.parquet` prints, so a user can check the stored one."""
    import hashlib

    result = evaluate(str(cancer["good_dir"]), cancer["path"], "target", resamples=20)  # type: ignore[arg-type]
    body = Path(cancer["path"]).read_bytes()  # type: ignore[arg-type]
    assert result.data["sha256"] == hashlib.sha256(body).hexdigest()


def test_bad_options_are_named_errors(cancer: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(MonitoringError, match="at least one resample, not 0"):
        evaluate(str(cancer["good_dir"]), cancer["path"], "target", resamples=0)  # type: ignore[arg-type]
    shown = CliRunner().invoke(app, ["evaluate", str(cancer["good_dir"]), "--data",
                                     str(cancer["path"]), "--target", "target",
                                     "--resamples", "20", "--markdown",
                                     str(tmp_path / "no" / "such" / "eval.md")])
    assert isinstance(shown.exception, MonitoringError)  # printed as `error: ...`, exit 1
    assert "cannot write the markdown to" in str(shown.exception)


def test_data_lacking_a_models_columns_names_that_model(cancer: dict[str, object],
                                                        tmp_path: Path) -> None:
    """With --against, the error says which model lacks which columns (the data's extra
    columns are fine: the slice columns are extra)."""
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    pkg = shipyard.package(LinearRegression().fit(x, y), x, name="diabetes").save(
        tmp_path / "reg")
    with pytest.raises(MonitoringError, match=rf"the data lacks 10 of {pkg}'s input columns: "
                                              r"'age', 'sex'"):
        evaluate(str(cancer["good_dir"]), cancer["path"], "target", against=str(pkg),  # type: ignore[arg-type]
                 resamples=20)


def test_a_one_input_tensor_model_takes_the_feature_columns_stacked(
        cancer: dict[str, object], tmp_path: Path) -> None:
    """As batch scoring reads a table for such a model: the columns other than the target
    (and other than the --slices columns when those are not features) in file order."""
    from sklearn.linear_model import LogisticRegression

    test = cancer["test"]
    x = test.to_numpy(dtype=np.float32)  # type: ignore[attr-defined]
    fit = LogisticRegression(max_iter=5000).fit(x, cancer["y"])
    pkg = shipyard.package(fit, x, name="tensor").save(tmp_path / "tensor")
    result = evaluate(str(pkg), cancer["path"], "target", slices=["size"], resamples=20)  # type: ignore[arg-type]
    assert result.candidate.metrics["accuracy"].estimate == pytest.approx(  # type: ignore[union-attr]
        accuracy_score(cancer["y"], fit.predict(x)))
    assert {s.value for s in result.candidate.slices} == {"large", "small"}
    with pytest.raises(MonitoringError, match=r"one input 'input' of shape \[-1, 30\]: give "
                                              r"30 feature columns"):
        evaluate(str(pkg), _narrow(cancer, tmp_path), "target", resamples=20)


def _narrow(cancer: dict[str, object], tmp_path: Path) -> Path:
    """The test rows with three feature columns only."""
    path = tmp_path / "narrow.csv"
    cancer["test"].iloc[:, :3].assign(target=cancer["y"]).to_csv(path, index=False)  # type: ignore[attr-defined]
    return path


def test_labels_the_model_never_learned_are_counted_and_said(cancer: dict[str, object],
                                                             tmp_path: Path) -> None:
    """A label none of the model's classes is a wrong answer for accuracy, and left out of
    the probability metrics: the evaluation says how many there were."""
    y = cancer["y"].copy()  # type: ignore[attr-defined]
    y[:4] = 7
    cancer["test"].assign(target=y).to_csv(tmp_path / "seven.csv", index=False)  # type: ignore[attr-defined]
    result = evaluate(str(cancer["good_dir"]), tmp_path / "seven.csv", "target", resamples=20)
    good = cancer["good"].predict(cancer["test"])  # type: ignore[attr-defined]
    assert result.candidate.unknown_labels == 4
    assert result.candidate.to_dict()["unknown_labels"] == 4
    assert result.candidate.metrics["accuracy"].estimate == pytest.approx(  # type: ignore[union-attr]
        accuracy_score(y, good))
    shown = CliRunner().invoke(app, ["evaluate", str(cancer["good_dir"]), "--data",
                                     str(tmp_path / "seven.csv"), "--target", "target",
                                     "--resamples", "20"], env={"COLUMNS": "200"})
    assert "4 row(s) with a label that is none of the candidate's classes" in shown.output


def test_a_csv_text_column_the_model_takes_as_text_stays_text(tmp_path: Path) -> None:
    """Store codes like "01" in a CSV: read as the model's text, not as the number 1 (which
    the signature refused, and which lost the leading zero)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"store": rng.choice(["01", "02", "13"], 400),
                      "amount": rng.gamma(2.0, 50.0, 400)})
    y = ((x["amount"] > 100) | (x["store"] == "01")).astype(int).to_numpy()
    fit = make_pipeline(make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["store"]), remainder="passthrough"),
        LogisticRegression(max_iter=1000)).fit(x, y)
    pkg = shipyard.package(fit, x, name="stores").save(tmp_path / "pkg")
    x.assign(label=y).to_csv(tmp_path / "stores.csv", index=False)
    result = evaluate(str(pkg), tmp_path / "stores.csv", "label", slices=["store"],
                      resamples=20)
    assert result.candidate.metrics["accuracy"].estimate == pytest.approx(  # type: ignore[union-attr]
        accuracy_score(y, fit.predict(x)))
    assert {s.value for s in result.candidate.slices} == {"01", "02", "13"}
    # classes that are such text: the labels are read as text too
    codes = np.where(y == 1, "07", "03")
    text = LogisticRegression(max_iter=1000).fit(x[["amount"]], codes)
    pkg = shipyard.package(text, x[["amount"]], name="codes").save(tmp_path / "codes")
    x[["amount"]].assign(code=codes).to_csv(tmp_path / "codes.csv", index=False)
    result = evaluate(str(pkg), tmp_path / "codes.csv", "code", resamples=20)
    assert result.candidate.metrics["accuracy"].estimate == pytest.approx(  # type: ignore[union-attr]
        accuracy_score(codes, text.predict(x[["amount"]])))
