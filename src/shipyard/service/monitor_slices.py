"""A window's performance per slice of the monitor's ``slices`` columns (issue 18).

The columns are cut from the reference (``monitoring/slicing.py``: numbers between its
quantiles, categories as they are, missing values their own slice); each slice's realised
metrics with intervals, its worst slice per metric, and for classifiers its label-free
estimated accuracy come from ``monitoring/slice_metrics.py``. The record holds::

    "slices": {"min_labelled": 30, "level": 0.95,
               "columns": {"cut": {"bins": {...}, "slices": [...], "worst": {...}}},
               "skipped": {"color": "not in the window's columns"}}

and the flat metrics gain ``accuracy(slice=cut:Fair)``, ``worst_slice_accuracy(cut)`` and
the like; ``details`` gains each worst-slice metric's slice, so an alert names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from shipyard.errors import MonitoringError, ShipyardError
from shipyard.monitoring.alert_rules import AlertRule
from shipyard.monitoring.estimation import expected_hits
from shipyard.monitoring.performance import encode, infer_classes, is_missing
from shipyard.monitoring.slice_metrics import (
    LEVEL,
    ColumnSlices,
    Outcomes,
    column_slices,
    slice_metrics,
)
from shipyard.monitoring.slicing import MISSING, SliceBins, assign_slices, reference_bins
from shipyard.service.config import MonitorConfig
from shipyard.service.references import Reference
from shipyard.service.windows import MonitoringFrame
from shipyard.types import Array


def slice_report(frame: MonitoringFrame, labelled: Array, reference: Reference,
                 config: MonitorConfig, metrics: dict[str, float | None],
                 details: dict[str, str]) -> dict[str, Any] | None:
    """The record's ``slices`` section (None without slice columns or predictions); adds
    the flat slice metrics to ``metrics`` and the worst slices' names to ``details``."""
    if not config.slices or "prediction" not in frame:
        return None
    skipped: dict[str, str] = {}
    bins = _bins(frame, reference, config, skipped)
    outcomes = _outcomes(frame, labelled)
    out: dict[str, Any] = {"min_labelled": config.slice_min_labelled, "level": LEVEL,
                           "columns": {}}
    if outcomes is None:
        skipped.update(dict.fromkeys(bins, "the predictions are neither classes nor numbers"))
        bins = {}
    estimates = _estimates(frame, reference)
    found: dict[str, ColumnSlices] = {}
    for column, cut in bins.items():
        assert outcomes is not None
        try:
            labels = assign_slices({column: frame[column]}, {column: cut})
        except MonitoringError as exc:  # text where the reference cut numbers
            skipped[column] = str(exc)
            continue
        found[column] = column_slices(column, labels[column], outcomes, estimates=estimates,
                                      min_labelled=config.slice_min_labelled,
                                      order=cut.labels)
        out["columns"][column] = {"bins": cut.to_dict(), **found[column].to_dict()}
        for metric, worst in found[column].worst.items():
            if worst is not None:
                details[f"worst_slice_{metric}({column})"] = worst.describe()
    metrics.update(slice_metrics(found))
    if skipped:
        out["skipped"] = skipped
    return out


def unknown_numeric_slices(rules: Iterable[AlertRule], reference: Reference,
                           config: MonitorConfig) -> list[str]:
    """Rules naming a slice the reference does not know. A numeric column's slice that is
    none of the bins the reference cuts it into (``accuracy(slice=carat:>= 1.04)``) can never
    fire. A category the reference never saw (``cut:Fiar``, a typo?) is a slice too once it
    appears, so it is named as such, with the values the reference holds (when it counted
    them all)."""
    wanted = {c for c in config.slices if c in reference.profile.columns}
    try:
        cuts = reference_bins(reference.profile, sorted(wanted), bins=config.slice_bins)
    except MonitoringError:
        return []
    out = []
    for rule in rules:
        if rule.column is None or not rule.column.startswith("slice="):
            continue
        column, _, name = rule.column[len("slice="):].partition(":")
        cut = cuts.get(column)
        if cut is None or name == MISSING:
            continue
        if cut.numeric and name not in cut.labels:
            out.append(f"alert rule {rule.name!r} can never fire: {column!r} is cut into "
                       f"{', '.join(cut.labels)} (and {MISSING}) by {reference.source}'s "
                       "reference; name one of them")
            continue
        seen = reference.profile.columns[column].counts
        if not cut.numeric and seen is not None and reference.profile.columns[column].exact \
                and name not in seen:
            known = sorted(seen, key=str)
            shown = ", ".join(map(str, known[:10])) + (" ..." if len(known) > 10 else "")
            out.append(f"alert rule {rule.name!r} names {column}={name}, a value "
                       f"{reference.source}'s reference never saw ({shown}): it fires only "
                       "once that value appears (a typo?)")
    return out


def _bins(frame: MonitoringFrame, reference: Reference, config: MonitorConfig,
          skipped: dict[str, str]) -> dict[str, SliceBins]:
    usable = []
    for column in config.slices:
        if column not in frame:
            skipped[column] = "not in the window's columns"
        elif column not in reference.profile.columns:
            skipped[column] = "not in the reference, which cuts it"
        elif frame[column].ndim != 1:
            skipped[column] = f"not one value per row (shape {frame[column].shape})"
        else:
            usable.append(column)
    return reference_bins(reference.profile, usable, bins=config.slice_bins)


def _outcomes(frame: MonitoringFrame, labelled: Array) -> Outcomes | None:
    """Codes of the classes (or the numbers) the window's rows were given and told."""
    prediction = frame["prediction"]
    target = frame.get("target")
    classes = [c[len("proba."):] for c in frame if c.startswith("proba.")]
    if target is None:
        target = np.full(len(prediction), np.nan)
        labelled = np.zeros(len(prediction), dtype=bool)
    if not classes and prediction.dtype.kind in "fiu":  # as the window's realised metrics
        numbers, values = _numbers(target), prediction.astype(np.float64)
        known = labelled & np.isfinite(numbers) & np.isfinite(values)
        return Outcomes("regression", known, numbers, values)
    if prediction.dtype.kind not in "fiubOUS":
        return None
    names: list[object] = list(classes) or infer_classes(target[labelled], prediction)
    true, pred = encode(target, names), encode(prediction, names)
    known = labelled & ~is_missing(target) & ~is_missing(prediction)
    return Outcomes("classification", known, true, pred, len(names))


def _numbers(values: Array) -> Array:
    out = np.full(len(values), np.nan)
    present = ~is_missing(values)
    try:
        out[present] = values[present].astype(np.float64)
    except (TypeError, ValueError):
        return np.full(len(values), np.nan)  # labels that are no numbers: none labelled
    return out


def _estimates(frame: MonitoringFrame, reference: Reference) -> Mapping[str, Array] | None:
    classes = [c[len("proba."):] for c in frame if c.startswith("proba.")]
    if not classes:
        return None
    calibrator = reference.calibrator
    if calibrator is not None and list(calibrator.classes) != classes:
        calibrator = None  # a reference of another model: the estimate stays raw
    try:
        return {"estimated_accuracy": expected_hits({c: frame[f"proba.{c}"] for c in classes},
                                                    classes, calibrator,
                                                    y_pred=frame["prediction"])}
    except ShipyardError:
        return None
