"""An A/B test's report (pure): two versions' traffic, the plan, the planned sample -> a
plain verdict with its numbers, and the guardrails (``experiments``, ``guardrails``).

The metric is per request, as ``experiments`` needs: ``accuracy`` (each labelled row right
or wrong: a proportion) or ``mae`` (each labelled row's absolute error: a mean). F1,
precision, recall and RMSE are not means of requests and are refused (MonitoringError):
their A/B test would need another method. Lower is better for MAE.

- `plan_sample(plan, sd=None)`: the sample size from the plan's ``mde``, ``alpha``,
  ``power``, ``baseline`` (None: 0.5, a proportion's least favourable) and ``split``
  (ratio n_b / n_a = split / (100 - split)); ``mae`` needs ``sd``, one request's standard
  deviation of the absolute error.
- `analyse_ab(a, b, plan, sample, previous=None)`: ``experiments.verdict`` over the labelled
  rows of each version (sequential plans carry the always-valid p-value and interval over
  looks through ``previous``, a report or its ``to_dict()``), and ``guardrails.guardrails``
  over every request (errors, p99 latency: b against a).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

import numpy as np

from shipyard.errors import MonitoringError
from shipyard.monitoring.experiments import (
    A_BETTER,
    B_BETTER,
    NO_DIFFERENCE,
    NOT_YET_KNOWN,
    Arm,
    MetricKind,
    SamplePlan,
    Verdict,
    sample_size,
    verdict,
)
from shipyard.monitoring.guardrails import GuardrailReport, guardrails
from shipyard.monitoring.performance import as_column, is_missing, labelled_rows
from shipyard.monitoring.report import jsonable
from shipyard.monitoring.traffic import VersionTraffic

ABVerdict = Literal["a_better", "b_better", "no_difference", "not_yet_known"]
PER_REQUEST: dict[str, MetricKind] = {"accuracy": "proportion", "mae": "mean"}
WORDS: dict[str, ABVerdict] = {A_BETTER: "a_better", B_BETTER: "b_better",
                               NO_DIFFERENCE: "no_difference", NOT_YET_KNOWN: "not_yet_known"}


class ABLimits(Protocol):
    """What the analysis reads of a plan (``routing.plans.ABPlan``)."""

    @property
    def split(self) -> float: ...
    @property
    def metric(self) -> str: ...
    @property
    def mde(self) -> float: ...
    @property
    def alpha(self) -> float: ...
    @property
    def power(self) -> float: ...
    @property
    def baseline(self) -> float | None: ...
    @property
    def sd(self) -> float | None: ...
    @property
    def sequential(self) -> bool: ...
    @property
    def max_error_rate(self) -> float: ...
    @property
    def max_p99_ratio(self) -> float: ...


def _kind(metric: str) -> MetricKind:
    kind = PER_REQUEST.get(metric)
    if kind is None:
        raise MonitoringError(f"an A/B test compares a per-request metric; {metric!r} is "
                              f"not one: use {' or '.join(PER_REQUEST)}")
    return kind


def plan_sample(plan: ABLimits, *, sd: float | None = None) -> SamplePlan:
    """Per-variant sample sizes for ``plan`` (see the module docstring); ``sd`` defaults to
    the plan's own."""
    sd = sd if sd is not None else plan.sd
    kind = _kind(plan.metric)
    baseline = plan.baseline if plan.baseline is not None else (
        0.5 if kind == "proportion" else 0.0)
    ratio = plan.split / (100.0 - plan.split)
    return sample_size(kind, baseline, plan.mde, plan.alpha, plan.power, ratio, sd,
                       plan.sequential)


def arm(traffic: VersionTraffic, metric: str) -> Arm:
    """One version's per-request metric over its labelled rows (missing labels dropped)."""
    kind = _kind(metric)
    truth = traffic.truth if traffic.truth is not None else np.empty(0)
    pred = traffic.labelled_predictions if traffic.labelled_predictions is not None \
        else np.empty(0)
    if len(truth) != len(pred):
        raise MonitoringError(f"{traffic.version}: {len(truth)} labels but {len(pred)} "
                              "labelled predictions")
    if kind == "proportion":  # right when the label's class is the predicted one
        rows = labelled_rows(truth, pred, traffic.class_labels)
        right = int(np.count_nonzero((rows.true == rows.pred) & (rows.true >= 0)))
        return Arm.from_counts(right, len(rows.true))
    t, p = as_column(truth), as_column(pred)
    keep = ~(is_missing(t) | is_missing(p))
    errors = np.abs(t[keep].astype(np.float64) - p[keep].astype(np.float64))
    return Arm.from_values(errors)


@dataclass(frozen=True)
class ABReport:
    """The verdict ('a_better' | 'b_better' | 'no_difference' | 'not_yet_known'), the test
    behind it (``test``: counts, estimates, difference b - a, interval, p-value, planned
    n), the guardrails (b against a) and the planned sample."""

    verdict: ABVerdict
    reason: str
    metric: str
    version_a: str
    version_b: str
    requests_a: int
    requests_b: int
    test: Verdict
    guardrails: GuardrailReport
    sample: SamplePlan

    @property
    def interval(self) -> tuple[float, float] | None:
        return self.test.interval

    def to_dict(self) -> dict[str, Any]:
        t = self.test
        return dict(jsonable({
            "verdict": self.verdict, "reason": self.reason, "metric": self.metric,
            "higher_is_better": t.higher_is_better, "method": t.method,
            "versions": {"a": self.version_a, "b": self.version_b},
            "requests": {"a": self.requests_a, "b": self.requests_b},
            "labelled": {"a": t.n_a, "b": t.n_b},
            "planned": {"a": self.sample.n_a, "b": self.sample.n_b},
            "estimates": {"a": t.estimate_a, "b": t.estimate_b},
            "difference": t.difference, "interval": t.interval, "p_value": t.p_value,
            "alpha": t.alpha, "mde": t.mde, "guardrails": self.guardrails.to_dict(),
            "sample": self.sample.to_dict(), "test": t.to_dict()}))


def _previous(previous: ABReport | Mapping[str, Any] | None) -> Verdict | None:
    if previous is None or isinstance(previous, ABReport):
        return None if previous is None else previous.test
    doc = previous.get("test")
    if not isinstance(doc, Mapping):
        raise MonitoringError("a previous A/B report needs its 'test' (ABReport.to_dict())")
    names = {f.name for f in fields(Verdict)}
    values = {k: v for k, v in doc.items() if k in names}
    if values.get("interval") is not None:
        values["interval"] = tuple(values["interval"])
    try:
        return Verdict(**values)
    except TypeError as exc:
        raise MonitoringError(f"a previous A/B report's test is incomplete: {exc}") from None


def analyse_ab(a: VersionTraffic, b: VersionTraffic, plan: ABLimits, sample: SamplePlan,
               previous: ABReport | Mapping[str, Any] | None = None) -> ABReport:
    """The verdict of ``b`` against ``a`` and the guardrails (see the module docstring)."""
    kind = _kind(plan.metric)
    if sample.metric_kind != kind:
        raise MonitoringError(f"the planned sample is for a {sample.metric_kind}, the "
                              f"metric {plan.metric!r} is a {kind}")
    test = verdict(arm(a, plan.metric), arm(b, plan.metric), sample,
                   higher_is_better=plan.metric != "mae", previous=_previous(previous))
    rails = guardrails(a.errors, a.requests, b.errors, b.requests, a.latencies_ms,
                       b.latencies_ms, max_error_increase=plan.max_error_rate,
                       max_p99_ratio=plan.max_p99_ratio, alpha=plan.alpha)
    return ABReport(WORDS[test.verdict], test.reason, plan.metric, a.version, b.version,
                    a.requests, b.requests, test, rails, sample)


__all__ = ["ABReport", "analyse_ab", "arm", "plan_sample"]
