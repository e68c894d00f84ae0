"""Realised performance per slice, with intervals, and each column's worst slice (issue 18).
Pure numpy: the rows' slice labels (``slicing.assign_slices``) and outcomes in, a JSON-able
report out.

Per slice: its rows, its labelled rows and each metric with a ``level`` interval: accuracy
exact (Clopper-Pearson, ``evaluation_stats``); F1 by bootstrap, drawn as multinomial
resamples of the confusion matrix (the same distribution as resampling rows, at a cost that
does not grow with them); MAE and RMSE by bootstrap (``evaluation_stats``) up to ``LARGE``
labelled rows, by the normal approximation beyond. F1 in a slice averages the classes the
slice shows (in its labels or predictions): a slice of three of ten classes is not marked
down for the seven it never sees.

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
from shipyard.monitoring.evaluation_stats import (
    MAX_UNDEFINED,
    Interval,
    bootstrap,
    exact_proportion,
)

CLASSIFICATION = ("accuracy", "f1")
REGRESSION = ("mae", "rmse")
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "mae": False, "rmse": False}
MIN_LABELLED = 30
LEVEL = 0.95
RESAMPLES = 500
MAX_SLICES = 50
"""Slices kept per column, the largest first; the others are counted as omitted."""
LARGE = 5000
"""Labelled rows beyond which MAE and RMSE take the normal approximation, not a bootstrap
(whose resamples would hold ``RESAMPLES`` times the rows)."""
CELL_BUDGET = 2_000_000  # resampled confusion cells held at once (F1)

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
            return f1_interval(true, pred, self.classes, level=level, resamples=resamples,
                               seed=seed)
        statistic = _mae if metric == "mae" else _rmse
        if len(rows) > LARGE:
            return _normal_interval(metric, true - pred, level)
        return bootstrap(lambda i: statistic(true[i], pred[i]), len(rows), level=level,
                         count=resamples, seed=seed)


def _cell_counts(true: IntArray, pred: IntArray, classes: int,
                 ) -> tuple[IntArray, IntArray, IntArray]:
    """The confusion matrix's non-empty cells: true class, predicted class, rows. A code
    below 0 (no known class) becomes class ``classes``, which F1 never counts as right."""
    k = max(classes, 1)
    t = np.where(true >= 0, true, k).astype(np.int64)
    p = np.where(pred >= 0, pred, k).astype(np.int64)
    cells, counts = np.unique(t * (k + 1) + p, return_counts=True)
    return cells // (k + 1), cells % (k + 1), counts.astype(np.int64)


def _f1_of_cells(cell_true: IntArray, cell_pred: IntArray, counts: npt.NDArray[Any],
                 classes: int) -> FloatArray:
    """F1 of each row of ``counts`` (resamples x cells), NaN where undefined. Two classes:
    the F1 of the second (the positive class, as ``performance``), undefined when it is
    neither true nor predicted; more: the macro F1 over the classes the rows show. A label
    that is no known class only counts as an error."""
    k = max(classes, 1)
    draws = counts.shape[0]
    offset = (np.arange(draws, dtype=np.int64) * (k + 1))[:, None]

    def per_class(index: IntArray, weights: npt.NDArray[Any]) -> FloatArray:
        flat = np.bincount((offset + index[None, :]).ravel(), weights=weights.ravel(),
                           minlength=draws * (k + 1))
        return np.asarray(flat.reshape(draws, k + 1)[:, :k], dtype=np.float64)

    right = cell_true == cell_pred
    tp = per_class(cell_true[right], counts[:, right])
    total = per_class(cell_pred, counts) + per_class(cell_true, counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = 2 * tp / total
        if classes == 2:
            return np.asarray(rates[:, 1], dtype=np.float64)
        shown = total > 0
        return np.asarray(np.where(shown, rates, 0.0).sum(axis=1) / shown.sum(axis=1),
                          dtype=np.float64)


def f1_interval(true: IntArray, pred: IntArray, classes: int, *, level: float = LEVEL,
                resamples: int = RESAMPLES, seed: int = 0) -> Interval | None:
    """F1 with its bootstrap percentile interval. F1 depends on the rows only through the
    confusion matrix, so resampling rows is drawing the matrix's cells from a multinomial:
    the same distribution as ``evaluation_stats.bootstrap``, at a cost that does not grow
    with the rows. None when F1 is undefined, or on more than ``MAX_UNDEFINED`` of the
    resamples."""
    cell_true, cell_pred, counts = _cell_counts(true, pred, classes)
    estimate = _f1_of_cells(cell_true, cell_pred, counts[None, :], classes)[0]
    if not np.isfinite(estimate):
        return None
    rng = np.random.default_rng(seed)
    chunk = max(1, CELL_BUDGET // len(counts))
    values = np.concatenate([
        _f1_of_cells(cell_true, cell_pred, rng.multinomial(
            int(counts.sum()), counts / counts.sum(), size=min(chunk, resamples - done)),
            classes) for done in range(0, resamples, chunk)])
    kept = values[np.isfinite(values)]
    if len(kept) < (1.0 - MAX_UNDEFINED) * resamples:
        return None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(kept, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high), level,
                    f"bootstrap percentile ({resamples} multinomial resamples of the "
                    "confusion matrix)")


def _normal_interval(metric: str, errors: FloatArray, level: float) -> Interval:
    """MAE or RMSE of many rows (more than ``LARGE``): the central limit theorem's interval
    of the mean absolute (or squared) error, the latter's square-rooted."""
    from scipy import stats

    values = np.abs(errors) if metric == "mae" else errors ** 2
    mean = float(np.mean(values))
    half = float(stats.norm.ppf(0.5 + level / 2.0) * np.std(values, ddof=1)
                 / np.sqrt(len(values)))
    low, high = max(0.0, mean - half), mean + half
    if metric == "rmse":
        mean, low, high = np.sqrt(mean), np.sqrt(low), np.sqrt(high)
    return Interval(float(mean), float(low), float(high), level,
                    f"normal approximation (over {LARGE} rows)")


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
