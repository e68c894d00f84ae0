"""Label-free performance estimate for classifiers (confidence-based, as in NannyML's CBPE).

Labels arrive late or never, but a calibrated probability is an expected label: if the model
says P(spam) = 0.8 and that is calibrated, the row is 0.8 of a true positive when predicted spam.
Summing those gives the expected confusion matrix, and from it expected accuracy, precision,
recall and F1; ROC AUC uses the probabilities as soft labels over the model's own ranking.

The estimate stays right under covariate shift (new inputs, same P(y|x)) as long as the
calibration holds, which is the case the monitor cares about: the inputs drift, are the
predictions still as good? Under concept drift (P(y|x) changes) it cannot know, which is why
the monitor reports it beside realised performance whenever labels exist (``performance_report``).

Calibration is learned where labels are known (the reference): isotonic regression (scipy's
pool-adjacent-violators) or histogram binning, on P(positive) for binary models and one class
against the rest, then renormalised, for more classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import isotonic_regression

from shipyard.errors import MonitoringError
from shipyard.monitoring.performance import (
    FloatArray,
    as_column,
    classification_metrics,
    encode,
    label_key,
    one_vs_rest_auc,
    per_class_rates,
    probability_matrix,
    summarise_rates,
)

BoolArray = npt.NDArray[np.bool_]
Method = Literal["isotonic", "histogram"]
ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")


@dataclass(frozen=True, eq=False)
class Calibrator:
    """Monotone maps from a model's probabilities to calibrated ones, one per calibrated column.

    ``knots[i]`` / ``values[i]`` describe column ``columns[i]``: isotonic maps interpolate
    linearly between knots (as scikit-learn's IsotonicRegression) and clip outside them;
    histogram maps are constant on bins whose inner (right-closed) edges are the knots.
    """

    classes: tuple[str, ...]
    method: Method
    columns: tuple[int, ...]
    knots: tuple[FloatArray, ...]
    values: tuple[FloatArray, ...]

    @classmethod
    def fit(
        cls,
        proba: object,
        y_true: object,
        classes: Sequence[object],
        *,
        method: Method = "isotonic",
        bins: int = 10,
    ) -> Calibrator:
        """Learn the maps from rows with a known label (missing or unknown labels are skipped)."""
        if method not in ("isotonic", "histogram"):
            raise MonitoringError(f"unknown calibration method {method!r}")
        matrix, order = probability_matrix(proba, classes)
        names = order if order is not None else list(classes)
        codes = encode(as_column(y_true), names)
        if len(codes) != len(matrix):
            raise MonitoringError(f"y_true has {len(codes)} rows, probabilities {len(matrix)}")
        known = codes >= 0
        if not known.any():
            raise MonitoringError("cannot calibrate: no row has a label among the classes")
        matrix, codes = matrix[known], codes[known]
        columns = (1,) if matrix.shape[1] == 2 else tuple(range(matrix.shape[1]))
        maps = [
            _isotonic(matrix[:, c], codes == c) if method == "isotonic"
            else _histogram(matrix[:, c], codes == c, bins)
            for c in columns
        ]
        return cls(
            classes=tuple(label_key(c) for c in names), method=method, columns=columns,
            knots=tuple(k for k, _ in maps), values=tuple(v for _, v in maps),
        )

    def transform(self, proba: FloatArray) -> FloatArray:
        """Calibrated probabilities, rows summing to 1 (a row the maps zero out is kept as is)."""
        if proba.shape[1] != len(self.classes):
            raise MonitoringError(
                f"calibrator knows {len(self.classes)} classes, probabilities have "
                f"{proba.shape[1]} columns"
            )
        out = proba.copy()
        for column, knots, values in zip(self.columns, self.knots, self.values, strict=True):
            out[:, column] = self._apply(proba[:, column], knots, values)
        if len(self.classes) == 2:
            out[:, 0] = 1.0 - out[:, 1]
            return out
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), proba)

    def _apply(self, scores: FloatArray, knots: FloatArray, values: FloatArray) -> FloatArray:
        if self.method == "isotonic":
            return np.interp(scores, knots, values)
        return values[np.searchsorted(knots, scores, side="left")]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for storing beside a reference profile."""
        return {
            "classes": list(self.classes), "method": self.method, "columns": list(self.columns),
            "knots": [k.tolist() for k in self.knots], "values": [v.tolist() for v in self.values],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(
            classes=tuple(data["classes"]), method=data["method"], columns=tuple(data["columns"]),
            knots=tuple(np.asarray(k, dtype=np.float64) for k in data["knots"]),
            values=tuple(np.asarray(v, dtype=np.float64) for v in data["values"]),
        )


def _isotonic(scores: FloatArray, hits: BoolArray) -> tuple[FloatArray, FloatArray]:
    """Pool-adjacent-violators fit of P(hit | score); keeps only the ends of each flat block."""
    distinct, group = np.unique(scores, return_inverse=True)
    weight = np.bincount(group).astype(np.float64)
    mean = np.bincount(group, weights=hits.astype(np.float64)) / weight
    fitted = np.asarray(isotonic_regression(mean, weights=weight, increasing=True).x)
    if len(fitted) <= 2:
        return distinct, fitted
    changes = np.diff(fitted) != 0
    keep = np.concatenate([[True], changes]) | np.concatenate([changes, [True]])
    return distinct[keep], fitted[keep]


def _histogram(scores: FloatArray, hits: BoolArray, bins: int) -> tuple[FloatArray, FloatArray]:
    """Share of hits per equal-mass bin of the scores.

    Equal-mass rather than equal-width bins: a confident model puts most rows in the end bins,
    where equal widths would average very different rows together.
    """
    edges = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    bin_of = np.searchsorted(edges, scores, side="left")
    count = np.bincount(bin_of, minlength=len(edges) + 1)
    total = np.bincount(bin_of, weights=hits.astype(np.float64), minlength=len(edges) + 1)
    values = np.where(count > 0, total / np.maximum(count, 1), float(np.mean(hits)))
    return edges, values


def estimate_performance(
    proba: object,
    classes: Sequence[object] | None = None,
    calibrator: Calibrator | None = None,
    *,
    y_pred: object | None = None,
) -> dict[str, Any]:
    """Expected accuracy, precision, recall, F1 and ROC AUC without labels.

    ``proba`` as for ``classification_metrics``; the predicted class is ``y_pred`` when given,
    else the arg-max of the (uncalibrated) probabilities, which is what the model answered.
    Without a calibrator the probabilities are taken as calibrated.
    """
    if classes is None and calibrator is not None:
        classes = list(calibrator.classes)
    matrix, order = probability_matrix(proba, classes)
    names = order if order is not None else list(range(matrix.shape[1]))
    n = len(matrix)
    result: dict[str, Any] = {"rows": n, "calibrated": calibrator is not None, "undefined": {}}
    result.update(dict.fromkeys(ESTIMATED))
    if n == 0:
        result["undefined"] = dict.fromkeys(ESTIMATED, "no rows")
        return result
    expected, pred = _expected(matrix, names, calibrator, y_pred)
    k = matrix.shape[1]
    hit = expected[np.arange(n), pred]
    result["accuracy"] = float(np.mean(hit))
    rates = per_class_rates(
        np.bincount(pred, weights=hit, minlength=k).astype(np.float64),
        np.bincount(pred, minlength=k).astype(np.float64),
        expected.sum(axis=0),
    )
    result.update(summarise_rates(*rates))
    result["roc_auc"], reason = one_vs_rest_auc(matrix, expected, names)
    if reason:
        result["undefined"]["roc_auc"] = reason
    return result


def _expected(matrix: FloatArray, names: Sequence[object], calibrator: Calibrator | None,
              y_pred: object | None) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """The calibrated probabilities and the predicted class codes."""
    if calibrator is not None:
        if calibrator.classes != tuple(label_key(c) for c in names):
            raise MonitoringError(f"calibrator classes {list(calibrator.classes)} differ from "
                                f"{[label_key(c) for c in names]}")
        expected = calibrator.transform(matrix)
    else:
        expected = matrix
    pred = matrix.argmax(axis=1)
    if y_pred is not None:
        given = encode(as_column(y_pred), names)
        pred = np.where(given >= 0, given, pred)
    return expected, pred


def expected_hits(proba: object, classes: Sequence[object] | None = None,
                  calibrator: Calibrator | None = None, *,
                  y_pred: object | None = None) -> FloatArray:
    """Each row's (calibrated) probability that its prediction is right: the mean over any
    rows is their estimated accuracy (a slice's, say). Arguments as ``estimate_performance``."""
    if classes is None and calibrator is not None:
        classes = list(calibrator.classes)
    matrix, order = probability_matrix(proba, classes)
    names = order if order is not None else list(range(matrix.shape[1]))
    expected, pred = _expected(matrix, names, calibrator, y_pred)
    return np.asarray(expected[np.arange(len(matrix)), pred], dtype=np.float64)


def performance_report(
    proba: object,
    classes: Sequence[object] | None = None,
    *,
    y_true: object | None = None,
    y_pred: object | None = None,
    calibrator: Calibrator | None = None,
) -> dict[str, Any]:
    """The estimate beside realised metrics on the labelled rows, and their difference.

    ``realised`` is None until some labels exist; ``difference`` is estimate - realised for the
    metrics both define.
    """
    estimated = estimate_performance(proba, classes, calibrator, y_pred=y_pred)
    report: dict[str, Any] = {"estimated": estimated, "realised": None, "difference": {}}
    if y_true is None:
        return report
    matrix, order = probability_matrix(proba, classes)
    names = order if order is not None else list(range(matrix.shape[1]))
    labels = y_pred
    if labels is None:
        labels = np.asarray(names, dtype=object)[matrix.argmax(axis=1)]
    realised = classification_metrics(y_true, labels, matrix, names)
    report["realised"] = realised
    report["difference"] = {
        m: estimated[m] - realised[m]
        for m in ESTIMATED
        if estimated[m] is not None and realised[m] is not None
    }
    return report


__all__ = ["Calibrator", "estimate_performance", "expected_hits", "performance_report"]
