"""The records `Rollouts` returns: `Rollout` (a row, its plan and, when asked, its decisions)
and `RolloutDecision`, with the checks of the values they are made from."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shipyard.errors import RegistryError
from shipyard.registry.queries import utc
from shipyard.routing.plans import ABPlan, CanaryPlan, Plan, ShadowPlan, plan_from_dict

KINDS = ("canary", "ab", "shadow", "bluegreen")
STATES = ("running", "promoted", "aborted", "finished")
OUTCOMES = ("pass", "fail", "wait", "advance", "promote", "abort", "switch", "verdict",
            "observe", "start")
RECORDED = ("pass", "fail", "wait", "verdict", "observe")
"""The outcomes `Rollouts.record` stores: those that change no traffic."""
_MAX_TEXT = 2000


@dataclass(frozen=True)
class RolloutDecision:
    """One decision taken on a rollout: at which step and share, what, why, the numbers."""

    id: int
    rollout_id: int
    at: datetime
    step: int
    percent: float | None
    outcome: str
    reason: str
    numbers: dict[str, Any]
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "rollout_id": self.rollout_id, "at": self.at.isoformat(),
                "step": self.step, "percent": self.percent, "outcome": self.outcome,
                "reason": self.reason, "numbers": self.numbers, "actor": self.actor}


@dataclass(frozen=True)
class Rollout:
    """A rollout of ``candidate`` on ``endpoint`` against ``stable`` (for an A/B test: b
    against a), by its ``plan``; ``decisions`` oldest first, when they were asked for."""

    id: int
    endpoint: str
    kind: str
    state: str
    stable: str
    candidate: str
    plan: Plan
    step: int
    step_started_at: datetime
    failures: int
    created_at: datetime
    created_by: str
    finished_at: datetime | None
    reason: str | None
    policy_revision: int
    decisions: list[RolloutDecision] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def percent(self) -> float | None:
        """The candidate's share of traffic now (canary: its step's; A/B: the split; shadow:
        the share copied); None for blue-green (all or nothing, see the policy)."""
        return share(self.plan, self.step)

    @property
    def last_step(self) -> bool:
        """Whether a canary is at its last step (the next move is promote)."""
        return isinstance(self.plan, CanaryPlan) and self.step >= len(self.plan.steps) - 1

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint": self.endpoint, "kind": self.kind,
                "state": self.state, "stable": self.stable, "candidate": self.candidate,
                "plan": self.plan.to_dict(), "step": self.step, "percent": self.percent,
                "step_started_at": self.step_started_at.isoformat(),
                "failures": self.failures, "created_at": self.created_at.isoformat(),
                "created_by": self.created_by,
                "finished_at": None if self.finished_at is None
                else self.finished_at.isoformat(),
                "reason": self.reason, "policy_revision": self.policy_revision,
                "decisions": [d.to_dict() for d in self.decisions]}


def share(plan: Plan, step: int) -> float | None:
    """The candidate's percent of traffic at ``step`` of ``plan`` (see `Rollout.percent`)."""
    if isinstance(plan, CanaryPlan):
        return plan.steps[min(step, len(plan.steps) - 1)]
    if isinstance(plan, ABPlan):
        return plan.split
    return plan.percent if isinstance(plan, ShadowPlan) else None


def to_decision(row: sa.Row[Any]) -> RolloutDecision:
    return RolloutDecision(row.id, row.rollout_id, utc(row.at), row.step, row.percent,
                           row.outcome, row.reason, dict(row.numbers), row.actor)


def to_rollout(row: sa.Row[Any], decisions: list[RolloutDecision] | None = None) -> Rollout:
    return Rollout(
        id=row.id, endpoint=row.endpoint, kind=row.kind, state=row.state, stable=row.stable,
        candidate=row.candidate, plan=plan_from_dict(row.kind, row.spec), step=row.step,
        step_started_at=utc(row.step_started_at), failures=row.failures,
        created_at=utc(row.created_at), created_by=row.created_by,
        finished_at=None if row.finished_at is None else utc(row.finished_at),
        reason=row.reason, policy_revision=row.policy_revision,
        decisions=list(decisions or ()))


def check_text(value: object, what: str) -> str:
    """A reason or note: non-blank text of at most 2000 characters."""
    if not isinstance(value, str) or not value.strip():
        raise RegistryError(f"a rollout {what} must be non-blank text, not {value!r}")
    if len(value) > _MAX_TEXT:
        raise RegistryError(f"rollout {what} is {len(value)} characters long; "
                            f"at most {_MAX_TEXT}")
    return value


def jsonable(value: Any, where: str = "numbers") -> Any:
    """``value`` as plain JSON for a decision's ``numbers``: numpy scalars and arrays become
    numbers and lists, tuples lists; NaN and infinities (no JSON for them) become None.
    Anything else that JSON cannot hold is refused, naming where it is."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RegistryError(f"{where} has a key {key!r} that is not text")
            out[key] = jsonable(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist(), where)
    raise RegistryError(f"{where} holds a {type(value).__name__}, which a rollout decision "
                        "cannot store (numbers, text, lists and objects only)")
