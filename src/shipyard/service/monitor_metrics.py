"""Monitor results on ``/metrics``: the newest stored window of each endpoint, read at
scrape time from its ``MonitorHistory`` (and its alert state), so every worker of
``--workers N`` answers the same values — they all read the same files.

Per endpoint, labelled with the model version that served most of the window's rows:

- ``shipyard_drift_share``, ``shipyard_dataset_drift`` (1/0), ``shipyard_monitor_rows``,
  ``shipyard_monitor_window_end_timestamp_seconds`` (how fresh the figures are);
- ``shipyard_feature_drift_effect``, ``shipyard_feature_drift_p_value`` and
  ``shipyard_feature_drifted`` for the ``top_features`` inputs with the largest drift effect,
  ``shipyard_feature_missing_rate`` for the ``top_features`` with the most missing values:
  a wide model never turns into thousands of series;
- ``shipyard_model_metric{metric, source}``: realised (from feedback labels; per version,
  each on its own rows), estimated (label-free, classifiers) and reference (the package's
  sample) performance;
- ``shipyard_extraction_score{endpoint, key}`` and ``shipyard_extraction_part{endpoint, key,
  part}`` (volume, uniformity, boundary): the model-extraction score of each API key scored
  in the window (``monitoring/extraction.py``; flagged at 0.8), the ``top_features`` highest;
- ``shipyard_worst_slice_metric{endpoint, version, column, metric, slice}``: per slice
  column (``monitor.slices``) and metric, the worst slice's interval bound (what
  ``worst_slice_accuracy(COLUMN)`` rules read), the slice named;
- ``shipyard_alerts_firing{endpoint, rule}``: 1 while a monitor rule fires, else 0.

A scrape costs two ``stat`` calls per endpoint while nothing changed: the families are
rebuilt only when the history or the alert state file changed (size or mtime), from the
history's tail (``MonitorHistory.recent``), so a long history costs no more than a short
one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shipyard.errors import ShipyardError
from shipyard.service.monitor_history import MonitorHistory

log = logging.getLogger(__name__)
DEFAULT_TOP_FEATURES = 20
# keys of a performance result that are counts or flags, not metrics
_NOT_METRICS = frozenset({"rows", "missing_labels", "missing_predictions", "unknown_labels",
                          "calibrated", "undefined", "source"})
_SOURCES = ("realised", "estimated", "reference")

Sample = tuple[str, tuple[str, ...], float]  # family name, label values, value

FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "shipyard_drift_share": ("Share of input columns drifted in the newest monitored window.",
                             ("endpoint", "version")),
    "shipyard_dataset_drift": ("1 when the newest monitored window's dataset drifted, else 0.",
                               ("endpoint", "version")),
    "shipyard_monitor_rows": ("Rows in the newest monitored window.", ("endpoint", "version")),
    "shipyard_monitor_window_end_timestamp_seconds": (
        "End of the newest monitored window (Unix time).", ("endpoint", "version")),
    "shipyard_feature_drift_effect": (
        "Drift effect size of an input column (top features by effect).",
        ("endpoint", "version", "feature")),
    "shipyard_feature_drift_p_value": (
        "Drift test p-value of an input column (top features by effect).",
        ("endpoint", "version", "feature")),
    "shipyard_feature_drifted": (
        "1 when an input column drifted (top features by effect), else 0.",
        ("endpoint", "version", "feature")),
    "shipyard_feature_missing_rate": (
        "Share of missing values of an input column (top features by missing rate).",
        ("endpoint", "version", "feature")),
    "shipyard_model_metric": (
        "Model performance in the newest monitored window: realised (feedback labels), "
        "estimated (label-free) or reference (the package's sample).",
        ("endpoint", "version", "metric", "source")),
    "shipyard_extraction_score": (
        "Model-extraction score (0..1, flagged at 0.8) of an API key's traffic in the newest "
        "monitored window.", ("endpoint", "key")),
    "shipyard_extraction_part": (
        "One part (volume, uniformity, boundary) of an API key's model-extraction score.",
        ("endpoint", "key", "part")),
    "shipyard_worst_slice_metric": (
        "A slice column's worst slice in the newest monitored window: the metric's interval "
        "bound that worst_slice_* alert rules read.",
        ("endpoint", "version", "column", "metric", "slice")),
    "shipyard_alerts_firing": ("1 while a monitor alert rule fires, else 0.",
                               ("endpoint", "rule")),
}


class MonitorResults(Collector):
    """The monitor gauges of ``endpoints`` whose results live under ``log_dir``."""

    names = frozenset(FAMILIES)

    def __init__(self, log_dir: str | Path, endpoints: Sequence[str], *,
                 top_features: int = DEFAULT_TOP_FEATURES, home: Path | None = None) -> None:
        self.top_features = top_features
        self.histories = [MonitorHistory(log_dir, e, home=home) for e in endpoints]
        # endpoint -> (stat of the two files, samples computed from them)
        self._cache: dict[str, tuple[tuple[Any, Any], list[Sample]]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {name: GaugeMetricFamily(name, help_text, labels=list(labels))
                    for name, (help_text, labels) in FAMILIES.items()}
        for history in self.histories:
            for name, labels, value in self._samples(history):
                families[name].add_metric(list(labels), value)
        yield from families.values()

    def _samples(self, history: MonitorHistory) -> list[Sample]:
        seen = history.stamp()
        cached = self._cache.get(history.endpoint)
        if cached is not None and cached[0] == seen:
            return cached[1]
        try:
            samples = list(endpoint_samples(history, self.top_features))
        except Exception as exc:  # an unreadable file must not break /metrics
            log.warning("monitor results of %s not exported: %s", history.endpoint, exc)
            samples = []
        self._cache[history.endpoint] = (seen, samples)
        return samples


def endpoint_samples(history: MonitorHistory, top_features: int) -> Iterator[Sample]:
    """The samples of one endpoint: its newest analysed window and its alert state."""
    endpoint = history.endpoint
    record = newest_analysed(history.recent())
    if record is not None:
        yield from record_samples(endpoint, record, top_features)
    try:
        state = history.load_state() or {}
    except ShipyardError as exc:  # the window's figures still count
        log.warning("alert state of %s not exported: %s", endpoint, exc)
        state = {}
    rules, firing = alert_rules(state)
    for rule in rules:
        yield "shipyard_alerts_firing", (endpoint, rule), 1.0 if rule in firing else 0.0


def alert_rules(state: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    """The rules a saved alert state evaluates (by name) and those firing, from the
    evaluator's per-rule state (``AlertEvaluator.to_dict``) rather than by parsing the rules
    again, which would import the monitor's maths into every server."""
    evaluator = state.get("evaluator")
    saved = evaluator.get("rules") if isinstance(evaluator, Mapping) else None
    if not isinstance(saved, Mapping):
        return [], set()
    return (sorted(str(name) for name in saved),
            {str(name) for name, rule in saved.items()
             if isinstance(rule, Mapping) and rule.get("firing") is True})


def newest_analysed(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest record that has results (a window without rows is stored as skipped)."""
    return next((record for record in reversed(records)
                 if not record.get("skipped") and isinstance(record.get("drift"), Mapping)),
                None)


def record_samples(endpoint: str, record: Mapping[str, Any], top_features: int,
                   ) -> Iterator[Sample]:
    """The gauges one stored window gives."""
    base = (endpoint, main_version(record.get("models") or {}))
    drift: Mapping[str, Any] = record.get("drift") or {}
    yield from _number("shipyard_drift_share", base, drift.get("drift_share"))
    yield from _number("shipyard_dataset_drift", base, drift.get("dataset_drift"))
    yield from _number("shipyard_monitor_rows", base, record.get("rows"))
    yield from _number("shipyard_monitor_window_end_timestamp_seconds", base,
                       (record.get("window") or {}).get("end_ts"))
    columns: Mapping[str, Any] = drift.get("columns") or {}
    for name, column in top(columns.items(), lambda c: c.get("effect_size"), top_features):
        labels = (*base, name)
        yield from _number("shipyard_feature_drift_effect", labels, column.get("effect_size"))
        yield from _number("shipyard_feature_drift_p_value", labels, column.get("p_value"))
        yield from _number("shipyard_feature_drifted", labels, column.get("drifted"))
    missing = {f["column"]: f for f in (record.get("quality") or {}).get("findings") or ()
               if isinstance(f, Mapping) and f.get("check") == "missing"}
    for name, finding in top(missing.items(), lambda f: f.get("value"), top_features):
        yield from _number("shipyard_feature_missing_rate", (*base, name), finding.get("value"))
    yield from performance_samples(base, record.get("performance") or {})
    yield from extraction_samples(endpoint, record.get("extraction") or {}, top_features)
    yield from slice_samples(base, record.get("slices") or {})


def slice_samples(base: tuple[str, str], slices: Mapping[str, Any]) -> Iterator[Sample]:
    """One sample per slice column and metric: its worst slice's bound (bounded series)."""
    for column, found in sorted((slices.get("columns") or {}).items()):
        for metric, worst in sorted((found.get("worst") or {}).items()):
            if isinstance(worst, Mapping):
                yield from _number("shipyard_worst_slice_metric",
                                   (*base, column, metric, str(worst.get("slice"))),
                                   worst.get("bound"))


def extraction_samples(endpoint: str, extraction: Mapping[str, Any], top_keys: int,
                       ) -> Iterator[Sample]:
    """The scored keys' extraction scores and parts, the ``top_keys`` highest."""
    keys: Mapping[str, Any] = extraction.get("keys") or {}
    for key, scored in top(keys.items(), lambda k: k.get("score"), top_keys):
        yield from _number("shipyard_extraction_score", (endpoint, key), scored.get("score"))
        for part, value in sorted((scored.get("parts") or {}).items()):
            yield from _number("shipyard_extraction_part", (endpoint, key, part), value)


def performance_samples(base: tuple[str, str], performance: Mapping[str, Any],
                        ) -> Iterator[Sample]:
    """``shipyard_model_metric``: realised per version on that version's own labelled rows
    (a canary's figures beside stable's), else over the window; estimated and reference
    under the window's main version."""
    endpoint, main = base
    by_version: Mapping[str, Any] = performance.get("by_version") or {}
    results = [(main, source, performance.get(source)) for source in _SOURCES
               if source != "realised" or not by_version]
    results += [(key.removeprefix("v"), "realised", result)
                for key, result in sorted(by_version.items())]
    for version, source, result in results:
        if isinstance(result, Mapping):
            for metric, value in sorted(result.items()):
                if metric not in _NOT_METRICS:
                    yield from _number("shipyard_model_metric",
                                       (endpoint, version, metric, source), value)


def main_version(models: Mapping[str, Any]) -> str:
    """The version that served most rows (``{"name vN": rows}``), as ``"N"``; ``""`` when
    the record names none."""
    if not models:
        return ""
    name = max(models.items(), key=lambda item: (item[1], item[0]))[0]
    _, _, version = str(name).rpartition(" v")
    return version


def top(items: Iterable[tuple[str, Any]], value: Any, k: int) -> list[tuple[str, Any]]:
    """The ``k`` items with the largest finite ``value`` (ties by name), largest first."""
    scored = [(v, name, item) for name, item in items if isinstance(item, Mapping)
              for v in [_finite(value(item))] if v is not None]
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [(name, item) for _, name, item in scored[:max(k, 0)]]


def _number(name: str, labels: tuple[str, ...], value: Any) -> Iterator[Sample]:
    number = _finite(value)
    if number is not None:
        yield name, labels, number


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)

