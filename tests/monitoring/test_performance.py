"""Realised performance metrics agree with scikit-learn's on the same labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from shipyard.monitoring.performance import (
    classification_metrics,
    expected_calibration_error,
    regression_metrics,
)


def make_classification(
    rows: int, classes: list[Any], seed: int, weights: list[float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels drawn from the model's own probabilities (so AUC > 0.5), predictions = argmax."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    logits = rng.normal(0.0, 1.5, (rows, k))
    if weights is not None:
        logits += np.log(np.asarray(weights))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    drawn = (proba.cumsum(axis=1) > rng.random((rows, 1))).argmax(axis=1)
    labels = np.asarray(classes, dtype=object if isinstance(classes[0], str) else None)
    return labels[drawn], labels[proba.argmax(axis=1)], proba


def sklearn_classification(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, classes: list[Any]
) -> dict[str, float]:
    if len(classes) == 2:
        averaging: dict[str, Any] = {"average": "binary", "pos_label": classes[1]}
        auc = skm.roc_auc_score(np.asarray(y_true) == classes[1], proba[:, 1])
    else:
        averaging = {"average": "macro", "labels": classes}
        auc = skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0, **averaging),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0, **averaging),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0, **averaging),
        "roc_auc": auc,
        "log_loss": skm.log_loss(y_true, proba, labels=classes),
    }


def assert_matches(ours: dict[str, Any], theirs: dict[str, float]) -> None:
    for name, expected in theirs.items():
        assert ours[name] == pytest.approx(expected, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize(
    ("classes", "weights"),
    [
        ([0, 1], None),
        (["no", "yes"], None),
        ([0, 1], [0.95, 0.05]),  # imbalanced
        (["ham", "spam"], [0.9, 0.1]),
        ([0, 1, 2], None),
        (["cat", "dog", "eel", "fox"], None),
        (["a", "b", "c"], [0.8, 0.15, 0.05]),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_classification_matches_sklearn(
    classes: list[Any], weights: list[float] | None, seed: int
) -> None:
    y_true, y_pred, proba = make_classification(3000, classes, seed, weights)
    ours = classification_metrics(y_true, y_pred, proba, classes)
    assert ours["rows"] == 3000 and ours["missing_labels"] == 0
    assert ours["undefined"] == {}
    assert_matches(ours, sklearn_classification(y_true, y_pred, proba, classes))


def test_classes_inferred_when_not_given() -> None:
    y_true, y_pred, proba = make_classification(500, ["no", "yes"], 3)
    ours = classification_metrics(y_true, y_pred, proba)  # sorted: positive class is "yes"
    assert_matches(ours, sklearn_classification(y_true, y_pred, proba, ["no", "yes"]))


def test_probability_mapping_by_class_name() -> None:
    y_true, y_pred, proba = make_classification(400, ["a", "b", "c"], 4)
    columns = {"c": proba[:, 2], "a": proba[:, 0], "b": proba[:, 1]}
    ours = classification_metrics(y_true, y_pred, columns, classes=["a", "b", "c"])
    assert_matches(ours, sklearn_classification(y_true, y_pred, proba, ["a", "b", "c"]))


def test_missing_labels_are_dropped_and_counted() -> None:
    y_true, y_pred, proba = make_classification(1000, ["no", "yes"], 5)
    holed = y_true.copy()
    holed[::7] = None
    holed[3::11] = np.nan
    ours = classification_metrics(holed, y_pred, proba, ["no", "yes"])
    keep = np.array([v is not None and v == v for v in holed])
    assert ours["missing_labels"] == int((~keep).sum()) and ours["rows"] == int(keep.sum())
    assert_matches(ours, sklearn_classification(y_true[keep], y_pred[keep], proba[keep],
                                                ["no", "yes"]))


def test_numeric_labels_with_nan_and_mixed_types() -> None:
    y_true, y_pred, proba = make_classification(800, [0, 1, 2], 6)
    as_float = y_true.astype(float)
    as_float[:50] = np.nan
    as_text = y_pred.astype(str)  # predictions arriving as "0", "1", "2"
    ours = classification_metrics(as_float, as_text, proba, classes=[0, 1, 2])
    assert ours["missing_labels"] == 50
    assert_matches(ours, sklearn_classification(y_true[50:], y_pred[50:], proba[50:], [0, 1, 2]))


def test_class_absent_from_labels() -> None:
    y_true, y_pred, proba = make_classification(600, [0, 1, 2], 7)
    present = y_true != 2
    y_true, y_pred, proba = y_true[present], y_pred[present], proba[present]
    ours = classification_metrics(y_true, y_pred, proba, classes=[0, 1, 2])
    for name in ("precision", "recall", "f1"):
        expected = getattr(skm, f"{name}_score")(y_true, y_pred, labels=[0, 1, 2],
                                                 average="macro", zero_division=0)
        assert ours[name] == pytest.approx(expected)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    # sklearn refuses the AUC here; we average the classes that have both outcomes and say so
    per_class = [skm.roc_auc_score(y_true == c, proba[:, c]) for c in (0, 1)]
    assert ours["roc_auc"] == pytest.approx(np.mean(per_class))
    assert "[2]" in ours["undefined"]["roc_auc"]
    assert ours["log_loss"] == pytest.approx(skm.log_loss(y_true, proba, labels=[0, 1, 2]))


def test_single_class_window_gives_none_with_reason() -> None:
    y_true = np.array(["yes"] * 20, dtype=object)
    y_pred = np.array(["yes"] * 15 + ["no"] * 5, dtype=object)
    proba = np.column_stack([np.linspace(0, 1, 20), 1 - np.linspace(0, 1, 20)])
    ours = classification_metrics(y_true, y_pred, proba, ["no", "yes"])
    assert ours["roc_auc"] is None and "one class" in ours["undefined"]["roc_auc"]
    assert ours["accuracy"] == 0.75 and ours["recall"] == 0.75 and ours["precision"] == 1.0


def test_no_rows_and_no_probabilities() -> None:
    empty = classification_metrics([None, None], ["a", "b"], classes=["a", "b"])
    assert empty["rows"] == 0 and empty["accuracy"] is None and "accuracy" in empty["undefined"]
    plain = classification_metrics(["a", "b"], ["a", "a"])
    assert plain["accuracy"] == 0.5 and plain["log_loss"] is None
    assert plain["undefined"]["roc_auc"] == "no probabilities given"


def test_wrong_number_of_probability_columns_is_explained() -> None:
    from shipyard.errors import MonitoringError

    with pytest.raises(MonitoringError, match="pass classes="):
        classification_metrics(["a", "b"], ["a", "b"], np.full((2, 3), 1 / 3))


def reference_ece(proba: np.ndarray, true: np.ndarray, bins: int = 10) -> float:
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == true
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = (confidence > low) & (confidence <= high) | ((b == 0) & (confidence == 0))
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def test_calibration_error() -> None:
    y_true, _, proba = make_classification(20_000, [0, 1, 2], 8)
    calibrated = expected_calibration_error(proba, y_true.astype(np.int64))
    assert calibrated == pytest.approx(reference_ece(proba, y_true), abs=1e-12)
    assert calibrated < 0.02  # labels drawn from these probabilities: well calibrated
    sharp = proba**4 / (proba**4).sum(axis=1, keepdims=True)  # over-confident
    assert expected_calibration_error(sharp, y_true.astype(np.int64)) > 0.1
    via_metrics = classification_metrics(y_true, proba.argmax(axis=1), proba, [0, 1, 2])
    assert via_metrics["calibration_error"] == pytest.approx(calibrated)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 4), st.integers(2, 60), st.integers(0, 2**32 - 1))
def test_random_windows_match_sklearn(k: int, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = list(range(k))
    y_true = np.concatenate([classes, rng.integers(0, k, rows)])  # every class present
    y_pred = rng.integers(0, k, len(y_true))
    proba = rng.dirichlet(np.ones(k), len(y_true)).round(2)  # rounding makes ties
    proba /= proba.sum(axis=1, keepdims=True)
    ours = classification_metrics(y_true, y_pred, proba, classes)
    assert_matches(ours, sklearn_classification(y_true, y_pred, proba, classes))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(10, 3, 2000)
    y_pred = y_true + rng.normal(0.5, 1.0, 2000)
    ours = regression_metrics(y_true, y_pred)
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert ours["rmse"] == pytest.approx(skm.root_mean_squared_error(y_true, y_pred))
    assert ours["r2"] == pytest.approx(skm.r2_score(y_true, y_pred))


def test_regression_missing_and_degenerate() -> None:
    y_true = np.array([1.0, np.nan, 3.0, 4.0])
    y_pred = np.array([1.5, 2.0, np.nan, 3.0], dtype=object)
    y_pred[2] = None
    ours = regression_metrics(y_true, y_pred)
    assert ours["rows"] == 2 and ours["missing_labels"] == 1 and ours["missing_predictions"] == 1
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error([1, 4], [1.5, 3]))
    assert regression_metrics([2.0, 2.0], [2.0, 2.0])["r2"] == skm.r2_score([2.0, 2], [2.0, 2])
    assert regression_metrics([2.0, 2.0], [1.0, 2.0])["r2"] == skm.r2_score([2.0, 2], [1.0, 2])
    one = regression_metrics([1.0], [2.0])
    assert one["mae"] == 1.0 and one["r2"] is None and "two" in one["undefined"]["r2"]
    assert regression_metrics([], [])["undefined"]["mae"] == "no labelled rows"
