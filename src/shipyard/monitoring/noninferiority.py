"""Is a candidate's metric worse than the stable version's beyond a tolerance? (pure)

One metric per version, with its standard error, from labelled rows (`realised`: the
metrics of ``performance``) or from probabilities alone (`estimated`: the label-free
estimate of ``estimation``). Standard errors: accuracy is a proportion (the smoothed
binomial variance of ``experiments.plugin_variance``), MAE a mean of per-row absolute
errors, estimated accuracy a mean of each row's expected hit; RMSE, F1, precision, recall
and the other estimates, not means of rows, a seeded bootstrap of the same metric function
(``DRAWS`` resamples of the rows).

`compare_metrics` reads the difference in the metric's better direction, ``gain`` =
candidate - stable (stable - candidate for RMSE/MAE), with the normal approximation
se = sqrt(se_s^2 + se_c^2), and reports both one-sided tests:

- non-inferiority, H0: gain <= -tolerance; ``p_noninferiority`` = P(Z >= (gain + tol)/se);
  non-inferiority is *shown* when it is <= alpha (the interval's lower end above -tol);
- worse, H0: gain >= 0; ``p_worse`` = P(Z <= gain / se).

**Decision** (the drift rule, real AND material): fail when the candidate is shown worse
(``p_worse <= fail_alpha``, 0.01) AND the estimated loss exceeds the tolerance; otherwise
pass. Why not "pass only once non-inferiority is shown": at 0.9 accuracy and 1,000 labels a
side (se 0.013) a candidate equal to stable shows non-inferiority at tolerance 0.02 in 44%
of intervals; a canary that waits on 56% of healthy steps teaches people to skip it. This
rule fails an equal candidate in at most ``fail_alpha`` of intervals whatever the volume,
and a 5-point loss at 1,000 labels a side in ~90% (the information limit there: any rule
that passes an equal candidate 98.5% of the time fails that loss at most ~92%).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import ndtr, ndtri

from shipyard.errors import MonitoringError
from shipyard.monitoring.estimation import estimate_performance
from shipyard.monitoring.experiments import plugin_variance
from shipyard.monitoring.guardrails import FAIL, PASS
from shipyard.monitoring.performance import (
    as_column,
    classification_metrics,
    encode,
    infer_classes,
    is_missing,
    regression_metrics,
)
from shipyard.types import Array

Outcome = Literal["pass", "fail", "wait"]
CLASSIFICATION_METRICS = ("accuracy", "f1", "precision", "recall")
REGRESSION_METRICS = ("rmse", "mae")
LOWER_IS_BETTER = frozenset(REGRESSION_METRICS)
DRAWS = 200
"""Bootstrap resamples for a metric that is not a mean of rows."""
ALPHA = 0.05
"""Level of the shown interval and of 'non-inferiority shown'."""
FAIL_ALPHA = 0.01
"""How sure the data must be that the candidate is worse before a check fails."""


@dataclass(frozen=True)
class MetricEstimate:
    """One version's metric over ``rows`` rows, and its standard error (None: no rows)."""

    metric: str
    value: float | None
    se: float | None
    rows: int
    method: str


def is_classification_metric(metric: str) -> bool:
    if metric in CLASSIFICATION_METRICS:
        return True
    if metric in REGRESSION_METRICS:
        return False
    raise MonitoringError(f"unknown quality metric {metric!r}; use one of "
                          f"{', '.join(CLASSIFICATION_METRICS + REGRESSION_METRICS)}")


def shared_classes(class_labels: Sequence[str] | None, *columns: Any) -> list[object]:
    """The class order both versions are measured in: the model's labels when known, else
    the sorted union of every label seen (so a macro average means the same on each side)."""
    if class_labels:
        return list(class_labels)
    return infer_classes(*(as_column(c) for c in columns))


def realised(metric: str, truth: Any, predictions: Any, classes: Sequence[object] | None,
             *, seed: int = 0) -> MetricEstimate:
    """The metric over the rows with a label and a prediction (missing ones dropped)."""
    t, p = as_column(truth), as_column(predictions)
    if is_classification_metric(metric):
        result = classification_metrics(t, p, classes=classes)
        rows, value = int(result["rows"]), result[metric]
        if value is None or rows == 0:
            return MetricEstimate(metric, None, None, rows, "none")
        if metric == "accuracy":
            var = float(plugin_variance("proportion", rows, value))
            return MetricEstimate(metric, float(value), (var / rows) ** 0.5, rows, "binomial")
        keep = np.flatnonzero(~(is_missing(t) | is_missing(p)))
        return MetricEstimate(metric, float(value), _bootstrap_se(
            lambda i: classification_metrics(t[keep[i]], p[keep[i]], classes=classes)[metric],
            keep.size, seed), rows, "bootstrap")
    result = regression_metrics(t, p)
    rows, value = int(result["rows"]), result[metric]
    if value is None or rows == 0:
        return MetricEstimate(metric, None, None, rows, "none")
    error = _float(t) - _float(p)
    error = error[np.isfinite(error)]
    if metric == "mae":
        sd = float(np.abs(error).std(ddof=1)) if rows > 1 else 0.0
        return MetricEstimate(metric, float(value), sd / rows ** 0.5, rows, "mean")
    return MetricEstimate(metric, float(value), _bootstrap_se(
        lambda i: float(np.sqrt(np.mean(error[i] ** 2))), rows, seed), rows, "bootstrap")


def estimated(metric: str, probabilities: Array, classes: Sequence[object] | None,
              predictions: Array | None, *, seed: int = 0) -> MetricEstimate:
    """The label-free estimate of ``metric`` (accuracy, precision, recall or F1)."""
    proba = np.asarray(probabilities, dtype=np.float64)
    pred = predictions if predictions is not None and len(predictions) == len(proba) else None
    result = estimate_performance(proba, classes, y_pred=pred)
    value, rows = result[metric], int(result["rows"])
    if value is None or rows == 0:
        return MetricEstimate(metric, None, None, rows, "none")
    if metric == "accuracy":  # a mean of each row's expected hit: its sd over sqrt(rows)
        chosen = proba.argmax(axis=1)
        if pred is not None and classes is not None:
            given = encode(as_column(pred), classes)
            chosen = np.where(given >= 0, given, chosen)
        hits = proba[np.arange(rows), chosen]
        sd = float(hits.std(ddof=1)) if rows > 1 else 0.0
        return MetricEstimate(metric, float(value), sd / rows ** 0.5, rows, "mean")

    def draw(i: Array) -> float | None:
        again = estimate_performance(proba[i], classes, y_pred=None if pred is None
                                     else as_column(pred)[i])
        value = again[metric]
        return None if value is None else float(value)

    return MetricEstimate(metric, float(value), _bootstrap_se(draw, rows, seed), rows,
                          "bootstrap")


def _float(values: Array) -> Array:
    column = np.asarray(values)
    if column.dtype.kind == "O":
        column = np.where(column == None, np.nan, column)  # noqa: E711
    return column.astype(np.float64)


def _bootstrap_se(statistic: Callable[[Array], float | None], rows: int, seed: int) -> float:
    if rows < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, rows, rows)) for _ in range(DRAWS)]
    finite = np.array([v for v in values if v is not None], dtype=np.float64)
    return float(finite.std(ddof=1)) if finite.size > 1 else 0.0


def compare_metrics(stable: MetricEstimate, candidate: MetricEstimate, tolerance: float, *,
                    alpha: float = ALPHA, fail_alpha: float = FAIL_ALPHA
                    ) -> tuple[Outcome, str, dict[str, Any]]:
    """(outcome 'pass' | 'fail', reason, numbers) of the candidate against stable; both
    estimates must have a value (see the module docstring for the rule)."""
    if stable.value is None or candidate.value is None or stable.se is None \
            or candidate.se is None:
        raise MonitoringError("compare_metrics needs a value and a standard error on each side")
    higher = stable.metric not in LOWER_IS_BETTER
    difference = candidate.value - stable.value
    gain = difference if higher else -difference
    se = (stable.se ** 2 + candidate.se ** 2) ** 0.5
    z = float(ndtri(1 - alpha))
    if se > 0:
        p_ni = float(ndtr(-(gain + tolerance) / se))
        p_worse = float(ndtr(gain / se))
    else:
        p_ni = 0.0 if gain > -tolerance else 1.0
        p_worse = 0.0 if gain < 0 else 1.0
    numbers: dict[str, Any] = {
        "metric": stable.metric, "higher_is_better": higher, "stable": stable.value,
        "candidate": candidate.value, "difference": difference,
        "interval": [difference - z * se, difference + z * se], "confidence": 1 - 2 * alpha,
        "se": se, "tolerance": tolerance, "p_noninferiority": p_ni, "p_worse": p_worse,
        "noninferior": p_ni <= alpha, "rows_stable": stable.rows,
        "rows_candidate": candidate.rows, "fail_alpha": fail_alpha,
    }
    said = (f"{stable.metric} {candidate.value:.4g} against stable's {stable.value:.4g} "
            f"(difference {difference:+.4g}, tolerance {tolerance:g})")
    if p_worse <= fail_alpha and gain < -tolerance:
        return FAIL, f"worse beyond the tolerance: {said}, p = {p_worse:.2g}", numbers
    if p_ni <= alpha:
        return PASS, f"non-inferior: {said}, p = {p_ni:.2g}", numbers
    return PASS, (f"not shown worse beyond the tolerance: {said}; non-inferiority not shown "
                  f"yet (p = {p_ni:.2g})"), numbers
