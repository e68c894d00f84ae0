"""Rollout plans round-trip through their stored form; every bad field is refused by name."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shipyard.errors import RoutingError
from shipyard.routing.plans import (
    ABPlan,
    BlueGreenPlan,
    CanaryPlan,
    Plan,
    ShadowPlan,
    plan_from_dict,
)

PLANS: list[Plan] = [
    CanaryPlan(),
    CanaryPlan(steps=(1, 2.5, 100), interval_s=30, max_error_rate=0.05, max_p99_ms=250,
               max_p99_ratio=2, max_prediction_drift=0.2, metric="rmse", tolerance=0,
               estimate_gate=True, min_requests=1, failures=3, alias="production",
               key="json:user.id"),
    ABPlan(),
    ABPlan(split=10, key="header:X-User-Id", metric="mae", sd=2.5, mde=0.05, alpha=0.01, power=0.9,
           baseline=0.7, sequential=False, interval_s=60, max_error_rate=0.02,
           max_p99_ratio=1.2),
    ShadowPlan(),
    ShadowPlan(percent=12.5, interval_s=5),
    BlueGreenPlan(),
]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: f"{p.kind}")
def test_every_plan_round_trips_through_json(plan: Plan) -> None:
    doc = json.loads(json.dumps(plan.to_dict()))  # what the registry stores
    back = plan_from_dict(plan.kind, doc)
    assert back == plan and type(back) is type(plan)
    assert back.to_dict() == plan.to_dict()


def test_stored_form_lists_the_steps_and_every_field() -> None:
    doc = CanaryPlan(steps=(10, 100)).to_dict()
    assert doc["steps"] == [10.0, 100.0]
    assert set(doc) == {"steps", "interval_s", "max_error_rate", "max_p99_ms",
                        "max_p99_ratio", "max_prediction_drift", "metric", "tolerance",
                        "estimate_gate", "min_requests", "failures", "alias", "key"}
    assert BlueGreenPlan().to_dict() == {}
    assert plan_from_dict("canary", {}) == CanaryPlan()  # missing fields take defaults


@pytest.mark.parametrize("cls, fields, message", [
    (CanaryPlan, {"steps": "5,100"}, "steps must be a list"),
    (CanaryPlan, {"steps": ()}, "at least one percentage"),
    (CanaryPlan, {"steps": (5, 0, 100)}, r"steps\[1\] must be a number > 0"),
    (CanaryPlan, {"steps": (5, 101)}, r"steps\[1\] must be a percentage"),
    (CanaryPlan, {"steps": (50, 20, 100)}, "steps must rise"),
    (CanaryPlan, {"steps": (5, 50)}, "last step must be 100"),
    (CanaryPlan, {"steps": (5.001, 100)}, "at most two decimals"),
    (CanaryPlan, {"steps": (True, 100)}, r"steps\[0\]"),
    (CanaryPlan, {"interval_s": 0}, "interval_s must be a number > 0"),
    (CanaryPlan, {"interval_s": float("nan")}, "interval_s"),
    (CanaryPlan, {"interval_s": 1e308}, "at most 30 days"),
    (ABPlan, {"interval_s": 31 * 86400}, "at most 30 days"),
    (ShadowPlan, {"interval_s": 1e12}, "would never act"),
    (CanaryPlan, {"max_error_rate": 1}, "max_error_rate must be between 0 and 1"),
    (CanaryPlan, {"max_p99_ms": -1}, "max_p99_ms"),
    (CanaryPlan, {"max_p99_ratio": 0.5}, "max_p99_ratio must be >= 1"),
    (CanaryPlan, {"max_prediction_drift": 0}, "max_prediction_drift"),
    (CanaryPlan, {"metric": "auc"}, "metric must be one of"),
    (CanaryPlan, {"tolerance": -0.1}, "tolerance must be a number >= 0"),
    (CanaryPlan, {"estimate_gate": 1}, "estimate_gate must be true or false"),
    (CanaryPlan, {"min_requests": 0}, "min_requests must be a whole number >= 1"),
    (CanaryPlan, {"min_requests": 1.5}, "min_requests"),
    (CanaryPlan, {"failures": 0}, "failures must be a whole number >= 1"),
    (CanaryPlan, {"alias": ""}, "alias must be a non-empty string"),
    (CanaryPlan, {"key": "cookie:x"}, "key spec .cookie:x. is not understood"),
    (CanaryPlan, {"key": 3}, "key must be a key spec string"),
    (ABPlan, {"split": 100}, "split .* must be below 100"),
    (ABPlan, {"split": 0}, "split must be a number > 0"),
    (ABPlan, {"key": None}, "key must be a key spec string"),
    (ABPlan, {"metric": None}, "metric must be one of"),
    (ABPlan, {"mde": 0}, "mde must be a number > 0"),
    (ABPlan, {"alpha": 1.5}, "alpha must be between 0 and 1"),
    (ABPlan, {"power": 0}, "power must be a number > 0"),
    (ABPlan, {"baseline": -0.1}, "baseline"),
    (ABPlan, {"sequential": "yes"}, "sequential must be true or false"),
    (ABPlan, {"interval_s": -1}, "interval_s"),
    (ABPlan, {"max_error_rate": 0}, "max_error_rate"),
    (ABPlan, {"max_p99_ratio": 0}, "max_p99_ratio"),
    (ShadowPlan, {"percent": 0}, "percent must be a number > 0"),
    (ShadowPlan, {"percent": 150}, "percent must be a percentage"),
    (ShadowPlan, {"interval_s": 0}, "interval_s"),
])
def test_bad_fields_are_refused_by_name(cls: type[Plan], fields: dict[str, Any],
                                        message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        cls(**fields)
    # the stored form is checked the same way
    doc = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
    with pytest.raises(RoutingError):
        plan_from_dict(cls.kind, doc)


@pytest.mark.parametrize("kind, doc, message", [
    ("rolling", {}, "unknown rollout kind 'rolling'"),
    ("canary", [5, 100], "must be an object, not list"),
    ("canary", {"stepz": [100]}, "has no field.* stepz"),
    ("bluegreen", {"live": "blue"}, "has no field.* live"),
    ("shadow", {"kind": "shadow"}, "has no field.* kind"),
])
def test_bad_stored_plans_are_refused(kind: str, doc: Any, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        plan_from_dict(kind, doc)
