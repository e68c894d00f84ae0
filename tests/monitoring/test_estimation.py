"""The label-free estimate matches realised performance when only the inputs drift."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.errors import MonitoringError
from shipyard.monitoring.estimation import Calibrator, estimate_performance, performance_report
from shipyard.monitoring.performance import classification_metrics, expected_calibration_error

TOLERANCE = 0.02  # well-calibrated model, 10k current rows
TOLERANCE_CALIBRATED = 0.03  # over-confident model calibrated on a 5k reference
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
WEIGHTS = np.array([[1.5, -1.0], [-0.5, 1.2], [-1.0, -0.2]])  # 3 classes x 2 features
INTERCEPTS = np.array([0.0, 0.0, 0.8])  # every class is predicted often, before and after


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def world(rows: int, shift: float, k: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (shifted by ``shift`` sd, wider when shifted) and the true P(y | x): no concept
    drift, so any change in performance comes from where the inputs now fall."""
    x = rng.normal(shift, 1.0 + 0.2 * (shift > 0), (rows, 2))
    if k > 2:
        return x, softmax(x @ WEIGHTS.T + INTERCEPTS)
    logits = np.column_stack([np.zeros(rows), x @ [1.5, -1.0]])
    return x, softmax(logits)


def draw(truth: np.ndarray, rng: np.random.Generator, classes: list[str]) -> np.ndarray:
    picked = (truth.cumsum(axis=1) > rng.random((len(truth), 1))).argmax(axis=1)
    return np.asarray(classes, dtype=object)[picked]


def assert_close(estimated: dict, realised: dict, tolerance: float) -> None:
    for name in METRICS:
        assert abs(estimated[name] - realised[name]) <= tolerance, (
            name, estimated[name], realised[name])


def realised(proba: np.ndarray, y: np.ndarray, classes: list[str]) -> dict:
    labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return classification_metrics(y, labels, proba, classes)


@pytest.mark.parametrize("classes", [["no", "yes"], ["a", "b", "c"]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibrated_model_estimate_matches_realised_under_covariate_shift(
    classes: list[str], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    _, proba = world(10_000, shift=0.7, k=len(classes), rng=rng)
    y = draw(proba, rng, classes)  # labels from the model's own (true) probabilities
    estimate = estimate_performance(proba, classes)
    assert estimate["rows"] == 10_000 and not estimate["calibrated"]
    assert_close(estimate, realised(proba, y, classes), TOLERANCE)


@pytest.mark.parametrize("method", ["isotonic", "histogram"])
@pytest.mark.parametrize("classes", [["no", "yes"], ["a", "b", "c"]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overconfident_model_calibrated_on_reference(
    classes: list[str], seed: int, method: str
) -> None:
    rng = np.random.default_rng(seed)
    k = len(classes)

    def overconfident(truth: np.ndarray) -> np.ndarray:
        return softmax(3.0 * np.log(truth))  # same ranking, far too sure of itself

    _, truth_ref = world(5_000, shift=0.0, k=k, rng=rng)
    y_ref = draw(truth_ref, rng, classes)
    _, truth_cur = world(10_000, shift=0.7, k=k, rng=rng)
    y_cur = draw(truth_cur, rng, classes)
    proba_ref, proba_cur = overconfident(truth_ref), overconfident(truth_cur)

    calibrator = Calibrator.fit(proba_ref, y_ref, classes, method=method)  # type: ignore[arg-type]
    actual = realised(proba_cur, y_cur, classes)
    naive = estimate_performance(proba_cur, classes)
    assert naive["accuracy"] - actual["accuracy"] > 0.05  # why calibration matters
    estimate = estimate_performance(proba_cur, classes, calibrator)
    assert estimate["calibrated"]
    assert_close(estimate, actual, TOLERANCE_CALIBRATED)
    calibrated = calibrator.transform(proba_cur)
    codes = np.searchsorted(classes, y_cur.astype(str))
    assert expected_calibration_error(calibrated, codes) < expected_calibration_error(
        proba_cur, codes)


def test_report_puts_estimate_beside_realised() -> None:
    rng = np.random.default_rng(5)
    _, proba = world(4_000, shift=0.5, k=2, rng=rng)
    y = draw(proba, rng, ["no", "yes"]).astype(object)
    y[::3] = None  # labels for two rows in three, so far
    report = performance_report(proba, ["no", "yes"], y_true=y)
    assert report["estimated"]["rows"] == 4_000
    assert report["realised"]["rows"] == 4_000 - len(y[::3])
    assert report["realised"]["missing_labels"] == len(y[::3])
    for name in METRICS:
        diff = report["estimated"][name] - report["realised"][name]
        assert report["difference"][name] == pytest.approx(diff)
        assert abs(diff) < 0.03
    assert performance_report(proba, ["no", "yes"])["realised"] is None


def test_calibrator_round_trips_and_checks_classes() -> None:
    rng = np.random.default_rng(6)
    _, proba = world(2_000, shift=0.0, k=3, rng=rng)
    y = draw(proba, rng, ["a", "b", "c"])
    calibrator = Calibrator.fit(proba, y, ["a", "b", "c"])
    again = Calibrator.from_dict(calibrator.to_dict())
    np.testing.assert_allclose(again.transform(proba), calibrator.transform(proba))
    assert np.allclose(calibrator.transform(proba).sum(axis=1), 1.0)
    # the classes come from the calibrator when not given
    assert estimate_performance(proba, calibrator=calibrator)["accuracy"] == pytest.approx(
        estimate_performance(proba, ["a", "b", "c"], calibrator)["accuracy"])
    with pytest.raises(MonitoringError, match="differ"):
        estimate_performance(proba, ["x", "y", "z"], calibrator)
    with pytest.raises(MonitoringError, match="no row has a label"):
        Calibrator.fit(proba, [None] * len(proba), ["a", "b", "c"])


def test_given_predictions_and_empty_windows() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    estimate = estimate_performance(proba, [0, 1], y_pred=[0, 1, 1])  # a threshold below 0.5
    assert estimate["accuracy"] == pytest.approx((0.9 + 0.8 + 0.4) / 3)
    assert estimate["precision"] == pytest.approx((0.8 + 0.4) / 2)
    assert estimate["recall"] == pytest.approx((0.8 + 0.4) / (0.1 + 0.8 + 0.4))
    empty = estimate_performance(np.zeros((0, 2)), [0, 1])
    assert empty["rows"] == 0 and empty["accuracy"] is None
