"""One window against its reference: drift, quality, outliers, performance, latency.

The result is a JSON-able dict (stored as one history line) with a flat ``metrics`` mapping
that alert rules read: ``rows``, ``requests``, ``labelled``, ``p50_latency_ms``,
``p99_latency_ms``, ``mean_latency_ms``, ``drift_share``, ``dataset_drift``,
``drifted_columns``, ``drifted(COL)``, ``prediction_drift``, ``target_drift``,
``quality_issues``, ``missing_share(COL)``, ``out_of_range_share(COL)``,
``new_category_share(COL)``, ``outlier_share``, realised metrics (``accuracy``, ``f1``,
``roc_auc``, ``log_loss``, ``calibration_error`` … or ``mae``, ``rmse``, ``r2``) and their
per-version forms (``accuracy(v2)``), and ``estimated_accuracy`` etc. for classifiers, with
``accuracy_gap`` (estimated minus realised on the labelled rows) and ``concept_drift`` (1 when
that gap is beyond chance), and per API key ``extraction_score(KEY)``, its maximum
``extraction_score`` and ``extraction_flagged_keys`` (``monitor_extraction.py``), and per slice
of the ``slices`` columns ``accuracy(slice=cut:Fair)``, ``worst_slice_accuracy(cut)`` etc.
(``monitor_slices.py``; ``metric_details`` names each worst slice). The names rules may use
are listed in ``monitoring/alert_metrics.py``; a test keeps the two in step.

Performance also carries the reference's own metrics (on its row sample's target and
outputs), so a realised MAE reads against what the model did on the reference.

Why inputs and outputs are compared separately: the dataset verdict (``drift_share``, the
multivariate tests) is about the inputs; the model's outputs and the target are reported as
prediction drift and target drift, so a window where only the predictions moved does not
count three columns (label and two probabilities) towards the input drift share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.monitoring.drift import compare
from shipyard.monitoring.estimation import estimate_performance
from shipyard.monitoring.outliers import outlier_summary
from shipyard.monitoring.performance import (
    classification_metrics,
    concept_drift_signal,
    regression_metrics,
)
from shipyard.monitoring.quality import check_quality
from shipyard.service.config import MonitorConfig
from shipyard.service.monitor_extraction import key_extraction
from shipyard.service.monitor_slices import slice_report
from shipyard.service.references import Reference
from shipyard.service.windows import MonitoringFrame, WindowData, split_by_version
from shipyard.types import Array

OUTLIER_QUANTILE = 0.99
_QUALITY_METRICS = {"missing": "missing_share", "out_of_range": "out_of_range_share",
                    "new_category": "new_category_share"}


def analyse(data: WindowData, reference: Reference, config: MonitorConfig) -> dict[str, Any]:
    """Everything the monitor knows about one window (without its key and bounds)."""
    record: dict[str, Any] = {
        "rows": data.rows, "requests": data.requests, "labelled": data.labelled,
        "models": _models(data), "reference": {"source": reference.source,
                                               "rows": reference.profile.rows},
        "latency": _latency(data.latency_ms),
    }
    metrics: dict[str, float | None] = {
        "rows": data.rows, "requests": data.requests, "labelled": data.labelled,
        "p50_latency_ms": record["latency"]["p50_ms"],
        "p99_latency_ms": record["latency"]["p99_ms"],
        "mean_latency_ms": record["latency"]["mean_ms"],
    }
    record["metrics"] = metrics
    if data.rows < config.min_rows:
        record["skipped"] = (f"{data.rows} row{'s' if data.rows != 1 else ''} < min_rows "
                             f"{config.min_rows}")
        return record
    inputs, outputs = _split_columns(data, reference, config)
    record["drift"] = _drift(data.frame, inputs, reference, config, metrics)
    record["output_drift"] = _output_drift(data.frame, outputs, reference, config, metrics)
    record["quality"] = _quality(data.frame, inputs, reference, metrics)
    record["outliers"] = _outliers(data.frame, reference, metrics)
    record["performance"] = _performance(data, reference, config, metrics)
    details: dict[str, str] = {}
    labelled = (_labelled(data.frame) if "target" in data.frame
                else np.zeros(data.rows, dtype=bool))
    slices = slice_report(data.frame, labelled, reference, config, metrics, details)
    if slices is not None:
        record["slices"] = slices
    if details:
        record["metric_details"] = details
    record["extraction"] = key_extraction(data, inputs, reference, metrics)
    return record


def _split_columns(data: WindowData, reference: Reference, config: MonitorConfig,
                   ) -> tuple[list[str], list[str]]:
    known = reference.profile.columns
    outputs = [c for c in data.frame if c in known and (c == "prediction"
                                                        or c.startswith("proba."))]
    if "target" in data.frame and "target" in known and data.labelled >= config.min_rows:
        outputs.append("target")
    inputs = [c for c in data.frame if c in known and c not in outputs and c != "target"
              and not c.startswith(("proba.", "output."))]
    return inputs, outputs


def _drift(frame: MonitoringFrame, inputs: list[str], reference: Reference,
           config: MonitorConfig, metrics: dict[str, float | None]) -> dict[str, Any] | None:
    if not inputs:
        return None
    report = compare(reference.profile, {c: frame[c] for c in inputs}, columns=inputs,
                     methods=_methods(config, inputs) or None)
    metrics["drift_share"] = report.drift_share
    metrics["dataset_drift"] = float(report.dataset_drift)
    metrics["drifted_columns"] = sum(c.drifted for c in report.columns.values())
    for name, column in report.columns.items():
        metrics[f"drifted({name})"] = float(column.drifted)
    return compact_drift(report.to_dict())


def _output_drift(frame: MonitoringFrame, outputs: list[str], reference: Reference,
                  config: MonitorConfig, metrics: dict[str, float | None],
                  ) -> dict[str, Any] | None:
    if not outputs:
        return None
    current = {c: frame[c] for c in outputs}
    if "target" in current:  # only the labelled rows say anything about the target
        current = {c: v for c, v in current.items() if c != "target"}
    report = compare(reference.profile, current, columns=list(current),
                     methods=_methods(config, list(current)) or None, multivariate=False)
    columns = dict(report.to_dict()["columns"])
    predicted = [c for c in current if c == "prediction" or c.startswith("proba.")]
    metrics["prediction_drift"] = float(any(report.columns[c].drifted for c in predicted))
    if "target" in outputs:
        labelled = _labelled(frame)
        target = compare(reference.profile, {"target": frame["target"][labelled]},
                         columns=["target"], methods=_methods(config, ["target"]) or None,
                         multivariate=False)
        metrics["target_drift"] = float(target.columns["target"].drifted)
        columns.update(target.to_dict()["columns"])
    return {"columns": {n: _column(c) for n, c in columns.items()}}


def _methods(config: MonitorConfig, columns: list[str]) -> dict[str, str]:
    return {c: m for c, m in config.methods.items() if c in columns}


def compact_drift(report: dict[str, Any]) -> dict[str, Any]:
    """The drift report without bulky per-column detail (bins, counts)."""
    out = {k: v for k, v in report.items() if k != "columns"}
    out["columns"] = {n: _column(c) for n, c in report.get("columns", {}).items()}
    return out


def _column(column: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in column.items() if k != "detail"}
    skipped = (column.get("detail") or {}).get("skipped")
    if skipped:
        out["skipped"] = skipped
    return out


def _quality(frame: MonitoringFrame, inputs: list[str], reference: Reference,
             metrics: dict[str, float | None]) -> dict[str, Any] | None:
    if not inputs:
        return None
    report = check_quality(reference.profile, {c: frame[c] for c in inputs}, columns=inputs)
    metrics["quality_issues"] = len(report.flagged)
    for finding in report.findings:
        name = _QUALITY_METRICS.get(finding.check)
        if name is not None and isinstance(finding.value, (int, float)):
            metrics[f"{name}({finding.column})"] = float(finding.value)
    return report.to_dict()


def _outliers(frame: MonitoringFrame, reference: Reference,
              metrics: dict[str, float | None]) -> dict[str, Any] | None:
    """Rows beyond the reference sample's own 99th-percentile score (about 1% by chance)."""
    model = reference.outliers
    if model is None or not model.columns or any(c not in frame for c in model.columns):
        return None
    scores = model.score({c: frame[c] for c in model.columns})
    summary = outlier_summary(scores, model.threshold(OUTLIER_QUANTILE))
    metrics["outlier_share"] = summary["share_above"]
    return summary


def _performance(data: WindowData, reference: Reference, config: MonitorConfig,
                 metrics: dict[str, float | None]) -> dict[str, Any] | None:
    frame = data.frame
    if "prediction" not in frame:
        return None
    classes = [c[len("proba."):] for c in frame if c.startswith("proba.")]
    out: dict[str, Any] = {}
    if classes:
        proba = {c: frame[f"proba.{c}"] for c in classes}
        estimated = estimate_performance(proba, classes, _calibrator(reference, classes),
                                         y_pred=frame["prediction"])
        out["estimated"] = estimated
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
            metrics[f"estimated_{name}"] = estimated.get(name)
    baseline = _reference_performance(reference, classes)
    if baseline is not None:
        out["reference"] = baseline
    if "target" not in frame or data.labelled == 0:
        return out or None
    labelled = _labelled(frame)
    out["realised"] = _realised(frame, labelled, classes)
    metrics.update(_numbers(out["realised"]))
    if classes and data.labelled >= config.min_rows:
        out["concept"] = _concept(frame, labelled, classes, reference, out["realised"])
        if out["concept"] is not None:
            metrics["accuracy_gap"] = out["concept"]["gap"]
            metrics["concept_drift"] = float(out["concept"]["suspected"])
    by_version: dict[str, Any] = {}
    masks = split_by_version(data)
    for version, mask in masks.items():
        rows = labelled & mask
        if rows.any():
            by_version[f"v{version}"] = _realised(frame, rows, classes)
            if len(masks) > 1:
                metrics.update({f"{k}(v{version})": v
                                for k, v in _numbers(by_version[f"v{version}"]).items()})
    out["by_version"] = by_version
    return out


def _calibrator(reference: Reference, classes: list[str]) -> Any:
    calibrator = reference.calibrator
    if calibrator is not None and list(calibrator.classes) != classes:
        return None  # a reference of another model; the estimate stays raw
    return calibrator


def _concept(frame: MonitoringFrame, labelled: Array, classes: list[str],
             reference: Reference, realised: Mapping[str, Any]) -> dict[str, Any] | None:
    """The label-free estimate on the labelled rows beside their realised accuracy."""
    if realised.get("accuracy") is None:
        return None
    estimate = estimate_performance({c: frame[f"proba.{c}"][labelled] for c in classes},
                                    classes, _calibrator(reference, classes),
                                    y_pred=frame["prediction"][labelled])
    if estimate.get("accuracy") is None:
        return None
    return concept_drift_signal(float(realised["accuracy"]), float(estimate["accuracy"]),
                                int(realised.get("rows") or 0))


def _reference_performance(reference: Reference, classes: list[str]) -> dict[str, Any] | None:
    """The realised metrics of the reference's row sample (target against its outputs)."""
    sample = reference.profile.sample
    if "target" not in sample or "prediction" not in sample:
        return None
    frame = {k: np.asarray(v) for k, v in sample.items()
             if k in ("target", "prediction") or k.startswith("proba.")}
    rows = _labelled(frame)
    try:
        if classes and any(f"proba.{c}" not in frame for c in classes):
            result = classification_metrics(frame["target"][rows], frame["prediction"][rows])
        else:
            result = _realised(frame, rows, classes)
    except ShipyardError:  # a sample the window's model does not match
        return None
    return {"source": "reference sample", **result}


def _realised(frame: MonitoringFrame, rows: Array, classes: list[str]) -> dict[str, Any]:
    if classes:
        return classification_metrics(frame["target"][rows], frame["prediction"][rows],
                                      {c: frame[f"proba.{c}"][rows] for c in classes},
                                      classes)
    if frame["prediction"].dtype.kind in "fiu":
        return regression_metrics(frame["target"][rows], frame["prediction"][rows])
    return classification_metrics(frame["target"][rows], frame["prediction"][rows])


def _labelled(frame: MonitoringFrame) -> Array:
    target = frame["target"]
    if target.dtype.kind == "f":
        return np.asarray(~np.isnan(target))
    if target.dtype.kind == "O":
        return np.fromiter((v is not None for v in target), dtype=bool, count=len(target))
    return np.ones(len(target), dtype=bool)


_NUMERIC_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
                    "calibration_error", "mae", "rmse", "r2")


def _numbers(result: Mapping[str, Any]) -> dict[str, float | None]:
    return {k: (None if result.get(k) is None else float(result[k]))
            for k in _NUMERIC_METRICS if k in result}


def _models(data: WindowData) -> dict[str, int]:
    versions, counts = np.unique(data.versions, return_counts=True)
    first = {int(v): int(np.argmax(data.versions == v)) for v in versions}
    return {f"{data.models[first[int(v)]]} v{int(v)}": int(n)
            for v, n in zip(versions, counts, strict=True)}


def _latency(values: Array) -> dict[str, float | None]:
    if len(values) == 0:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50_ms": _finite(p50), "p99_ms": _finite(p99), "mean_ms": _finite(values.mean())}


def _finite(value: Any) -> float | None:
    number = float(value)
    return round(number, 4) if math.isfinite(number) else None
