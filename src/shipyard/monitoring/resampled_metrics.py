"""A classifier's metrics on bootstrap resamples, fast: the rows are encoded, sorted and
binned once, and each resample is only a count per row (how often it was drawn), so every
metric becomes a weighted sum. The values equal ``performance.classification_metrics`` on
the resampled rows (``tests/monitoring/test_resampled_metrics.py`` checks it resample by
resample); what changes is the cost: no label encoding, no sort, no ``np.unique`` per
resample (about 10x less time on 200k rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shipyard.monitoring.performance import (
    ECE_BINS,
    confidence_bins,
    grouped_auc,
    labelled_rows,
    per_class_rates,
    probability_matrix,
    summarise_rates,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
NAMES = ("f1", "precision", "recall", "roc_auc", "log_loss", "calibration_error")


class ResampledClassification:
    """``self(indices)``: the metrics of ``NAMES`` on the rows at ``indices`` (a resample,
    indices repeat), as ``classification_metrics(truth[i], pred[i], proba[i], classes)``."""

    def __init__(self, truth: object, pred: object, proba: object | None,
                 classes: Sequence[object] | None) -> None:
        matrix = None
        if proba is not None:
            matrix, classes = probability_matrix(proba, classes)
        rows = labelled_rows(truth, pred, classes, extra=0 if matrix is None else
                             matrix.shape[1])
        self.n = len(rows.keep)
        self.keep = rows.keep
        self.k = len(rows.classes)
        self.true, self.pred = rows.true, rows.pred
        self.known = self.true >= 0
        self.hit = self.known & (self.true == self.pred)
        self.predicted = self.pred >= 0
        self.has_proba = matrix is not None
        if matrix is None:
            return
        p = matrix[rows.keep][self.known]
        true = self.true[self.known]
        eps = np.finfo(np.float64).eps
        self.nll = -np.log(np.clip(p[np.arange(len(true)), true], eps, 1 - eps))
        confidence = p.max(axis=1)
        self.confidence = confidence
        self.correct = (p.argmax(axis=1) == true).astype(np.float64)
        self.ece_bin = confidence_bins(confidence)
        columns = [1] if p.shape[1] == 2 else range(p.shape[1])
        # per AUC column: each row's group of tied scores, and whether it is the class
        self.auc: list[tuple[IntArray, int, npt.NDArray[np.bool_]]] = []
        for c in columns:
            distinct, group = np.unique(p[:, c], return_inverse=True)
            self.auc.append((group.astype(np.int64), len(distinct), true == c))

    def __call__(self, indices: IntArray) -> dict[str, float | None]:
        drawn = np.bincount(indices, minlength=self.n).astype(np.float64)[self.keep]
        out: dict[str, float | None] = dict.fromkeys(NAMES)
        if drawn.sum() == 0:
            return out
        tp = _weighted_counts(self.true[self.hit], drawn[self.hit], self.k)
        predicted = _weighted_counts(self.pred[self.predicted], drawn[self.predicted], self.k)
        actual = _weighted_counts(self.true[self.known], drawn[self.known], self.k)
        out.update(summarise_rates(*per_class_rates(tp, predicted, actual)))
        weight = drawn[self.known]
        total = float(weight.sum())
        if not self.has_proba or total == 0:
            return out
        out["log_loss"] = float(np.sum(weight * self.nll) / total)
        gap = np.abs(np.bincount(self.ece_bin, weights=weight * self.correct,
                                 minlength=ECE_BINS)
                     - np.bincount(self.ece_bin, weights=weight * self.confidence,
                                   minlength=ECE_BINS))
        out["calibration_error"] = float(np.sum(gap) / max(total, 1.0))
        out["roc_auc"] = self._auc(weight)
        return out

    def _auc(self, weight: FloatArray) -> float | None:
        """``one_vs_rest_auc`` with each row weighted by how often it was drawn."""
        found = [grouped_auc(group, groups, weight * positive, weight * ~positive)
                 for group, groups, positive in self.auc]
        values = [v for v in found if v is not None]
        return float(np.mean(values)) if values else None


def _weighted_counts(codes: IntArray, weights: FloatArray, k: int) -> FloatArray:
    return np.bincount(codes, weights=weights, minlength=k).astype(np.float64)
