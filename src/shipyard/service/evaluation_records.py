"""An evaluation kept in the registry (``shipyard evaluate --record``): the candidate's
content fingerprint, the data's fingerprint, the gate's verdict with each rule's number, and
a summary of the metrics (``registry/evaluations.py`` stores it). A ``models:/`` candidate's
record is audited on its version; a package directory's shows on every version registered
from the same bytes, later or before."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipyard.monitoring.evaluation_gate import GateResult
from shipyard.packaging.manifest import content_fingerprint
from shipyard.registry.evaluations import EvaluationRecord
from shipyard.service.evaluation import Evaluation, ModelEvaluation


def summary(evaluation: Evaluation) -> dict[str, Any]:
    """What ``models show`` and lineage need, without the rows' details."""
    c = evaluation.candidate
    headline = c.metrics.get(c.headline)
    out: dict[str, Any] = {
        "task": c.task, "rows": c.rows, "headline": c.headline,
        "value": None if headline is None else headline.estimate,
        "metrics": {k: None if v is None else v.to_dict() for k, v in c.metrics.items()},
        "worst_slices": _worst(c), "latency_ms": c.latency_ms, "size_bytes": c.size_bytes}
    if evaluation.against is not None and evaluation.comparison is not None:
        cmp_ = evaluation.comparison
        out["against"] = {"source": evaluation.against.source,
                          "fingerprint": evaluation.against.fingerprint,
                          "difference": cmp_.difference, "p_value": cmp_.p_value,
                          "method": cmp_.method,
                          "interval": None if cmp_.interval is None else cmp_.interval.to_dict()}
    return out


def _worst(model: ModelEvaluation) -> dict[str, Any]:
    out = {}
    for column in sorted({s.column for s in model.slices}):
        worst = model.worst_slice(column)
        if worst is not None and worst.metric is not None:
            out[column] = {"slice": worst.value, "rows": worst.rows,
                           "value": worst.metric.estimate, "spread": model.spread(column)}
    return out


def record(evaluation: Evaluation, verdicts: Sequence[GateResult], registry: Any,
           ) -> EvaluationRecord:
    """Store the evaluation in ``registry``; audited on the version when the candidate is a
    ``models:/`` URI that still names the evaluated bytes."""
    c = evaluation.candidate
    model = version = None
    if c.source.startswith("models:/"):
        found = registry.get_version(c.source)
        if content_fingerprint(found.manifest) == c.fingerprint:  # an alias may have moved
            model, version = found.name, found.version  # since: then no version is named
    stored: EvaluationRecord = registry.evaluations.record(
        c.fingerprint, source=c.source,
        against=None if evaluation.against is None else evaluation.against.source,
        data=evaluation.data, passed=None if not verdicts else all(v.passed for v in verdicts),
        gate=[v.to_dict() for v in verdicts], summary=summary(evaluation), model=model,
        version=version)
    return stored
