"""A shadow's comparison (pure): the primary's answers against the shadow version's answers
to the same requests, row by row.

``shadow_report(primary, shadow, classification=..., latencies_primary=...,
latencies_shadow=..., truth=None) -> dict`` (JSON-able):

- ``rows``: rows given; ``compared``: rows where both answered (a missing answer, None or
  NaN, is counted in ``missing``, never silently dropped);
- classification: ``agreement`` (rate, agreed, compared, Wilson ``interval`` at
  ``confidence``) and ``disagreements``: the most frequent (primary, shadow) pairs where they
  differ, with ``disagreements_left_out`` counting the rows of the pairs not listed;
- regression: ``difference`` (shadow - primary): mean, mean absolute, max absolute and
  quantiles;
- ``latency_ms``: count, mean, p50, p95, p99 of each side and the p99 ratio shadow/primary;
- with ``truth`` (aligned with the rows, None where unlabelled): ``metrics`` of each side
  over the labelled rows (``performance.classification_metrics`` / ``regression_metrics``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from shipyard.errors import MonitoringError
from shipyard.monitoring.performance import (
    as_column,
    classification_metrics,
    encode,
    infer_classes,
    is_missing,
    label_key,
    regression_metrics,
)
from shipyard.monitoring.report import jsonable
from shipyard.types import Array

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TOP_DISAGREEMENTS = 10


def shadow_report(primary: Any, shadow: Any, *, classification: bool,
                  latencies_primary: Any, latencies_shadow: Any, truth: Any = None,
                  confidence: float = 0.95) -> dict[str, Any]:
    """Agreement (classification) or differences (regression), latency, and the metrics
    of both sides when labels exist; see the module docstring."""
    p, s = as_column(primary), as_column(shadow)
    if len(p) != len(s):
        raise MonitoringError(f"the primary gave {len(p)} rows but the shadow {len(s)}; "
                              "pass the two answers to the same rows, aligned")
    if not 0 < confidence < 1:
        raise MonitoringError(f"confidence must lie between 0 and 1, got {confidence}")
    missing_p, missing_s = is_missing(p), is_missing(s)
    both = ~(missing_p | missing_s)
    out: dict[str, Any] = {
        "rows": len(p), "compared": int(both.sum()),
        "missing": {"primary": int(missing_p.sum()), "shadow": int(missing_s.sum())},
        "classification": classification,
    }
    if classification:
        out.update(_agreement(p[both], s[both], confidence))
    else:
        out["difference"] = _differences(p[both], s[both])
    out["latency_ms"] = {"primary": _latency(latencies_primary),
                         "shadow": _latency(latencies_shadow)}
    p99_p, p99_s = (out["latency_ms"][k]["p99"] for k in ("primary", "shadow"))
    out["latency_ms"]["p99_ratio"] = p99_s / p99_p if p99_p and p99_s is not None else None
    if truth is not None:
        t = as_column(truth)
        if len(t) != len(p):
            raise MonitoringError(f"truth has {len(t)} rows but the answers {len(p)}")
        metrics = classification_metrics if classification else regression_metrics
        out["metrics"] = {"primary": metrics(t, p), "shadow": metrics(t, s)}
    return dict(jsonable(out))


def _agreement(p: Array, s: Array, confidence: float) -> dict[str, Any]:
    n = len(p)
    classes = infer_classes(p, s)
    cp, cs = encode(p, classes), encode(s, classes)
    agreed = int(np.sum(cp == cs))
    interval = None
    if n:
        ci = stats.binomtest(agreed, n).proportion_ci(confidence, method="wilson")
        interval = [float(ci.low), float(ci.high)]
    k = len(classes)
    pairs = np.bincount((cp * k + cs)[cp != cs], minlength=k * k)
    order = [int(i) for i in np.argsort(-pairs, kind="stable")[:TOP_DISAGREEMENTS]
             if pairs[i]]
    listed: list[dict[str, Any]] = [
        {"primary": label_key(classes[i // k]), "shadow": label_key(classes[i % k]),
         "count": int(pairs[i])} for i in order]
    return {"agreement": {"rate": agreed / n if n else None, "agreed": agreed,
                          "compared": n, "interval": interval, "confidence": confidence},
            "disagreements": listed,
            "disagreements_left_out": int(pairs.sum()) - int(pairs[order].sum())}


def _differences(p: Array, s: Array) -> dict[str, Any]:
    try:
        d = s.astype(np.float64) - p.astype(np.float64)
    except (TypeError, ValueError):
        raise MonitoringError("regression answers must be numbers; pass "
                              "classification=True for labels") from None
    if not d.size:
        return {"mean": None, "mean_abs": None, "max_abs": None,
                "quantiles": dict.fromkeys(_names(), None)}
    return {"mean": float(d.mean()), "mean_abs": float(np.abs(d).mean()),
            "max_abs": float(np.abs(d).max()),
            "quantiles": dict(zip(_names(), np.quantile(d, QUANTILES).tolist(), strict=True))}


def _names() -> list[str]:
    return [f"p{round(q * 100):02d}" for q in QUANTILES]


def _latency(values: Any) -> dict[str, Any]:
    x = np.asarray(values if values is not None else [], dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if not x.size:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.quantile(x, (0.5, 0.95, 0.99)).tolist()
    return {"count": int(x.size), "mean": float(x.mean()), "p50": p50, "p95": p95, "p99": p99}


__all__ = ["shadow_report"]
