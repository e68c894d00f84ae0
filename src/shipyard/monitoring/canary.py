"""Canary analysis (pure): one interval's traffic of a candidate version against the stable
version's, under a canary plan (``routing.plans.CanaryPlan``): pass, fail or wait, each
check with the numbers behind it.

Checks, in order (``ALPHA`` = 0.05 for the bounds, ``FAIL_ALPHA`` = 0.01 for "shown worse"):

- ``traffic``: wait while the candidate saw fewer than ``min_requests`` requests (scaling
  that by the candidate's share is the controller's business: it passes what it saw).
- ``error_rate``: the candidate's error rate (status >= 500) against stable's plus
  ``max_error_rate`` (``guardrails.error_rate_check``, Agresti-Caffo bounds). With no stable
  traffic in the window (the candidate takes it all) the candidate's own rate against
  ``max_error_rate``, by one-sided Wilson bounds.
- ``latency``: the candidate's p99 against ``max_p99_ratio`` times stable's
  (``guardrails.p99_check``, order-statistic bounds) and, when set, against ``max_p99_ms``.
- ``prediction_drift``: the candidate's predictions against stable's with the drift tests
  of ``drift.compare``: class labels as categories (chi-squared, Jensen-Shannon distance),
  numbers by KS with the Wasserstein distance over stable's sd. Fails only when the change
  is significant AND its effect reaches ``max_prediction_drift`` (default
  ``DRIFT_THRESHOLDS``: large effects only, as a canary's false alarm is costly). Waits
  while either side has fewer than ``MIN_ROWS`` predictions or the candidate fewer than
  the plan's ``min_requests``: too little traffic for a verdict is a wait, and a
  distance read on few rows is biased upward (``latency`` and ``quality`` still fail on
  clear evidence sooner: they bound their figures, so a broken candidate rolls back fast).
- ``quality``: with ``metric`` and at least ``MIN_LABELS`` labelled rows a side, the
  non-inferiority comparison of ``noninferiority.compare_metrics`` (difference, interval,
  p-values); fewer labels: wait, which does not hold the step (labels may never come).
- ``estimate``: the label-free estimate of each version (when both give probabilities),
  compared like ``quality`` when ``estimate_gate``; otherwise shown only.
- ``alerts``: fail while any alert fires for the candidate.

Overall: any fail -> fail; else any wait on a required check -> wait; else pass. A check
that cannot compare because stable had no traffic in the window passes with
``numbers["compared"] = False`` (the earlier steps compared), never for lack of candidate
traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import stats

from shipyard.errors import MonitoringError
from shipyard.monitoring.ab_report import ABReport, analyse_ab, plan_sample
from shipyard.monitoring.drift import compare
from shipyard.monitoring.estimation import ESTIMATED, estimate_performance
from shipyard.monitoring.guardrails import (
    FAIL,
    PASS,
    WAIT,
    GuardrailCheck,
    error_rate_check,
    p99_check,
    quantile_bounds,
)
from shipyard.monitoring.noninferiority import (
    ALPHA,
    CLASSIFICATION_METRICS,
    FAIL_ALPHA,
    Outcome,
    compare_metrics,
    estimated,
    is_classification_metric,
    realised,
    shared_classes,
)
from shipyard.monitoring.performance import as_column, encode, infer_classes, label_key
from shipyard.monitoring.report import jsonable
from shipyard.monitoring.traffic import VersionTraffic
from shipyard.types import Array

MIN_LABELS = 30
"""Labelled rows a side before quality is compared."""
MIN_ROWS = 30
"""Predictions a side before their distributions are compared."""
DRIFT_THRESHOLDS = {"jensenshannon": 0.1, "wasserstein_norm": 0.25, "cohens_h": 0.25}
"""Default effect-size gates of prediction drift (``max_prediction_drift`` replaces them)."""


class CanaryLimits(Protocol):
    """What the analysis reads of a plan (``routing.plans.CanaryPlan`` has it all; monitoring
    sits beside routing in the layers, so it names the fields rather than the class)."""

    @property
    def max_error_rate(self) -> float: ...
    @property
    def max_p99_ms(self) -> float | None: ...
    @property
    def max_p99_ratio(self) -> float: ...
    @property
    def max_prediction_drift(self) -> float | None: ...
    @property
    def metric(self) -> str | None: ...
    @property
    def tolerance(self) -> float: ...
    @property
    def estimate_gate(self) -> bool: ...
    @property
    def min_requests(self) -> int: ...


@dataclass(frozen=True)
class Check:
    """One check: its outcome, why, and its figures. A wait on a check that is not
    ``required`` (quality before labels, an estimate shown only) does not hold the step."""

    name: str
    outcome: Outcome
    reason: str
    numbers: dict[str, Any]
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome, "reason": self.reason,
                "required": self.required, "numbers": jsonable(self.numbers)}


@dataclass(frozen=True)
class CanaryReport:
    outcome: Outcome
    checks: tuple[Check, ...]

    @property
    def reason(self) -> str:
        """The failed checks' reasons, else the blocking waits', else 'all checks passed'."""
        for outcome in (FAIL, WAIT):
            said = [f"{c.name}: {c.reason}" for c in self.checks
                    if c.outcome == outcome and (c.required or outcome == FAIL)]
            if said:
                return "; ".join(said)
        return "all checks passed"

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reason": self.reason,
                "checks": [c.to_dict() for c in self.checks]}


def analyse_canary(stable: VersionTraffic, candidate: VersionTraffic, plan: CanaryLimits,
                   firing: Sequence[str] = ()) -> CanaryReport:
    """Every check of ``candidate`` against ``stable`` over one interval (module docstring);
    ``firing``: names of the monitoring alerts firing for the candidate."""
    for side in (stable, candidate):
        if not 0 <= side.errors <= side.requests:
            raise MonitoringError(f"{side.version}: need 0 <= errors <= requests, got "
                                  f"{side.errors} of {side.requests}")
    checks = (_traffic(stable, candidate, plan), _error_rate(stable, candidate, plan),
              _latency(stable, candidate, plan), _prediction_drift(stable, candidate, plan),
              _quality(stable, candidate, plan), _estimate(stable, candidate, plan),
              _alerts(firing))
    if any(c.outcome == FAIL for c in checks):
        return CanaryReport(FAIL, checks)
    if any(c.outcome == WAIT and c.required for c in checks):
        return CanaryReport(WAIT, checks)
    return CanaryReport(PASS, checks)


def _traffic(stable: VersionTraffic, candidate: VersionTraffic, plan: CanaryLimits) -> Check:
    numbers = {"candidate_requests": candidate.requests, "stable_requests": stable.requests,
               "candidate_answered": candidate.answered, "stable_answered": stable.answered,
               "min_requests": plan.min_requests}
    if candidate.requests < plan.min_requests:
        return Check("traffic", WAIT, f"{candidate.requests} candidate requests, "
                     f"{plan.min_requests} needed", numbers)
    return Check("traffic", PASS, f"{candidate.requests} candidate requests", numbers)


def _from_guardrail(name: str, g: GuardrailCheck, **extra: Any) -> Check:
    numbers = {"stable": g.value_a, "candidate": g.value_b, "lower": g.lower,
               "upper": g.upper, "limit": g.limit, "compared": True, **extra}
    return Check(name, _outcome(g.status), g.reason.replace("B's", "the candidate's")
                 .replace("A's", "stable's"), numbers)


def _outcome(status: str) -> Outcome:
    for known in (PASS, FAIL, WAIT):
        if status == known:
            return known
    raise MonitoringError(f"unknown check status {status!r}")


def _error_rate(stable: VersionTraffic, candidate: VersionTraffic,
                plan: CanaryLimits) -> Check:
    if stable.requests > 0:
        g = error_rate_check(stable.errors, stable.requests, candidate.errors,
                             candidate.requests, plan.max_error_rate, ALPHA,
                             plan.min_requests)
        return _from_guardrail("error_rate", g, bounds="candidate - stable")
    n, x = candidate.requests, candidate.errors
    numbers: dict[str, Any] = {"stable": None, "candidate": x / n if n else None,
                               "limit": plan.max_error_rate, "compared": False,
                               "bounds": "candidate"}
    if n < plan.min_requests:
        return Check("error_rate", WAIT, f"{n} candidate requests, {plan.min_requests} "
                     "needed", numbers)
    ci = stats.binomtest(x, n).proportion_ci(1 - 2 * ALPHA, method="wilson")
    numbers.update(lower=float(ci.low), upper=float(ci.high))
    if ci.low > plan.max_error_rate:
        return Check("error_rate", FAIL, f"no stable traffic; the candidate's error rate "
                     f"{x / n:.3g} is above {plan.max_error_rate:g}", numbers)
    if ci.high <= plan.max_error_rate:
        return Check("error_rate", PASS, f"no stable traffic; the candidate's error rate "
                     f"{x / n:.3g} is within {plan.max_error_rate:g}", numbers)
    return Check("error_rate", WAIT, "no stable traffic; the candidate's error-rate bounds "
                 f"straddle {plan.max_error_rate:g}", numbers)


def _latency(stable: VersionTraffic, candidate: VersionTraffic, plan: CanaryLimits) -> Check:
    parts: list[tuple[Outcome, str]] = []
    numbers: dict[str, Any] = {"max_p99_ratio": plan.max_p99_ratio,
                               "max_p99_ms": plan.max_p99_ms, "compared": stable.requests > 0}
    if stable.requests > 0:
        g = p99_check(stable.latencies_ms, candidate.latencies_ms, plan.max_p99_ratio, ALPHA)
        numbers.update(stable_p99=g.value_a, candidate_p99=g.value_b, candidate_lower=g.lower,
                       candidate_upper=g.upper)
        if g.value_a and g.value_b is not None:
            numbers["ratio"] = g.value_b / g.value_a
        parts.append((_outcome(g.status), g.reason.replace("B's", "the candidate's")
                      .replace("A's", "stable's")))
    if plan.max_p99_ms is not None:
        low, high = quantile_bounds(candidate.latencies_ms, 0.99, 1 - ALPHA)
        numbers.update(absolute_lower=low, absolute_upper=high)
        if candidate.answered:
            numbers["candidate_p99"] = float(np.quantile(candidate.latencies_ms, 0.99))
        limit = plan.max_p99_ms
        parts.append((FAIL, f"the candidate's p99 is above {limit:g} ms")
                     if low is not None and low > limit else
                     (PASS, f"the candidate's p99 is within {limit:g} ms")
                     if high is not None and high <= limit else
                     (WAIT, f"too few requests to bound the p99 against {limit:g} ms"
                      if high is None else f"the p99 bounds straddle {limit:g} ms"))
    if not parts:
        return Check("latency", PASS, "no stable traffic to compare with and no max_p99_ms",
                     numbers)
    for status in (FAIL, WAIT):
        said = [reason for s, reason in parts if s == status]
        if said:
            return Check("latency", status, "; ".join(said), numbers)
    return Check("latency", PASS, "; ".join(r for _, r in parts), numbers)


def _classification(stable: VersionTraffic, candidate: VersionTraffic,
                    plan: CanaryLimits) -> bool:
    """Class labels rather than numbers: the plan's metric says so, else the model's labels
    or probabilities, else the predictions' type (anything but floats)."""
    if plan.metric is not None:
        return is_classification_metric(plan.metric)
    if any(s.class_labels or s.probabilities is not None for s in (stable, candidate)):
        return True
    kinds = {as_column(s.predictions).dtype.kind for s in (stable, candidate)
             if s.predictions.size}
    return not kinds <= {"f", "c"}


def _as_labels(values: Array, classes: list[object]) -> tuple[Array, dict[str, float]]:
    """Predictions as label text (None where missing), so 1, 1.0 and '1' are one class, and
    the share of each class (the ten most frequent)."""
    names = [label_key(c) for c in classes]
    codes = encode(as_column(values), classes)
    present = codes[codes >= 0]
    counts = np.bincount(present, minlength=len(names))
    top = np.argsort(-counts, kind="stable")[:10]
    shares = {names[i]: float(counts[i] / present.size) for i in top if counts[i]}
    text = np.array([*names, None], dtype=object)
    return np.asarray(text[np.where(codes >= 0, codes, len(names))]), shares


def _prediction_drift(stable: VersionTraffic, candidate: VersionTraffic,
                      plan: CanaryLimits) -> Check:
    s, c = as_column(stable.predictions), as_column(candidate.predictions)
    numbers: dict[str, Any] = {"rows_stable": int(s.size), "rows_candidate": int(c.size),
                               "compared": stable.requests > 0}
    if stable.requests == 0:
        return Check("prediction_drift", PASS, "no stable traffic to compare with", numbers)
    if min(s.size, c.size) < MIN_ROWS:
        return Check("prediction_drift", WAIT, f"{s.size} and {c.size} predictions, "
                     f"{MIN_ROWS} needed on each side", numbers)
    if c.size < plan.min_requests:
        # a distance's point estimate is biased upward on few rows: no verdict on the
        # candidate's predictions before the plan's traffic is in (as ``traffic`` waits)
        return Check("prediction_drift", WAIT, f"{c.size} candidate predictions, "
                     f"min_requests {plan.min_requests} needed before comparing them",
                     {**numbers, "min_requests": plan.min_requests})
    thresholds = dict(DRIFT_THRESHOLDS)
    if plan.max_prediction_drift is not None:
        thresholds = dict.fromkeys(thresholds, plan.max_prediction_drift)
    methods: dict[str, str] = {}
    if _classification(stable, candidate, plan):
        classes = infer_classes(s, c)
        (s, shares_s), (c, shares_c) = _as_labels(s, classes), _as_labels(c, classes)
        methods["prediction"] = "chi2"
        numbers["shares"] = {"stable": shares_s, "candidate": shares_c}
    else:
        s, c = s.astype(np.float64), c.astype(np.float64)
    report = compare({"prediction": s}, {"prediction": c}, methods=methods, alpha=FAIL_ALPHA,
                     correction="none", thresholds=thresholds, multivariate=False)
    col = report.columns["prediction"]
    numbers.update(method=col.method, statistic=col.statistic, p_value=col.p_value,
                   effect_name=col.effect_name, effect_size=col.effect_size,
                   threshold=col.threshold, alpha=FAIL_ALPHA)
    said = (f"{col.effect_name} {col.effect_size:.3g} against {col.threshold:.3g}, "
            f"p = {col.p_value:.2g}" if col.p_value is not None
            else str(col.detail.get("skipped", "not tested")))
    if col.drifted:
        return Check("prediction_drift", FAIL, f"the candidate's predictions differ: {said}",
                     numbers)
    return Check("prediction_drift", PASS, f"no material change: {said}", numbers)


def _quality(stable: VersionTraffic, candidate: VersionTraffic, plan: CanaryLimits) -> Check:
    metric = plan.metric
    if metric is None:
        return Check("quality", PASS, "no quality metric in the plan", {"compared": False},
                     required=False)
    if stable.truth is None or candidate.truth is None or stable.labelled < MIN_LABELS \
            or candidate.labelled < MIN_LABELS:
        return Check("quality", WAIT, f"{stable.labelled} and {candidate.labelled} labelled "
                     f"rows, {MIN_LABELS} needed on each side",
                     {"compared": False, "rows_stable": stable.labelled,
                      "rows_candidate": candidate.labelled}, required=False)
    pairs = [(s.truth, s.labelled_predictions if s.labelled_predictions is not None
              else np.empty(0)) for s in (stable, candidate)]
    classes = (shared_classes(stable.class_labels or candidate.class_labels,
                              *[x for pair in pairs for x in pair])
               if is_classification_metric(metric) else None)
    s_est, c_est = (realised(metric, t, p, classes) for t, p in pairs)
    if s_est.rows < MIN_LABELS or c_est.rows < MIN_LABELS or s_est.value is None \
            or c_est.value is None:
        return Check("quality", WAIT, f"{s_est.rows} and {c_est.rows} rows with a label and "
                     f"a prediction, {MIN_LABELS} needed on each side",
                     {"compared": False, "rows_stable": s_est.rows,
                      "rows_candidate": c_est.rows}, required=False)
    outcome, reason, numbers = compare_metrics(s_est, c_est, plan.tolerance)
    return Check("quality", outcome, reason, {**numbers, "compared": True})


def _estimate(stable: VersionTraffic, candidate: VersionTraffic, plan: CanaryLimits) -> Check:
    gate = plan.estimate_gate
    if stable.probabilities is None or candidate.probabilities is None:
        return Check("estimate", WAIT if gate else PASS,
                     "no probabilities on both versions to estimate from",
                     {"compared": False}, required=gate)
    classes = list(stable.class_labels or candidate.class_labels or ()) or None
    sides = {name: estimate_performance(np.asarray(s.probabilities, dtype=np.float64),
                                        classes, y_pred=_aligned(s))
             for name, s in (("stable", stable), ("candidate", candidate))}
    numbers: dict[str, Any] = {side: {m: r[m] for m in ESTIMATED} | {"rows": r["rows"]}
                               for side, r in sides.items()}
    if not gate:
        return Check("estimate", PASS, "label-free estimates shown; not a gate "
                     "(estimate_gate is off)", {**numbers, "compared": False}, required=False)
    metric = plan.metric if plan.metric in CLASSIFICATION_METRICS else "accuracy"
    rows = min(r["rows"] for r in sides.values())
    if rows < MIN_ROWS:
        return Check("estimate", WAIT, f"{rows} rows with probabilities, {MIN_ROWS} needed "
                     "on each side", {**numbers, "compared": False})
    s_est, c_est = (estimated(metric, np.asarray(s.probabilities), classes, _aligned(s))
                    for s in (stable, candidate))
    if s_est.value is None or c_est.value is None:
        return Check("estimate", WAIT, f"the estimate of {metric} is undefined here",
                     {**numbers, "compared": False})
    outcome, reason, compared = compare_metrics(s_est, c_est, plan.tolerance)
    return Check("estimate", outcome, f"estimated {reason}",
                 {**numbers, **compared, "compared": True})


def _aligned(side: VersionTraffic) -> Array | None:
    """The predictions when they line up with the probability rows (the predicted class)."""
    p = side.probabilities
    return side.predictions if p is not None and len(side.predictions) == len(p) else None


def _alerts(firing: Sequence[str]) -> Check:
    names = sorted(set(firing))
    if names:
        return Check("alerts", FAIL, f"alerts firing for the candidate: {', '.join(names)}",
                     {"firing": names})
    return Check("alerts", PASS, "no alert firing for the candidate", {"firing": []})


__all__ = ["ABReport", "CanaryLimits", "CanaryReport", "Check", "analyse_ab",
           "analyse_canary", "plan_sample"]
