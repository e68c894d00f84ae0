"""Realised model performance once labels arrive: classification and regression metrics.

Written with numpy/scipy rather than scikit-learn because scikit-learn is an optional extra and
the monitor runs in the lean core install; the tests check every number against scikit-learn's.

Labels from feedback are messy, so the functions here are forgiving where scikit-learn raises:
- a missing label (None / NaN) drops the row and is counted (``missing_labels``);
- labels are matched by value whatever their type: ``1``, ``1.0`` and ``"1"`` are the same class,
  so ints from the signature meet floats from a Parquet log;
- a metric that is not defined for the window (ROC AUC when only one class was seen, anything on
  zero rows) is ``None`` with the reason in ``undefined`` instead of an exception, because a
  monitor must not crash on a quiet hour.

Every result is a flat JSON-able dict: ``rows``, ``missing_labels``, ``missing_predictions``, the
metrics, and ``undefined`` (metric -> reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.errors import MonitoringError
from shipyard.profiles import value_key

MISSING = -1
"""Code of a missing label (None / NaN)."""
UNKNOWN = -2
"""Code of a label that is not one of ``classes``."""

ECE_BINS = 10

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def label_key(value: object) -> str:
    """The identity of a class label: the profiles' ``value_key``, so ``1``, ``1.0`` and
    ``"1"`` are one class, as they are one category in a profile."""
    key = value_key(value)
    return "" if key is None else key


def is_missing(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """None, NaN and pandas' NA count as missing; an empty string does not."""
    if values.dtype.kind in "fc":
        return np.asarray(np.isnan(values), dtype=bool)
    if values.dtype.kind == "O":
        try:  # vectorised: None, and NaN (the only value not equal to itself)
            return np.asarray((values == None) | (values != values), dtype=bool)  # noqa: E711
        except TypeError:  # pandas' NA refuses to be a bool
            return np.fromiter(map(_missing_scalar, values), dtype=bool, count=len(values))
    return np.zeros(len(values), dtype=bool)


def _missing_scalar(value: object) -> bool:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def as_column(values: object) -> npt.NDArray[Any]:
    """A 1-D array; lists with None become object arrays."""
    array = np.asarray(values)
    if array.ndim != 1:
        array = array.reshape(-1) if array.ndim == 2 and 1 in array.shape else array
    if array.ndim != 1:
        raise MonitoringError(f"expected a 1-D column of labels, got shape {array.shape}")
    return array


def infer_classes(*columns: npt.NDArray[Any]) -> list[object]:
    """The sorted union of the non-missing labels (numbers numerically, otherwise as text)."""
    seen: dict[str, object] = {}
    for column in columns:
        present = column[~is_missing(column)]
        for value in np.unique(present) if present.dtype.kind != "O" else set(present.tolist()):
            seen.setdefault(label_key(value), value)
    values = list(seen.values())
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return sorted(values, key=float)  # type: ignore[arg-type]
    return sorted(values, key=label_key)


def encode(values: npt.NDArray[Any], classes: Sequence[object]) -> IntArray:
    """Index of each value in ``classes``; ``MISSING`` / ``UNKNOWN`` otherwise.

    Looks up each distinct value once, so a million numeric labels cost one ``np.unique``.
    """
    index = {label_key(c): i for i, c in enumerate(classes)}
    codes = np.full(len(values), MISSING, dtype=np.int64)
    present = ~is_missing(values)
    if values.dtype.kind != "O":
        distinct, inverse = np.unique(values[present], return_inverse=True)
        lookup = np.array([index.get(label_key(v), UNKNOWN) for v in distinct], dtype=np.int64)
        codes[present] = lookup[inverse] if len(distinct) else UNKNOWN
        return codes
    items = values[present].tolist()
    by_value = {v: index.get(label_key(v), UNKNOWN) for v in set(items)}
    codes[present] = np.fromiter(map(by_value.__getitem__, items), dtype=np.int64,
                                 count=len(items))
    return codes


def probability_matrix(
    proba: object, classes: Sequence[object] | None
) -> tuple[FloatArray, list[object] | None]:
    """``proba`` as an (n, k) float matrix in the order of ``classes``.

    Accepts an (n, k) array, a 1-D array of P(classes[1]) for binary models, or a mapping
    class -> column (the monitoring frame's ``proba.<class>`` columns), reordered by class.
    """
    if isinstance(proba, Mapping):
        by_key = {label_key(k): np.asarray(v, dtype=np.float64) for k, v in proba.items()}
        order = list(proba.keys()) if classes is None else list(classes)
        missing = [c for c in order if label_key(c) not in by_key]
        if missing:
            raise MonitoringError(f"no probability column for classes {missing}")
        return np.column_stack([by_key[label_key(c)] for c in order]), order
    matrix = np.asarray(proba, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = np.column_stack([1.0 - matrix, matrix])
    if matrix.ndim != 2:
        raise MonitoringError(f"probabilities must be (rows, classes), got shape {matrix.shape}")
    return matrix, None if classes is None else list(classes)


@dataclass(frozen=True)
class LabelledRows:
    """True and predicted class codes of the rows that have both, plus what was dropped."""

    true: IntArray
    pred: IntArray
    keep: npt.NDArray[np.bool_]
    classes: list[object]
    missing_labels: int
    missing_predictions: int


def labelled_rows(
    y_true: object, y_pred: object, classes: Sequence[object] | None, extra: int = 0
) -> LabelledRows:
    """Encode both label columns; ``extra`` columns of probabilities fix the class count."""
    t_raw, p_raw = as_column(y_true), as_column(y_pred)
    if len(t_raw) != len(p_raw):
        raise MonitoringError(f"y_true has {len(t_raw)} rows but y_pred has {len(p_raw)}")
    names = list(classes) if classes is not None else infer_classes(t_raw, p_raw)
    if extra and len(names) != extra:
        raise MonitoringError(
            f"probabilities have {extra} columns but the labels show {len(names)} classes "
            f"({names}); pass classes= in the order of the probability columns"
        )
    true, pred = encode(t_raw, names), encode(p_raw, names)
    keep = (true != MISSING) & (pred != MISSING)
    return LabelledRows(
        true=true[keep], pred=pred[keep], keep=keep, classes=names,
        missing_labels=int(np.sum(true == MISSING)),
        missing_predictions=int(np.sum((pred == MISSING) & (true != MISSING))),
    )


def per_class_rates(
    tp: FloatArray, predicted: FloatArray, actual: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Precision, recall, F1 per class from (possibly expected) counts; 0 where 0/0, as sklearn."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)
    return precision, recall, f1


def summarise_rates(
    precision: FloatArray, recall: FloatArray, f1: FloatArray
) -> dict[str, float]:
    """Binary: the rates of the positive class (classes[1]); otherwise the macro average."""
    if len(precision) == 2:
        return {"precision": float(precision[1]), "recall": float(recall[1]), "f1": float(f1[1])}
    return {"precision": float(np.mean(precision)), "recall": float(np.mean(recall)),
            "f1": float(np.mean(f1))}


def weighted_auc(scores: FloatArray, positive: FloatArray, negative: FloatArray) -> float | None:
    """P(score of a positive > score of a negative), ties counted half; weights may be soft.

    With 0/1 weights this is the Mann-Whitney form of ROC AUC (what sklearn's trapezoids give);
    with probabilities as weights it is the expected AUC of the CBPE estimate.
    """
    distinct, group = np.unique(scores, return_inverse=True)
    return grouped_auc(group, len(distinct), positive, negative)


def grouped_auc(group: IntArray, groups: int, positive: FloatArray,
                negative: FloatArray) -> float | None:
    """``weighted_auc`` with the scores already replaced by their rank among the distinct
    scores (``group``, ``groups`` of them): sorting once serves many weightings."""
    total_pos, total_neg = float(np.sum(positive)), float(np.sum(negative))
    if total_pos <= 0 or total_neg <= 0:
        return None
    neg_per = np.bincount(group, weights=negative, minlength=groups)
    pos_per = np.bincount(group, weights=positive, minlength=groups)
    below = np.cumsum(neg_per) - neg_per
    return float(np.sum(pos_per * (below + 0.5 * neg_per)) / (total_pos * total_neg))


def one_vs_rest_auc(
    scores: FloatArray, positive: FloatArray, classes: Sequence[object]
) -> tuple[float | None, str | None]:
    """Binary AUC on column 1, or the macro mean of one-vs-rest AUCs; (None, reason) if undefined.

    ``positive`` is (n, k): 0/1 indicators for realised AUC, probabilities for the estimate.
    """
    columns = [1] if scores.shape[1] == 2 else range(scores.shape[1])
    values, skipped = [], []
    for c in columns:
        auc = weighted_auc(scores[:, c], positive[:, c], 1.0 - positive[:, c])
        if auc is None:
            skipped.append(classes[c])
        else:
            values.append(auc)
    if not values:
        return None, "only one class present in the labels"
    if skipped:
        return float(np.mean(values)), f"left out of the average (one outcome only): {skipped}"
    return float(np.mean(values)), None


def classification_metrics(
    y_true: object,
    y_pred: object,
    proba: object | None = None,
    classes: Sequence[object] | None = None,
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC AUC, log loss and expected calibration error.

    ``classes`` gives the class order (the probability columns' order); by default the sorted
    union of the labels seen. Two classes: precision/recall/F1 of ``classes[1]`` (the positive
    class). More: macro averages over ``classes`` (a class never seen scores 0, as in
    scikit-learn). ROC AUC is one-vs-rest macro for more than two classes. Rows whose true label
    is not in ``classes`` count as errors and are left out of the probability metrics
    (``unknown_labels``).
    """
    matrix: FloatArray | None = None
    if proba is not None:
        matrix, classes = probability_matrix(proba, classes)
    rows = labelled_rows(y_true, y_pred, classes, extra=0 if matrix is None else matrix.shape[1])
    n = len(rows.true)
    result: dict[str, Any] = {
        "rows": n, "missing_labels": rows.missing_labels,
        "missing_predictions": rows.missing_predictions,
        "unknown_labels": int(np.sum(rows.true == UNKNOWN)),
    }
    undefined: dict[str, str] = {}
    names = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "calibration_error")
    result.update(dict.fromkeys(names))
    result["undefined"] = undefined
    if n == 0:
        undefined.update(dict.fromkeys(names, "no rows with both a label and a prediction"))
        return result
    k = len(rows.classes)
    known = rows.true >= 0
    tp = np.bincount(rows.true[known & (rows.true == rows.pred)], minlength=k).astype(np.float64)
    predicted = np.bincount(rows.pred[rows.pred >= 0], minlength=k).astype(np.float64)
    actual = np.bincount(rows.true[known], minlength=k).astype(np.float64)
    result["accuracy"] = float(np.mean(rows.true == rows.pred))
    result.update(summarise_rates(*per_class_rates(tp, predicted, actual)))
    if matrix is None:
        undefined.update(dict.fromkeys(names[4:], "no probabilities given"))
        return result
    if len(matrix) != len(rows.keep):
        raise MonitoringError(f"probabilities have {len(matrix)} rows, labels {len(rows.keep)}")
    p = matrix[rows.keep][known]
    true = rows.true[known]
    if len(true) == 0:
        undefined.update(dict.fromkeys(names[4:], "no row's label is one of the classes"))
        return result
    onehot = np.zeros_like(p)
    onehot[np.arange(len(true)), true] = 1.0
    result["roc_auc"], reason = one_vs_rest_auc(p, onehot, rows.classes)
    if reason:
        undefined["roc_auc"] = reason
    eps = np.finfo(np.float64).eps
    result["log_loss"] = float(-np.mean(np.log(np.clip(p[np.arange(len(true)), true],
                                                       eps, 1 - eps))))
    result["calibration_error"] = expected_calibration_error(p, true)
    return result


def confidence_bins(confidence: FloatArray, bins: int = ECE_BINS) -> IntArray:
    """Each confidence's equal-width bin, right-closed, (0.1, 0.2], the first also holding 0:
    the bins of the ECE and of the reliability table."""
    return np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)


def expected_calibration_error(proba: FloatArray, true: IntArray, bins: int = ECE_BINS) -> float:
    """ECE on the top-class confidence: sum over equal-width bins of share x |accuracy - conf.|.

    Bins are right-closed, (0.1, 0.2], with the first one also holding 0.
    """
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == true).astype(np.float64)
    bin_of = confidence_bins(confidence, bins)
    count = np.bincount(bin_of, minlength=bins)
    gap = np.abs(np.bincount(bin_of, weights=correct, minlength=bins)
                 - np.bincount(bin_of, weights=confidence, minlength=bins))
    return float(np.sum(gap) / max(int(np.sum(count)), 1))


def _as_float(values: object) -> FloatArray:
    column = as_column(values)
    if column.dtype.kind == "O":
        column = np.where(is_missing(column), np.nan, column)
    return column.astype(np.float64)


def regression_metrics(y_true: object, y_pred: object) -> dict[str, Any]:
    """MAE, RMSE and R² over rows with both a target and a prediction (NaN / None dropped).

    R² follows scikit-learn on a constant target: 1.0 when the predictions are exact, else 0.0.
    """
    true, pred = _as_float(y_true), _as_float(y_pred)
    if len(true) != len(pred):
        raise MonitoringError(f"y_true has {len(true)} rows but y_pred has {len(pred)}")
    missing_true, missing_pred = np.isnan(true), np.isnan(pred)
    keep = ~(missing_true | missing_pred)
    true, pred = true[keep], pred[keep]
    n = len(true)
    result: dict[str, Any] = {
        "rows": n, "missing_labels": int(np.sum(missing_true)),
        "missing_predictions": int(np.sum(missing_pred & ~missing_true)),
        "mae": None, "rmse": None, "r2": None, "undefined": {},
    }
    if n == 0:
        result["undefined"] = dict.fromkeys(("mae", "rmse", "r2"), "no labelled rows")
        return result
    error = true - pred
    result["mae"] = float(np.mean(np.abs(error)))
    result["rmse"] = float(np.sqrt(np.mean(error**2)))
    if n < 2:
        result["undefined"]["r2"] = "fewer than two labelled rows"
        return result
    ss_res, ss_tot = float(np.sum(error**2)), float(np.sum((true - true.mean()) ** 2))
    result["r2"] = (1.0 - ss_res / ss_tot) if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return result


CONCEPT_GAP = 0.05
"""Smallest gap between estimated and realised accuracy named a sign of concept drift."""


def concept_drift_signal(realised: float, estimated: float, rows: int, *,
                         min_gap: float = CONCEPT_GAP, z: float = 3.0) -> dict[str, Any]:
    """Realised accuracy against the label-free estimate on the same labelled rows.

    The estimate assumes the model's (calibrated) confidence still matches outcomes; inputs
    can look as they did in the reference and the estimate stay high while the relation
    between inputs and label has changed. A gap beyond both ``min_gap`` and ``z`` binomial
    standard errors of ``rows`` labels (what chance alone moves realised accuracy by) is
    ``suspected`` concept drift. ``gap`` is estimated minus realised.
    """
    gap = estimated - realised
    noise = float(np.sqrt(max(estimated * (1.0 - estimated), 0.0) / max(rows, 1)))
    threshold = max(min_gap, z * noise)
    return {"realised": realised, "estimated": estimated, "gap": gap, "rows": rows,
            "threshold": threshold, "suspected": bool(abs(gap) > threshold)}


__all__ = ["classification_metrics", "concept_drift_signal", "expected_calibration_error",
           "regression_metrics"]
