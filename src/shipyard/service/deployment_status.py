"""What the CLI and the HTTP admin API show of a deployment: its policy with each version's
share of the traffic, the running rollout with its step and latest decisions, the history,
and an A/B test's planned sample size. Plain JSON-able documents, one shape for both faces
(``shipyard rollout status --json`` prints what ``GET /v1/deployments/{endpoint}`` answers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.errors import MonitoringError, NotFoundError, RoutingError
from shipyard.routing import BlueGreen, Policy, Shadow, Single, StickyAB, Weighted, policy_to_dict
from shipyard.routing.plans import ABPlan, CanaryPlan
from shipyard.routing.policies import weighted_variant

if TYPE_CHECKING:
    from shipyard.monitoring.experiments import SamplePlan
    from shipyard.registry import Registry, Rollout

DECISIONS_SHOWN = 10  # the newest decisions a status shows (history shows them all)


def traffic_shares(policy: Policy) -> list[dict[str, Any]]:
    """Each warm version of ``policy`` with its variant and the percent of requests it
    answers; a shadow candidate answers none and gets ``copied_percent`` % as copies."""
    if isinstance(policy, Single):
        return [_share(policy.version, "stable", 100.0)]
    if isinstance(policy, Weighted):
        return [_share(v, weighted_variant(i), w) for i, (v, w) in enumerate(policy.splits)]
    if isinstance(policy, StickyAB):
        return [_share(policy.a, "a", 100.0 - policy.split), _share(policy.b, "b", policy.split)]
    if isinstance(policy, Shadow):
        return [_share(policy.primary, "primary", 100.0),
                {**_share(policy.candidate, "shadow", 0.0), "copied_percent": policy.percent}]
    if isinstance(policy, BlueGreen):
        return [_share(policy.blue, "blue", 100.0 if policy.live == "blue" else 0.0),
                _share(policy.green, "green", 100.0 if policy.live == "green" else 0.0)]
    raise RoutingError(f"unknown policy {type(policy).__name__}")


def _share(version: str, variant: str, percent: float) -> dict[str, Any]:
    return {"version": version, "variant": variant, "percent": float(percent)}


def rollout_doc(rollout: Rollout, *, decisions: int | None = None) -> dict[str, Any]:
    """``rollout.to_dict()`` with its number of steps (canary) or its planned sample size
    (A/B); with ``decisions`` only that many of the newest decisions, newest first."""
    doc = rollout.to_dict()
    plan = rollout.plan
    if isinstance(plan, CanaryPlan):
        doc["steps"] = len(plan.steps)
    if isinstance(plan, ABPlan):
        doc["sample_plan"] = ab_sample_plan(plan).to_dict()
    found = doc.get("decisions")
    if isinstance(found, list):
        newest = sorted(found, key=lambda d: (str(d.get("at")), d.get("id") or 0), reverse=True)
        doc["decisions"] = newest if decisions is None else newest[:decisions]
    return doc


def deployment_status(registry: Registry, endpoint: str, *,
                      decisions: int = DECISIONS_SHOWN) -> dict[str, Any]:
    """The endpoint's policy, traffic shares and running rollout (`NotFoundError` when it has
    no policy and never had a rollout)."""
    current = registry.deployments.current(endpoint)
    if current is None:
        raise NotFoundError(f"endpoint {endpoint!r} has no deployment: "
                            f"`shipyard deploy {endpoint} MODEL_URI` makes one")
    revision, policy = current
    running = registry.rollouts.active(endpoint)
    return {"endpoint": endpoint, "revision": revision, "policy": policy_to_dict(policy),
            "traffic": traffic_shares(policy),
            "rollout": None if running is None else rollout_doc(running, decisions=decisions)}


def deployments_overview(registry: Registry) -> list[dict[str, Any]]:
    """Every endpoint with a policy: its revision, policy, traffic and running rollout
    (without its decisions)."""
    running = {r.endpoint: r for r in registry.rollouts.running()}
    out = []
    for endpoint in registry.deployments.endpoints():
        current = registry.deployments.current(endpoint)
        if current is None:  # removed between the two reads
            continue
        revision, policy = current
        rollout = running.get(endpoint)
        doc = None if rollout is None else rollout_doc(rollout, decisions=0)
        if doc is not None:
            doc.pop("decisions", None)
        out.append({"endpoint": endpoint, "revision": revision,
                    "policy": policy_to_dict(policy), "traffic": traffic_shares(policy),
                    "rollout": doc})
    return out


def deployment_history(registry: Registry, endpoint: str, *,
                       limit: int = 20) -> dict[str, Any]:
    """The endpoint's rollouts (newest first, each with all its decisions) and its policy
    revisions (newest first: deploys and rollbacks happen outside rollouts too);
    `NotFoundError` when no policy was ever set."""
    revisions = registry.deployments.history(endpoint)
    rollouts = registry.rollouts.history(endpoint, limit=limit)
    return {"endpoint": endpoint,
            "rollouts": [rollout_doc(r) for r in rollouts],
            "revisions": [r.to_dict() for r in reversed(revisions)][:limit]}


def ab_sample_plan(plan: ABPlan) -> SamplePlan:
    """The A/B test's planned sample per variant (``monitoring.ab_report.plan_sample``:
    from its ``mde``, ``alpha``, ``power``, ``split``, ``baseline`` and, for mae, ``sd``);
    a plan that cannot be met is a `RoutingError` naming why."""
    from shipyard.monitoring.ab_report import plan_sample

    try:
        return plan_sample(plan)
    except MonitoringError as exc:
        raise RoutingError(f"cannot plan the A/B test (baseline, mde, alpha, power, sd): "
                           f"{exc}") from None
