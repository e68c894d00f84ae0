"""The metrics an alert rule may name, and which of them apply to which task. Pure.

The monitor writes a flat metrics mapping per window (``service/monitor_analysis.py``); a
rule that names anything else would never fire, silently. So rules are checked twice:

- when the config is parsed (:func:`check_metric_names`): the metric must exist, take a
  column where it needs one (``missing_share(age)``) and none where it does not;
- once the endpoint's model is known (:func:`check_task`): ``accuracy`` means nothing to a
  regressor and ``mae`` nothing to a classifier;
- against the monitor's slice columns (:func:`check_slice_columns`): ``worst_slice_f1(cut)``
  and ``f1(slice=cut:Fair)`` need ``cut`` among them.

Both raise :class:`AlertError` naming the rule and listing the valid names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from shipyard.monitoring.alert_rules import AlertError, AlertRule

GENERAL = ("rows", "requests", "labelled", "p50_latency_ms", "p99_latency_ms",
           "mean_latency_ms", "drift_share", "dataset_drift", "drifted_columns",
           "prediction_drift", "target_drift", "quality_issues", "outlier_share",
           "extraction_flagged_keys")
"""Every window's metrics, whatever the model does."""
PER_COLUMN = ("drifted", "missing_share", "out_of_range_share", "new_category_share")
"""Metrics of one input column: ``METRIC(COLUMN)``."""
PER_KEY = ("extraction_score",)
"""Per API key: ``METRIC(KEY)`` is one key's (by name), ``METRIC`` the highest of them."""
CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
                  "calibration_error")
"""Realised classification metrics (labelled rows); ``METRIC(vN)`` per model version."""
ESTIMATED = ("estimated_accuracy", "estimated_precision", "estimated_recall",
             "estimated_f1", "estimated_roc_auc", "accuracy_gap", "concept_drift")
"""A classifier's label-free estimate and how far realised accuracy falls below it."""
REGRESSION = ("mae", "rmse", "r2")
"""Realised regression metrics (labelled rows); ``METRIC(vN)`` per model version."""

SLICED = ("accuracy", "f1", "mae", "rmse", "estimated_accuracy")
"""Metrics also written per slice: ``METRIC(slice=COLUMN:SLICE)``."""
WORST_SLICE = ("worst_slice_accuracy", "worst_slice_f1")
"""A classifier's worst slice of a slice column: ``METRIC(COLUMN)`` (``slice_metrics``)."""
WORST_SLICE_REGRESSION = ("worst_slice_mae", "worst_slice_rmse")
"""A regressor's worst slice of a slice column: ``METRIC(COLUMN)``."""

TASKS = ("classification", "regression")
_VERSION = re.compile(r"v\d+")
_SLICE_PREFIX = "slice="


def metric_names(task: str | None = None) -> tuple[str, ...]:
    """The metric names a rule may use for ``task`` (None or ``other``: every task's)."""
    if task == "classification":
        return GENERAL + PER_KEY + PER_COLUMN + CLASSIFICATION + ESTIMATED + WORST_SLICE
    if task == "regression":
        return GENERAL + PER_KEY + PER_COLUMN + REGRESSION + WORST_SLICE_REGRESSION
    return (GENERAL + PER_KEY + PER_COLUMN + CLASSIFICATION + ESTIMATED + REGRESSION
            + WORST_SLICE + WORST_SLICE_REGRESSION)


def _listing(task: str | None) -> str:
    names = [f"{n}(COLUMN)" if n in PER_COLUMN + WORST_SLICE + WORST_SLICE_REGRESSION
             else f"{n}[(KEY)]" if n in PER_KEY else n for n in metric_names(task)]
    return ", ".join(names) + "; per slice: " + ", ".join(
        f"{n}(slice=COLUMN:SLICE)" for n in SLICED if n in metric_names(task))


def _slice_column(rule: AlertRule) -> str | None:
    """The slice column a rule reads (``worst_slice_f1(cut)``, ``f1(slice=cut:Fair)``)."""
    if rule.column is None:
        return None
    if rule.metric in WORST_SLICE + WORST_SLICE_REGRESSION:
        return rule.column
    if rule.column.startswith(_SLICE_PREFIX):
        return rule.column[len(_SLICE_PREFIX):].split(":", 1)[0]
    return None


def _hint(metric: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(metric, list(names), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def check_metric_names(rules: Iterable[AlertRule]) -> None:
    """Every rule names a metric the monitor writes, with a column exactly where one is
    needed. Raises :class:`AlertError` listing the valid names."""
    known = metric_names()
    for rule in rules:
        where = f"alert rule {rule.name!r}"
        if rule.metric not in known:
            raise AlertError(f"{where}: unknown metric {rule.metric!r}"
                             f"{_hint(rule.metric, known)}; valid metrics: {_listing(None)}")
        if rule.metric in PER_COLUMN and rule.column is None:
            raise AlertError(f"{where}: {rule.metric} is per input column; write "
                             f"{rule.metric}(COLUMN)")
        if rule.metric in WORST_SLICE + WORST_SLICE_REGRESSION:
            if rule.column is None or rule.column.startswith(_SLICE_PREFIX):
                raise AlertError(f"{where}: {rule.metric} is per slice column; write "
                                 f"{rule.metric}(COLUMN), e.g. {rule.metric}(cut)")
            continue
        if rule.column is not None and rule.column.startswith(_SLICE_PREFIX):
            if rule.metric not in SLICED:
                raise AlertError(f"{where}: {rule.metric} is not computed per slice; per "
                                 f"slice: {', '.join(SLICED)}")
            continue
        if rule.metric in CLASSIFICATION + REGRESSION:
            if rule.column is not None and not _VERSION.fullmatch(rule.column):
                raise AlertError(f"{where}: {rule.metric}(...) takes a model version such "
                                 f"as {rule.metric}(v2), not {rule.column!r}")
        elif rule.metric not in PER_COLUMN + PER_KEY and rule.column is not None:
            raise AlertError(f"{where}: {rule.metric} takes no column; write "
                             f"{rule.metric} {rule.op} ...")


def check_slice_columns(rules: Iterable[AlertRule], slices: Iterable[str]) -> None:
    """Every per-slice rule names one of the monitor's slice columns (its ``slices``): a
    column that is not sliced has no slice metrics, and the rule would never fire."""
    known = list(slices)
    for rule in rules:
        column = _slice_column(rule)
        if column is not None and column not in known:
            listed = ", ".join(known) if known else "none (set the monitor's slices)"
            raise AlertError(f"alert rule {rule.name!r}: {column!r} is not a slice column; "
                             f"slice columns: {listed}")


def check_task(rules: Iterable[AlertRule], task: str | None, *, what: str = "the model") -> None:
    """Every rule applies to ``task`` (``classification`` or ``regression``; anything else
    is not checked). Raises :class:`AlertError` naming the rule and the valid names."""
    if task not in TASKS:
        return
    valid = metric_names(task)
    for rule in rules:
        if rule.metric not in valid:
            raise AlertError(f"alert rule {rule.name!r}: {rule.metric} does not apply to "
                             f"{what}, a {task} model; valid metrics for {task}: "
                             f"{_listing(task)}")


def check_columns(rules: Iterable[AlertRule], columns: Iterable[str] | None, *,
                  what: str = "the model") -> None:
    """Every per-column rule (``missing_share(age)``) names one of ``columns``, the model's
    inputs: a rule on a column the monitor never writes would never fire, silently. None:
    not checked. Raises :class:`AlertError` naming the rule and the valid columns."""
    if columns is None:
        return
    known = list(columns)
    for rule in rules:
        if rule.metric in PER_COLUMN and rule.column is not None and rule.column not in known:
            shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more"
                                             if len(known) > 20 else "")
            raise AlertError(f"alert rule {rule.name!r}: {what} has no input column "
                             f"{rule.column!r}; its input columns: {shown or 'none'}")
