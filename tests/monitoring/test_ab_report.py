"""A/B reports: the planned sample, validity when looking every 100 requests, power at the
planned sample, and the report's shape. Requests are drawn at once per experiment (seeded);
every look goes through analyse_ab, carrying the last report over."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shipyard.errors import MonitoringError, RoutingError
from shipyard.monitoring.ab_report import ABReport, analyse_ab, plan_sample
from shipyard.monitoring.experiments import sample_size
from shipyard.monitoring.traffic import VersionTraffic
from shipyard.routing.plans import ABPlan

SIMS, BLOCK = 200, 100
PLAN = ABPlan(metric="accuracy", baseline=0.7, mde=0.1)


def _experiments(rng: np.random.Generator, p_a: float, p_b: float, n: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per experiment and request: was the prediction right (1) or wrong (0), per arm."""
    return ((rng.random((SIMS, n)) < p_a).astype(np.int64),
            (rng.random((SIMS, n)) < p_b).astype(np.int64))


def _traffic(name: str, right: np.ndarray) -> VersionTraffic:
    # the label is always class 1; a right prediction says 1, a wrong one 0
    return VersionTraffic(name, right.size, truth=np.ones(right.size, dtype=np.int64),
                          labelled_predictions=right)


def _final_verdicts(right_a: np.ndarray, right_b: np.ndarray, plan: ABPlan) -> list[str]:
    sample = plan_sample(plan)
    words: list[str] = []
    for a, b in zip(right_a, right_b, strict=True):
        last: ABReport | None = None
        for look in range(BLOCK, a.size + 1, BLOCK):
            last = analyse_ab(_traffic("m/1", a[:look]), _traffic("m/2", b[:look]), plan,
                              sample, previous=last)
        assert last is not None
        words.append(last.verdict)
    return words


def test_plan_sample_reads_the_plan() -> None:
    plan = plan_sample(ABPlan(split=25.0, mde=0.05, baseline=None, sequential=False))
    same = sample_size("proportion", 0.5, 0.05, 0.05, 0.8, ratio=25 / 75)
    assert (plan.n_a, plan.n_b) == (same.n_a, same.n_b) and plan.n_a > 3 * plan.n_b - 3
    assert plan_sample(PLAN).sequential and plan_sample(PLAN).n_a == sample_size(
        "proportion", 0.7, 0.1, sequential=True).n_a
    with pytest.raises(RoutingError, match="needs sd"):  # the plan refuses it up front
        ABPlan(metric="mae", mde=0.1)
    assert plan_sample(ABPlan(metric="mae", mde=0.1, sd=1.0)).metric_kind == "mean"
    assert plan_sample(ABPlan(metric="mae", mde=0.1, sd=1.0), sd=2.0).n_a > plan_sample(
        ABPlan(metric="mae", mde=0.1, sd=1.0)).n_a  # an explicit sd wins
    with pytest.raises(RoutingError, match="metric must be one of accuracy, mae"):
        ABPlan(metric="f1")  # not a per-request average: the sequential test cannot use it


def test_no_real_difference_looked_at_every_100_requests_stays_within_alpha() -> None:
    sample = plan_sample(PLAN)
    looks = -(-2 * sample.n_a // BLOCK)  # on to twice the planned sample
    right_a, right_b = _experiments(np.random.default_rng(140), 0.7, 0.7, looks * BLOCK)
    words = _final_verdicts(right_a, right_b, PLAN)
    false_positives = words.count("a_better") + words.count("b_better")
    assert false_positives <= PLAN.alpha * SIMS, false_positives
    assert words.count("no_difference") + words.count("not_yet_known") >= 190


def test_a_difference_of_the_mde_is_found_at_about_the_planned_power() -> None:
    sample = plan_sample(PLAN)
    right_a, right_b = _experiments(np.random.default_rng(141), 0.7, 0.8,
                                    -(-sample.n_a // BLOCK) * BLOCK)
    words = _final_verdicts(right_a, right_b, PLAN)
    power = words.count("b_better") / SIMS
    assert 0.75 <= power <= 0.97, power  # planned 0.8 at the last look; early stops add
    assert "a_better" not in words


def test_a_fixed_horizon_refuses_a_verdict_before_its_planned_sample() -> None:
    plan = ABPlan(metric="accuracy", baseline=0.7, mde=0.1, sequential=False)
    sample = plan_sample(plan)
    rng = np.random.default_rng(142)
    a, b = (rng.random(sample.n_a) < 0.6).astype(np.int64), np.ones(sample.n_a, np.int64)
    early = analyse_ab(_traffic("m/1", a[:200]), _traffic("m/2", b[:200]), plan, sample)
    assert early.verdict == "not_yet_known" and early.interval is None
    done = analyse_ab(_traffic("m/1", a), _traffic("m/2", b), plan, sample)
    assert done.verdict == "b_better" and done.interval is not None and done.interval[0] > 0


def test_the_report_carries_over_from_its_stored_form_and_is_strict_json() -> None:
    sample = plan_sample(PLAN)
    rng = np.random.default_rng(143)
    a = VersionTraffic("m/1", 1000, 0, rng.lognormal(2.0, 0.3, 1000),
                       truth=np.ones(400, np.int64),
                       labelled_predictions=(rng.random(400) < 0.6).astype(np.int64))
    b = VersionTraffic("m/2", 1000, 80, rng.lognormal(2.0, 0.3, 920),
                       truth=np.ones(400, np.int64), labelled_predictions=np.ones(400, np.int64))
    first = analyse_ab(a, b, PLAN, sample)
    doc = first.to_dict()
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    assert doc["verdict"] == "b_better" and doc["labelled"] == {"a": 400, "b": 400}
    assert doc["requests"] == {"a": 1000, "b": 1000} and doc["planned"]["a"] == sample.n_a
    assert doc["guardrails"]["status"] == "fail"  # b's 8% errors against a's none
    assert doc["interval"][0] < doc["difference"] < doc["interval"][1]
    # a noisy later look keeps the earlier always-valid result, from the stored dict too
    small = (_traffic("m/1", np.repeat([1, 0], [12, 8])),
             _traffic("m/2", np.ones(20, np.int64)))
    alone = analyse_ab(*small, PLAN, sample)
    later = analyse_ab(*small, PLAN, sample, previous=doc)
    assert alone.verdict == "not_yet_known" and alone.test.p_value is not None
    assert later.verdict == "b_better" and later.test.p_value == first.test.p_value
    assert later.interval == first.interval
    with pytest.raises(MonitoringError, match="'test'"):
        analyse_ab(*small, PLAN, sample, previous={"verdict": "b_better"})


def test_mae_counts_smaller_errors_as_better() -> None:
    plan = ABPlan(metric="mae", mde=0.2, sd=1.0)
    sample = plan_sample(plan)
    rng = np.random.default_rng(144)
    truth = rng.normal(0, 3, 3000)
    a = VersionTraffic("h/1", 3000, truth=truth, labelled_predictions=truth + rng.normal(
        0, 1.5, 3000))
    b = VersionTraffic("h/2", 3000, truth=truth, labelled_predictions=truth + rng.normal(
        0, 0.8, 3000))
    report = analyse_ab(a, b, plan, sample)
    assert report.verdict == "b_better" and report.to_dict()["higher_is_better"] is False
    with pytest.raises(MonitoringError, match="planned sample is for a mean"):
        analyse_ab(a, b, PLAN, sample)
