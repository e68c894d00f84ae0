"""``evaluate``: a model (and optionally the one it would replace) on labelled rows, offline.

For each model: the task's metrics on every row with an interval (exact for accuracy, a
bootstrap for the others), the same per slice of each ``slices`` column (categories as they
are, numbers in quartile bins), the slice gap (the worst slice against the whole) and the
spread across slices, single-row latency (p50 / p99) and the package's size. For the pair:
a paired comparison on the same rows, exact McNemar on correctness for a classifier and a
paired bootstrap of the RMSE for a regressor. A classifier with probabilities also gets its
calibration: the expected calibration error with an interval and the reliability table
(confidence against accuracy per bin). The statistics are ``monitoring/evaluation_stats.py``;
the metrics ``monitoring/performance.py`` (equal to scikit-learn's).

Each model's evaluation carries its package's content fingerprint and the evaluation the data
file's SHA-256, so ``evaluation_records.record`` can keep it with every registry version of
those bytes; ``evaluation_report.markdown`` writes the pull request comment.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import MonitoringError
from shipyard.monitoring.evaluation_gate import GateResult, GateRule, check, parse_gate
from shipyard.monitoring.evaluation_stats import (
    Comparison,
    Interval,
    bootstrap,
    bootstrap_many,
    exact_proportion,
    mcnemar,
    paired_bootstrap,
)
from shipyard.monitoring.performance import (
    as_column,
    confidence_bins,
    encode,
    label_key,
    probability_matrix,
    regression_metrics,
)
from shipyard.monitoring.resampled_metrics import ResampledClassification
from shipyard.monitoring.slicing import MISSING  # a missing value's slice, as the monitor's
from shipyard.packaging.manifest import content_fingerprint

CLASSIFICATION = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss",
                  "calibration_error")
REGRESSION = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})
NUMERIC_BINS = 4  # a numeric slice column: its quartiles
MIN_SLICE_ROWS = 30  # a smaller slice is reported, never a column's worst (as the monitor)
LATENCY_CALLS = 50
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class SliceResult:
    column: str
    value: str
    rows: int
    metric: Interval | None  # the headline metric on the slice's rows


@dataclass(frozen=True)
class ModelEvaluation:
    source: str
    task: str  # classification or regression
    rows: int
    headline: str  # accuracy or rmse
    metrics: dict[str, Interval | None]
    slices: list[SliceResult] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    size_bytes: int = 0
    fingerprint: str = ""  # the package's content (packaging.manifest.content_fingerprint)
    # classifiers with probabilities: per confidence bin, rows, mean confidence, accuracy
    calibration: list[dict[str, float]] = field(default_factory=list)
    unknown_labels: int = 0  # rows whose label is none of a classifier's classes: wrong
    # slices with fewer rows are shown with their (wide) intervals but are never a column's
    # worst slice, nor in its spread: a handful of unlucky rows fails no gate
    min_slice_rows: int = MIN_SLICE_ROWS

    def eligible(self, slice_: SliceResult) -> bool:
        return slice_.metric is not None and slice_.rows >= self.min_slice_rows

    def mark(self, slice_: SliceResult) -> str:
        """How a slice is marked in tables: its column's worst, or too small to judge."""
        if not self.eligible(slice_):
            return f" (under {self.min_slice_rows} rows)" if slice_.metric is not None else ""
        worst = self.worst_slice(slice_.column)
        return " (worst)" if worst is not None and worst.value == slice_.value else ""

    def worst_slice(self, column: str) -> SliceResult | None:
        """The column's worst slice among those with ``min_slice_rows`` rows or more."""
        found = [s for s in self.slices if s.column == column and self.eligible(s)]
        if not found:
            return None
        sign = -1.0 if self.headline in LOWER_IS_BETTER else 1.0

        def score(s: SliceResult) -> float:
            assert s.metric is not None
            return sign * s.metric.estimate

        return min(found, key=score)

    def spread(self, column: str) -> float | None:
        values = [s.metric.estimate for s in self.slices
                  if s.column == column and s.metric is not None and self.eligible(s)]
        return None if not values else max(values) - min(values)

    def to_dict(self) -> dict[str, Any]:
        columns = sorted({s.column for s in self.slices})
        return {
            "source": self.source, "task": self.task, "rows": self.rows,
            "headline": self.headline,
            "metrics": {k: None if v is None else v.to_dict() for k, v in self.metrics.items()},
            "slices": [{"column": s.column, "value": s.value, "rows": s.rows,
                        self.headline: None if s.metric is None else s.metric.to_dict(),
                        "eligible": self.eligible(s)}
                       for s in self.slices],
            "slice_gaps": {c: {"worst": None if (w := self.worst_slice(c)) is None
                               else w.value, "spread": self.spread(c)} for c in columns},
            "latency_ms": self.latency_ms, "size_bytes": self.size_bytes,
            "fingerprint": self.fingerprint, "calibration": self.calibration,
            "unknown_labels": self.unknown_labels, "min_slice_rows": self.min_slice_rows}


@dataclass(frozen=True)
class Evaluation:
    candidate: ModelEvaluation
    against: ModelEvaluation | None = None
    comparison: Comparison | None = None
    data: Mapping[str, Any] = field(default_factory=dict)  # file, sha256, rows, target

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"candidate": self.candidate.to_dict(), "data": dict(self.data)}
        if self.against is not None:
            out["against"] = self.against.to_dict()
        if self.comparison is not None:
            c = self.comparison
            out["comparison"] = {
                "metric": self.candidate.headline, "difference": c.difference,
                "interval": None if c.interval is None else c.interval.to_dict(),
                "p_value": c.p_value, "method": c.method,
                **({"candidate_only": c.a_only, "against_only": c.b_only}
                   if c.a_only is not None else {})}
        return out


def _values(model: ModelEvaluation) -> dict[str, float | None]:
    out: dict[str, float | None] = {k: None if v is None else v.estimate
                                    for k, v in model.metrics.items()}
    out.update({f"{k}_ms": v for k, v in model.latency_ms.items()})
    out["size_mb"] = model.size_bytes / 1e6
    return out


def check_gate(evaluation: Evaluation, rules: Sequence[GateRule]) -> list[GateResult]:
    """Each gate rule on the evaluation (``monitoring/evaluation_gate.py``)."""
    c = evaluation.candidate
    worst = {}
    undefined = {}
    for column in {s.column for s in c.slices}:
        slice_ = c.worst_slice(column)
        worst[(c.headline, column)] = None if slice_ is None or slice_.metric is None \
            else slice_.metric.estimate
        if slice_ is None:
            undefined[(c.headline, column)] = (
                f"no slice of {column!r} has {c.min_slice_rows} or more rows "
                "(--min-slice-rows)")
    against = None if evaluation.against is None else _values(evaluation.against)
    return [check(rule, _values(c), against, worst, undefined) for rule in rules]


def read_gate(path: Path) -> tuple[GateRule, ...]:
    """A gate file: YAML, a list of rules or ``{rules: [...]}``."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MonitoringError(f"cannot read the gate file {path}: {exc}") from exc
    if not isinstance(doc, (list, dict)):
        raise MonitoringError(f"{path}: a gate file is a list of rules or {{rules: [...]}}")
    return parse_gate(doc)


def _intervals(task: str, truth: Any, pred: Any, proba: Any, classes: Any, correct: Any,
               level: float, resamples: int, seed: int) -> dict[str, Interval | None]:
    n = len(truth)
    if task == "regression":
        return bootstrap_many(lambda i: regression_metrics(truth[i], pred[i]), REGRESSION, n,
                              level=level, count=resamples, seed=seed)

    # every resample as counts per row over rows encoded, sorted and binned once; equal to
    # classification_metrics on the resampled rows (monitoring/resampled_metrics.py)
    metrics = ResampledClassification(truth, pred, proba, classes)
    out: dict[str, Interval | None] = {
        "accuracy": exact_proportion(int(correct.sum()), n, level)}
    out.update(bootstrap_many(metrics, CLASSIFICATION[1:], n, level=level, count=resamples,
                              seed=seed))
    return out


def reliability(proba: Any, classes: Any, correct: Any,
                bins: int = RELIABILITY_BINS) -> list[dict[str, float]]:
    """The reliability table: rows, mean top-class confidence and accuracy per equal-width
    confidence bin (right-closed, as ``expected_calibration_error``); empty bins left out."""
    if proba is None:
        return []
    matrix = probability_matrix(proba, classes)[0]
    confidence = matrix.max(axis=1)
    bin_of = confidence_bins(confidence, bins)
    out = []
    for b in range(bins):
        mask = bin_of == b
        if mask.any():
            out.append({"from": b / bins, "to": (b + 1) / bins, "rows": int(mask.sum()),
                        "confidence": float(confidence[mask].mean()),
                        "accuracy": float(correct[mask].mean())})
    return out


def _slices(frame: Any) -> list[tuple[str, str, Any]]:
    """(column, value, row mask) per slice: categories as they are, numbers in quartiles, a
    missing value (null, NaN) the slice ``missing``, so a column's slices hold every row."""
    import pandas as pd

    out = []
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 2 * NUMERIC_BINS:
            bins = pd.qcut(values, NUMERIC_BINS, duplicates="drop")
            for interval in bins.cat.categories:
                out.append((column, str(interval), (bins == interval).to_numpy()))
        else:
            for value in sorted(values.dropna().unique(), key=str):
                out.append((column, str(value), (values == value).to_numpy()))
        missing = values.isna().to_numpy()
        if missing.any():
            out.append((column, MISSING, missing))
    return out


def _checked_truth(source: str, task: str, truth: Any, classes: Any) -> Any:
    """The target as the model's task needs it: numbers for a regressor; for a classifier,
    labels of which at least one is among its classes (matched by value, ``1`` = ``1.0`` =
    ``"1"``), since a target sharing none is the wrong column, not a model at 0%."""
    if task == "regression":
        try:
            return np.asarray(truth, dtype=np.float64)
        except (TypeError, ValueError):
            raise MonitoringError(
                f"{source} is a regression model but the target holds values that are not "
                f"numbers ({', '.join(sorted({repr(v) for v in truth[:200]})[:3])}, ...): "
                "is --target the right column?") from None
    known = {label_key(c) for c in classes}
    seen = {label_key(t) for t in truth}
    if not seen & known:
        raise MonitoringError(
            f"none of the target's values ({', '.join(sorted(seen)[:5])}"
            f"{', ...' if len(seen) > 5 else ''}) is one of {source}'s classes "
            f"({', '.join(sorted(known)[:5])}{', ...' if len(known) > 5 else ''}): is "
            "--target the right column?")
    return truth


def _stacked(source: str, spec: Any, features: Any, slices: Any) -> Any:
    """A one-input tensor model's (rows, k) matrix, as batch scoring reads a table for it:
    the columns other than the target, or other than the target and the slice columns when
    those are not among the k features; file order."""
    width = spec.shape[1] if len(spec.shape) == 2 else None
    every = list(features.columns)
    besides = [c for c in every if c not in set(slices)]
    for columns in ((besides,) if width == -1 else (every, besides)):
        if columns and width in (-1, len(columns)):
            return features[columns].to_numpy()
    raise MonitoringError(
        f"{source} takes one input {spec.name!r} of shape {list(spec.shape)}: give "
        f"{width} feature columns besides the target and the --slices columns (the data "
        f"has {len(besides)}: {', '.join(map(str, besides[:10]))})")


def _latency(model: Any, features: Any) -> dict[str, float]:
    if isinstance(features, np.ndarray):
        rows = [features[i % len(features)][None] for i in range(LATENCY_CALLS)]
    else:
        rows = [features.iloc[[i % len(features)]] for i in range(LATENCY_CALLS)]
    model.predict(rows[0])  # warm-up
    times = []
    for row in rows:
        started = time.perf_counter()
        model.predict(row)
        times.append((time.perf_counter() - started) * 1000.0)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def evaluate_model(source: str, model: Any, features: Any, truth: Any, slice_frame: Any, *,
                   level: float = 0.95, resamples: int = 500, seed: int = 0,
                   min_slice_rows: int = MIN_SLICE_ROWS) -> tuple[ModelEvaluation, Any]:
    """One model's evaluation, and its predictions (for the paired comparison): right or
    wrong per row for a classifier, the predictions for a regressor."""
    names = [spec.name for spec in model.signature.inputs]
    if model.signature.kind == "tensor" and len(names) == 1 and names[0] not in features:
        features = _stacked(source, model.signature.inputs[0], features, slice_frame.columns)
    elif model.signature.kind == "tabular":
        lacking = [n for n in names if n not in features.columns]
        if lacking:  # named with the model (the candidate's or --against's) and the columns
            raise MonitoringError(
                f"the data lacks {len(lacking)} of {source}'s input columns: "
                f"{', '.join(map(repr, lacking[:10]))}{', ...' if len(lacking) > 10 else ''}")
        features = features[names]  # the slice columns and others the model does not take
    prediction = model.predict(features)
    pred = np.asarray(prediction.predictions)
    proba = prediction.probabilities
    classes = prediction.classes
    task = "classification" if classes is not None else "regression"
    headline = "accuracy" if task == "classification" else "rmse"
    truth = _checked_truth(source, task, truth, classes)
    codes = None if classes is None else encode(as_column(truth), list(classes))
    correct = None if codes is None else \
        (codes == encode(as_column(pred), list(classes))) & (codes >= 0)  # matched by value
    metrics = _intervals(task, truth, pred, proba, classes, correct, level, resamples, seed)
    slices = []
    for column, value, mask in _slices(slice_frame):
        rows = int(mask.sum())
        idx = np.flatnonzero(mask)
        if correct is not None:
            metric = exact_proportion(int(correct[idx].sum()), rows, level) if rows else None
        else:
            def slice_rmse(i: Any, s: Any = idx) -> float | None:
                value = regression_metrics(truth[s][i], pred[s][i])["rmse"]
                return None if value is None else float(value)

            metric = bootstrap(slice_rmse, rows, level=level, count=max(100, resamples // 2),
                               seed=seed) if rows else None
        slices.append(SliceResult(column, value, rows, metric))
    size = sum(entry.size for entry in model.manifest.files)
    return ModelEvaluation(
        source, task, len(truth), headline, metrics, slices, _latency(model, features), size,
        content_fingerprint(model.manifest.to_dict()),
        [] if correct is None else reliability(proba, classes, correct),
        0 if codes is None else int(np.sum(codes < 0)), min_slice_rows), \
        pred if correct is None else correct


def evaluate(candidate: str, data: str | Path, target: str, *, against: str | None = None,
             slices: Sequence[str] = (), trust: bool = False, level: float = 0.95,
             resamples: int = 500, seed: int = 0, registry: Any = None,
             min_slice_rows: int = MIN_SLICE_ROWS) -> Evaluation:
    """Evaluate ``candidate`` (a package directory or a ``models:/`` URI) on ``data``'s rows
    against their ``target``; with ``against``, that model too, and the two compared on the
    same rows. ``data`` is a Parquet or CSV file, a folder of them or a URL (``s3://``).
    Slices under ``min_slice_rows`` rows are reported but never a column's worst."""
    if isinstance(min_slice_rows, bool) or not isinstance(min_slice_rows, int) \
            or min_slice_rows < 1:
        raise MonitoringError(f"min_slice_rows must be a whole number >= 1, not "
                              f"{min_slice_rows!r}")
    from contextlib import ExitStack, closing

    from shipyard.service.evaluation_data import read_rows
    from shipyard.service.loading import load

    with ExitStack() as stack:
        models = [stack.enter_context(closing(load(s, trust=trust, registry=registry)))
                  for s in (candidate, *(() if against is None else (against,)))]
        # a CSV column a model takes as text is read as text ("01" stays "01", not 1)
        text = {spec.name for m in models if m.signature.kind == "tabular"
                for spec in m.signature.inputs if spec.dtype == "string"}
        if any(m.signature.class_labels and all(isinstance(c, str) for c in
                                                m.signature.class_labels) for m in models):
            text.add(target)  # classes such as "01": the labels too
        found = read_rows(str(data), target, slices, text=text)
        truth, used = found.truth, found.fingerprint
        rows = (found.features, truth, found.slices)
        options: dict[str, Any] = {"level": level, "resamples": resamples, "seed": seed,
                                   "min_slice_rows": min_slice_rows}
        mine, pred = evaluate_model(candidate, models[0], *rows, **options)
        if against is None:
            return Evaluation(mine, data=used)
        theirs, other = evaluate_model(against, models[1], *rows, **options)
    if mine.task != theirs.task:
        raise MonitoringError(f"{candidate} is a {mine.task} model and {against} a "
                              f"{theirs.task} one: they cannot be compared")
    if mine.task == "classification":
        comparison = mcnemar(pred, other, level=level)
    else:
        def rmse(p: Any) -> Any:
            return lambda i: regression_metrics(truth[i], p[i])["rmse"]
        comparison = paired_bootstrap(rmse(pred), rmse(other), len(truth), level=level,
                                      count=resamples, seed=seed)
    return Evaluation(mine, theirs, comparison, used)
