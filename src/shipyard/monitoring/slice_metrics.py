"""Realised performance per slice, with intervals, and each column's worst slice (issue 18).
Pure numpy: the rows' slice labels (``slicing.assign_slices``) and outcomes in, a JSON-able
report out.

Per slice: its rows, its labelled rows and each metric with a ``level`` interval: accuracy
exact (Clopper-Pearson), F1, MAE and RMSE by bootstrap (``evaluation_stats``). F1 in a slice
averages the classes the slice shows (in its labels or predictions): a slice of three of ten
classes is not marked down for the seven it never sees.

Small slices never alarm on noise:

- a slice with fewer than ``min_labelled`` labelled rows is reported with its interval but
  is not *eligible*: its metric is None for alert rules and it cannot be the worst slice;
- the worst slice of a column is judged on its interval's bound on the favourable side, the
  upper bound of a score (accuracy, F1) and the lower bound of an error (MAE, RMSE):
  ``worst_slice_accuracy(cut)`` is the smallest upper bound among the eligible slices, so
  ``worst_slice_accuracy(cut) < 0.8`` holds only when some slice is below 0.8 beyond its
  own uncertainty, not merely unlucky.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.errors import MonitoringError
from shipyard.monitoring.evaluation_stats import Interval, bootstrap, exact_proportion

CLASSIFICATION = ("accuracy", "f1")
REGRESSION = ("mae", "rmse")
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "mae": False, "rmse": False}
MIN_LABELLED = 30
LEVEL = 0.95
RESAMPLES = 500
MAX_SLICES = 50
"""Slices kept per column, the largest first; the others are counted as omitted."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Outcomes:
    """One window's rows: which are labelled, and the truth beside the prediction.

    Classification: ``true`` and ``pred`` are class codes (``performance.encode``: a label
    that is no known class is negative and counts as an error). Regression: floats."""

    task: str
    labelled: BoolArray
    true: npt.NDArray[Any]
    pred: npt.NDArray[Any]
    classes: int = 0  # classification: how many classes the codes index

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise MonitoringError(f"slice metrics are for classification or regression, not "
                                  f"{self.task!r}")
        if not len(self.labelled) == len(self.true) == len(self.pred):
            raise MonitoringError("outcomes need as many labels as predictions and rows")

    @property
    def metrics(self) -> tuple[str, ...]:
        return CLASSIFICATION if self.task == "classification" else REGRESSION

    def interval(self, metric: str, rows: IntArray, *, level: float = LEVEL,
                 resamples: int = RESAMPLES, seed: int = 0) -> Interval | None:
        """``metric`` on the labelled ``rows`` with its interval; None when undefined."""
        true, pred = self.true[rows], self.pred[rows]
        if len(rows) == 0:
            return None
        if metric == "accuracy":
            return exact_proportion(int(np.sum((true == pred) & (true >= 0))), len(rows),
                                    level)
        if metric == "f1":
            k = self.classes
            return bootstrap(lambda i: _f1(true[i], pred[i], k), len(rows), level=level,
                             count=resamples, seed=seed)
        statistic = _mae if metric == "mae" else _rmse
        return bootstrap(lambda i: statistic(true[i], pred[i]), len(rows), level=level,
                         count=resamples, seed=seed)


def _f1(true: IntArray, pred: IntArray, classes: int) -> float | None:
    """Two classes: the F1 of the second (the positive class, as ``performance``), None
    when it is neither true nor predicted; more: the macro F1 over the classes the rows
    show. Codes below 0 (a label that is no known class) only count as errors."""
    size = max(classes, 1)
    tp = np.bincount(true[(true == pred) & (true >= 0)], minlength=size)
    predicted = np.bincount(pred[pred >= 0], minlength=size)
    actual = np.bincount(true[true >= 0], minlength=size)
    total = predicted + actual
    if classes == 2:
        return None if total[1] == 0 else float(2 * tp[1] / total[1])
    shown = total > 0
    return float(np.mean(2 * tp[shown] / total[shown])) if shown.any() else None


def _mae(true: FloatArray, pred: FloatArray) -> float:
    return float(np.mean(np.abs(true - pred)))


def _rmse(true: FloatArray, pred: FloatArray) -> float:
    return float(np.sqrt(np.mean((true - pred) ** 2)))


@dataclass(frozen=True)
class SliceResult:
    """One slice of one column: its rows, labelled rows, metrics (None when undefined) and
    label-free estimates (classifiers)."""

    column: str
    slice: str
    rows: int
    labelled: int
    eligible: bool  # labelled >= min_labelled: its metrics reach alert rules
    metrics: Mapping[str, Interval | None]
    estimated: Mapping[str, float | None] = field(default_factory=dict)
    estimable: bool = False  # rows >= min_labelled: its estimates reach alert rules

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slice": self.slice, "rows": self.rows, "labelled": self.labelled,
            "eligible": self.eligible,
            "metrics": {m: None if i is None else _interval(i) for m, i in self.metrics.items()}}
        if self.estimated:
            out["estimated"] = dict(self.estimated)
        return out


def _interval(interval: Interval) -> dict[str, float]:
    return {"estimate": interval.estimate, "low": interval.low, "high": interval.high}


@dataclass(frozen=True)
class WorstSlice:
    """A column's worst eligible slice for one metric; ``bound`` decides (see the module)."""

    column: str
    metric: str
    slice: str
    estimate: float
    bound: float
    labelled: int

    def to_dict(self) -> dict[str, Any]:
        return {"slice": self.slice, "estimate": self.estimate, "bound": self.bound,
                "labelled": self.labelled}

    def describe(self) -> str:
        side = "upper" if HIGHER_IS_BETTER[self.metric] else "lower"
        return (f"worst slice {self.column}={self.slice}: {self.metric} "
                f"{self.estimate:.4g} ({side} bound {self.bound:.4g}) on {self.labelled} "
                f"labelled rows")


@dataclass(frozen=True)
class ColumnSlices:
    """Every slice of one column (the ``MAX_SLICES`` largest) and its worst per metric."""

    column: str
    slices: tuple[SliceResult, ...]
    worst: Mapping[str, WorstSlice | None]
    omitted_slices: int = 0
    omitted_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slices": [s.to_dict() for s in self.slices],
            "worst": {m: None if w is None else w.to_dict() for m, w in self.worst.items()}}
        if self.omitted_slices:
            out["omitted"] = {"slices": self.omitted_slices, "rows": self.omitted_rows}
        return out


def worst_slice(results: tuple[SliceResult, ...], metric: str) -> WorstSlice | None:
    """The eligible slice whose favourable bound is worst; None when no slice is eligible."""
    higher = HIGHER_IS_BETTER[metric]
    best: WorstSlice | None = None
    for result in results:
        interval = result.metrics.get(metric)
        if not result.eligible or interval is None:
            continue
        bound = interval.high if higher else interval.low
        if best is None or (bound < best.bound if higher else bound > best.bound):
            best = WorstSlice(result.column, metric, result.slice, interval.estimate, bound,
                              result.labelled)
    return best


def column_slices(column: str, labels: npt.NDArray[np.str_], outcomes: Outcomes, *,
                  estimates: Mapping[str, npt.NDArray[np.float64]] | None = None,
                  min_labelled: int = MIN_LABELLED, level: float = LEVEL,
                  resamples: int = RESAMPLES, max_slices: int = MAX_SLICES,
                  order: Sequence[str] = ()) -> ColumnSlices:
    """The slices of one column: ``labels`` is one slice label per row (``assign_slices``);
    ``estimates`` maps an estimated metric to its per-row expected value (a classifier's
    calibrated probability of being right, whose slice mean is its estimated accuracy).
    Slices are listed in ``order`` (a numeric column's bins), the others after it by name."""
    if len(labels) != len(outcomes.labelled):
        raise MonitoringError(f"slice column {column!r} has {len(labels)} labels for "
                              f"{len(outcomes.labelled)} rows")
    names, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    largest = np.argsort(-counts, kind="stable")
    kept, dropped = largest[:max_slices], largest[max_slices:]
    results = []
    rank = {label: i for i, label in enumerate(order)}
    for seed, index in enumerate(sorted(kept.tolist(), key=lambda i: (
            rank.get(str(names[i]), len(rank)), str(names[i])))):
        members = inverse.reshape(-1) == index
        rows = np.flatnonzero(members & outcomes.labelled).astype(np.int64)
        metrics = {m: outcomes.interval(m, rows, level=level, resamples=resamples, seed=seed)
                   for m in outcomes.metrics}
        estimated = {m: float(np.mean(v[members])) for m, v in (estimates or {}).items()}
        results.append(SliceResult(column, str(names[index]), int(counts[index]), len(rows),
                                   len(rows) >= min_labelled, metrics, estimated,
                                   int(counts[index]) >= min_labelled))
    found = tuple(results)
    return ColumnSlices(column, found, {m: worst_slice(found, m) for m in outcomes.metrics},
                        len(dropped), int(counts[dropped].sum()))


def slice_metrics(report: Mapping[str, ColumnSlices]) -> dict[str, float | None]:
    """The flat metrics alert rules read: ``METRIC(slice=COLUMN:SLICE)`` (the estimate; None
    for a slice too small to be eligible), ``worst_slice_METRIC(COLUMN)`` (the worst eligible
    slice's bound; None without one) and ``estimated_M(slice=COLUMN:SLICE)``."""
    out: dict[str, float | None] = {}
    for column, found in report.items():
        for result in found.slices:
            where = f"slice={column}:{result.slice}"
            for metric, interval in result.metrics.items():
                value = None if interval is None or not result.eligible else interval.estimate
                out[f"{metric}({where})"] = value
            for metric, estimate in result.estimated.items():
                out[f"{metric}({where})"] = estimate if result.estimable else None
        for metric, worst in found.worst.items():
            out[f"worst_slice_{metric}({column})"] = None if worst is None else worst.bound
    return out
