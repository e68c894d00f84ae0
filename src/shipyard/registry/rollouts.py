"""``Rollouts``: canary, A/B, shadow and blue-green rollouts of an endpoint, in the registry.

A rollout moves an endpoint's traffic from its ``stable`` version to a ``candidate`` by a
plan (`shipyard.routing.plans`). Every change of traffic is a revision of the endpoint's
policy (`Deployments.set_policy`) written in the SAME transaction as the rollout's row, its
decision (``rollout_decisions``) and its audit record (``rollout.<verb>``): a crash leaves
all of them or none. Each transaction first locks the endpoint's policy row, so changes of
one endpoint queue; at most one rollout per endpoint runs (checked there, and by a partial
unique index against racers). Versions given as URIs (``models:/iris/3``,
``models:/iris@prod``, ``iris/3``) are resolved to the exact ``NAME/VERSION`` first. Times
come from ``clock`` (seconds since the epoch), injectable for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import (
    ConflictError,
    MonitoringError,
    NotFoundError,
    RegistryError,
    RoutingError,
)
from shipyard.registry import rollout_rows as rows
from shipyard.registry.deployments import PolicyRevision, check_endpoint
from shipyard.registry.rollout_records import (
    RECORDED,
    Rollout,
    RolloutDecision,
    check_text,
    share,
    to_rollout,
)
from shipyard.registry.uri import LATEST, check_alias
from shipyard.routing import (
    BlueGreen,
    Policy,
    Shadow,
    Single,
    StickyAB,
    Weighted,
    parse_key_spec,
    policy_to_dict,
)
from shipyard.routing.plans import ABPlan, BlueGreenPlan, CanaryPlan, Plan, ShadowPlan

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

# builds the policy of a new rollout from (its id's salt, stable, candidate)
_Build = Callable[[str, str, str], Policy]


def salt(rollout_id: int) -> str:
    """The routing salt of a rollout's policies: kept through its steps, so keys stay put."""
    return f"rollout-{rollout_id}"


def _plan(plan: object, cls: type[Plan]) -> Any:
    if not isinstance(plan, cls):
        raise RegistryError(f"a {cls.kind} rollout needs a {cls.__name__}, "
                            f"not {type(plan).__name__}")
    return plan


class Rollouts:
    """The rollouts of a registry's endpoints: ``Registry.rollouts``."""

    def __init__(self, registry: Registry, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.clock = clock

    # -- starting ----------------------------------------------------------------------------

    def deploy(self, endpoint: str, uri: str, *, reason: str,
               require_evaluation: bool = False,
               override_evaluation: str | None = None) -> PolicyRevision:
        """Send all of the endpoint's traffic to one version; refused while a rollout runs
        (and, when an evaluation is required, without the version's passed evaluation)."""
        evaluation = self.registry.evaluations.requirement(require_evaluation,
                                                          override_evaluation)
        with self._transaction(endpoint, reason) as (conn, current, why):
            rows.refuse_running(conn, endpoint)
            version = rows.resolve(conn, uri)
            if evaluation is not None:
                self.registry.evaluations.require(
                    conn, *rows.split(version), rows.manifest(conn, version),
                    action=f"deploying {version} on {endpoint!r}", override=evaluation[0])
            revision = self._set(conn, endpoint, Single(version), f"deploy: {why}")
            self._audit(conn, "deploy", version, None if current is None else {
                "endpoint": endpoint, "policy": policy_to_dict(current[1])},
                {"endpoint": endpoint, "version": version, "revision": revision.revision,
                 "reason": why})
        return revision

    def start_canary(self, endpoint: str, to: str, plan: CanaryPlan, *, reason: str,
                     require_evaluation: bool = False,
                     override_evaluation: str | None = None) -> Rollout:
        """A canary of ``to`` against the version the endpoint answers with, at the plan's
        first step (a weighted split salted by the rollout's id). With
        ``require_evaluation``, ``to``'s newest gated evaluation must have passed
        (``override_evaluation``: the reason to go on anyway, audited)."""
        plan = _plan(plan, CanaryPlan)
        if plan.alias is not None and check_alias(plan.alias) == LATEST:
            raise RegistryError("'latest' is computed, not moved: the plan's alias must be "
                                "another one")
        return self._start(endpoint, to, None, plan, reason, lambda s, a, b: Weighted.canary(
            a, b, plan.steps[0], salt=s, key=plan.key),
            self.registry.evaluations.requirement(require_evaluation,
                                                  override_evaluation))

    def start_ab(self, endpoint: str, a: str, b: str, plan: ABPlan, *, reason: str,
                 require_evaluation: bool = False,
                 override_evaluation: str | None = None) -> Rollout:
        """A sticky A/B test: ``plan.split`` % of routing keys see ``b``, the rest ``a``
        (``require_evaluation``: as for a canary, on ``b``)."""
        plan = _plan(plan, ABPlan)
        return self._start(endpoint, b, a, plan, reason, lambda s, va, vb: StickyAB(
            va, vb, plan.split, salt=s, key=parse_key_spec(plan.key)),
            self.registry.evaluations.requirement(require_evaluation,
                                                  override_evaluation))

    def start_shadow(self, endpoint: str, candidate: str, plan: ShadowPlan, *,
                     reason: str) -> Rollout:
        """The stable version answers; ``candidate`` gets a copy of ``plan.percent`` %."""
        plan = _plan(plan, ShadowPlan)
        return self._start(endpoint, candidate, None, plan, reason, lambda s, p, c: Shadow(
            p, c, plan.percent, salt=s))

    def start_bluegreen(self, endpoint: str, to: str, *, reason: str,
                        require_evaluation: bool = False,
                        override_evaluation: str | None = None) -> Rollout:
        """``to`` loaded beside the stable version (blue, live) as green, until `switch`
        (``require_evaluation``: as for a canary)."""
        return self._start(endpoint, to, None, BlueGreenPlan(), reason,
                           lambda _s, blue, green: BlueGreen(blue, green, "blue"),
                           self.registry.evaluations.requirement(require_evaluation,
                                                                 override_evaluation))

    # -- moving ------------------------------------------------------------------------------

    def switch(self, endpoint: str, *, reason: str) -> Rollout:
        """Flip which of the running blue-green rollout's versions is live."""
        with self._transaction(endpoint, reason) as (conn, current, why):
            row = self._running(conn, endpoint)
            policy = None if current is None else current[1]
            if row.kind != "bluegreen" or not isinstance(policy, BlueGreen):
                raise ConflictError(f"only a blue-green rollout switches; {endpoint!r} runs "
                                    f"the {rows.describe(row)} under a "
                                    f"{getattr(policy, 'kind', 'missing')} policy")
            flipped = policy.switched()
            revision = self._set(conn, endpoint, flipped,
                                 f"rollout {row.id} switch to {flipped.live}: {why}")
            self._move(conn, row, "switch", why, {"live": flipped.live,
                                                  "version": flipped.live_version},
                       revision, percent=100.0 if flipped.live == "green" else 0.0)
            return self._get(conn, row.id)

    def advance(self, rollout_id: int, *, expected_step: int,
                decision: Mapping[str, Any]) -> Rollout:
        """Move a canary to its next step (same salt: keys that saw the candidate keep it),
        storing ``decision`` (the analysis behind it); `ConflictError` if the rollout is no
        longer at ``expected_step`` (another controller moved it) or its policy was changed
        outside the rollout."""
        if not isinstance(decision, Mapping):
            raise RegistryError(f"decision must be an object, not {type(decision).__name__}")
        with self._transaction(self._endpoint_of(rollout_id), "advance") as (conn, _, _why):
            row = rows.rollout_row(conn, rollout_id, lock=True)
            if row.state != "running" or row.kind != "canary":
                raise ConflictError(f"{rows.describe(row)} is {row.state}: only a running "
                                    "canary advances")
            if row.step != expected_step:
                raise ConflictError(f"rollout {row.id} is at step {row.step}, not "
                                    f"{expected_step}: it was moved meanwhile")
            plan = to_rollout(row).plan
            assert isinstance(plan, CanaryPlan)
            if row.step + 1 >= len(plan.steps):
                raise ConflictError(f"rollout {row.id} is at its last step: promote it")
            step, percent = row.step + 1, plan.steps[row.step + 1]
            text = decision.get("reason")
            why = text if isinstance(text, str) and text.strip() else (
                f"step {row.step + 1} of {len(plan.steps)} passed: {percent:g}% to "
                f"{row.candidate}")
            revision = self._set(conn, row.endpoint, Weighted.canary(
                row.stable, row.candidate, percent, salt=salt(row.id), key=plan.key),
                f"rollout {row.id} step {step + 1} ({percent:g}%): {why}",
                expected=row.policy_revision)
            rows.update_rollout(conn, row.id, step=step, step_started_at=self._now(),
                                failures=0)
            self._move(conn, row, "advance", why, dict(decision), revision, step=step,
                       percent=percent)
            return self._get(conn, row.id)

    def record(self, rollout_id: int, *, outcome: str, reason: str, numbers: Mapping[str, Any],
               step: int | None = None, percent: float | None = None,
               failures: int | None = None) -> RolloutDecision:
        """Store a decision that changes no traffic (``pass``, ``fail``, ``wait``,
        ``verdict``, ``observe``), setting the failed-checks counter when ``failures``."""
        if outcome not in RECORDED:
            raise RegistryError(f"record stores the outcomes {', '.join(RECORDED)}, not "
                                f"{outcome!r} (traffic moves through advance, promote, ...)")
        why = check_text(reason, "reason")
        if failures is not None and (isinstance(failures, bool)
                                     or not isinstance(failures, int) or failures < 0):
            raise RegistryError(f"failures must be a whole number >= 0, not {failures!r}")
        with self.registry.engine.begin() as conn:
            row = rows.rollout_row(conn, rollout_id, lock=True)
            if row.state != "running":
                raise ConflictError(f"{rows.describe(row)} is {row.state}: nothing to record")
            if failures is not None:
                rows.update_rollout(conn, row.id, failures=failures)
            return rows.insert_decision(
                conn, row.id, at=self._now(), step=row.step if step is None else step,
                percent=share(to_rollout(row).plan, row.step) if percent is None
                else percent, outcome=outcome, reason=why, numbers=numbers,
                actor=self.registry.actor)

    # -- ending ------------------------------------------------------------------------------

    def promote(self, endpoint: str, *, reason: str, winner: str | None = None,
                actor_note: str | None = None) -> Rollout:
        """End the running rollout with all traffic on its candidate (blue-green: the live
        version; A/B: the ``winner``, 'a' or 'b'), moving the plan's alias to it."""
        with self._transaction(endpoint, reason) as (conn, current, why):
            row = self._running(conn, endpoint)
            version = rows.promoted_version(row, winner, None if current is None else current[1])
            numbers: dict[str, Any] = {"version": version}
            plan = to_rollout(row).plan
            if isinstance(plan, CanaryPlan) and plan.alias is not None:
                name, number = rows.split(version)
                before = self.registry._move_alias(conn, name, plan.alias, number)[1]
                numbers["alias"] = {"model": name, "alias": plan.alias, "before": before,
                                    "after": number}
            revision = self._set(conn, endpoint, Single(version),
                                 f"rollout {row.id} promote {version}: {why}")
            self._finish(conn, row, "promoted", why, numbers, revision,
                         100.0 if version == row.candidate else 0.0, actor_note)
            return self._get(conn, row.id)

    def abort(self, endpoint: str, *, reason: str, actor_note: str | None = None) -> Rollout:
        """End the running rollout with all traffic back on the version that answered
        before it started (its stable version; for an A/B test, ``a`` only if the endpoint
        had no policy before), said in the abort decision's numbers."""
        with self._transaction(endpoint, reason) as (conn, _, why):
            row = self._running(conn, endpoint)
            self._abort(conn, row, why, "abort", actor_note)
            return self._get(conn, row.id)

    def rollback(self, endpoint: str, *, reason: str,
                 actor_note: str | None = None) -> PolicyRevision:
        """One command back to the last stable version: abort the running rollout if any;
        else all traffic to the newest version a Single policy served before the current
        one, moving back an alias that the promote which replaced it moved."""
        with self._transaction(endpoint, reason) as (conn, current, why):
            row = rows.running_row(conn, endpoint, lock=True)
            if row is not None:
                return self._abort(conn, row, why, "rollback", actor_note)
            if current is None:
                raise NotFoundError(f"endpoint {endpoint!r} has no traffic policy: nothing "
                                    "to roll back")
            target = rows.previous_single(conn, endpoint, current[1])
            if target is None:
                raise ConflictError(f"endpoint {endpoint!r} has no earlier version to roll "
                                    "back to (each rollback steps back one deploy or "
                                    "promote): deploy the version wanted instead")
            numbers: dict[str, Any] = {"from": policy_to_dict(current[1]), "to": target}
            promoted, promote = rows.last_promote(conn, endpoint)
            if promoted is not None and promote.get("version") in current[1].versions:
                numbers["alias"] = self._alias_back(conn, promote.get("alias"))
            revision = self._set(conn, endpoint, Single(target), f"{rows.ROLLBACK}{why}")
            if promoted is not None and promote.get("version") in current[1].versions:
                rows.insert_decision(conn, promoted.id, at=self._now(), step=promoted.step,
                                     percent=0.0, outcome="abort",
                                     reason=f"rolled back after promote: {why}",
                                     numbers=numbers, actor=self._actor(actor_note))
            self._audit(conn, "rollback", target, {
                "endpoint": endpoint, "revision": current[0],
                "policy": policy_to_dict(current[1])}, {
                "endpoint": endpoint, "revision": revision.revision, "version": target,
                "alias": numbers.get("alias"), "reason": why})
            return revision

    # -- reading -----------------------------------------------------------------------------

    def active(self, endpoint: str) -> Rollout | None:
        """The endpoint's running rollout with its decisions, or None."""
        with self.registry.engine.connect() as conn:
            row = rows.running_row(conn, check_endpoint(endpoint))
            return None if row is None else rows.load(conn, [row])[0]

    def get(self, rollout_id: int) -> Rollout:
        with self.registry.engine.connect() as conn:
            return self._get(conn, rollout_id)

    def history(self, endpoint: str, limit: int = 20) -> list[Rollout]:
        """The endpoint's rollouts, newest first, with their decisions."""
        with self.registry.engine.connect() as conn:
            found = conn.execute(rows.select_rollouts(
                endpoint=check_endpoint(endpoint), newest_first=True, limit=limit)).all()
            return rows.load(conn, list(found))

    def running(self) -> list[Rollout]:
        """Every running rollout (all endpoints), oldest first, without decisions."""
        with self.registry.engine.connect() as conn:
            found = conn.execute(rows.select_rollouts(state="running")).all()
            return rows.load(conn, list(found), decisions=False)

    # -- internals ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _actor(self, note: str | None) -> str:
        actor = self.registry.actor
        return actor if note is None else f"{actor} ({check_text(note, 'actor note')})"[:256]

    @contextmanager
    def _transaction(self, endpoint: str, reason: str) -> Iterator[
            tuple[sa.Connection, tuple[int, Policy] | None, str]]:
        """One transaction holding the endpoint's policy row: (conn, current, reason)."""
        check_endpoint(endpoint)
        why = check_text(reason, "reason")
        try:
            with self.registry.engine.begin() as conn:
                yield conn, rows.lock_policy(conn, endpoint), why
        except sa.exc.IntegrityError:
            # a racer created the endpoint's first policy or started a rollout meanwhile
            raise ConflictError(f"endpoint {endpoint!r} was changed concurrently (another "
                                "deploy or rollout won): read its state and try again") from None

    def _endpoint_of(self, rollout_id: int) -> str:
        with self.registry.engine.connect() as conn:
            return str(rows.rollout_row(conn, rollout_id).endpoint)

    def _get(self, conn: sa.Connection, rollout_id: int) -> Rollout:
        return rows.load(conn, [rows.rollout_row(conn, rollout_id)])[0]

    def _running(self, conn: sa.Connection, endpoint: str) -> sa.Row[Any]:
        row = rows.running_row(conn, endpoint, lock=True)
        if row is None:
            raise ConflictError(f"endpoint {endpoint!r} has no running rollout")
        return row

    def _set(self, conn: sa.Connection, endpoint: str, policy: Policy, reason: str,
             expected: int | None = None) -> PolicyRevision:
        return self.registry.deployments.set_policy(
            endpoint, policy, reason=reason[:2000], expected_revision=expected, conn=conn)

    def _start(self, endpoint: str, to: str, stable: str | None, plan: Plan, reason: str,
               build: _Build, evaluation: tuple[str | None] | None = None) -> Rollout:
        """``evaluation``, when given, requires the candidate's passed evaluation; it holds
        the override's reason or None."""
        with self._transaction(endpoint, reason) as (conn, current, why):
            rows.refuse_running(conn, endpoint)
            base = rows.answering(endpoint, current) if stable is None \
                else rows.resolve(conn, stable)
            candidate = rows.resolve(conn, to)
            if candidate == base:
                raise ConflictError(f"{candidate} is already the stable version of "
                                    f"{endpoint!r}: a rollout needs another one")
            evaluated = None if evaluation is None else self.registry.evaluations.require(
                conn, *rows.split(candidate), rows.manifest(conn, candidate),
                action=f"a {plan.kind} rollout of {candidate} on {endpoint!r}",
                override=evaluation[0])
            now = self._now()
            rollout_id = rows.insert_rollout(
                conn, endpoint=endpoint, kind=plan.kind, state="running", stable=base,
                candidate=candidate, spec=plan.to_dict(), step=0, step_started_at=now,
                failures=0, created_at=now, created_by=self.registry.actor,
                policy_revision=0)
            policy = build(salt(rollout_id), base, candidate)
            revision = self._set(conn, endpoint, policy,
                                 f"{rows.start_reason(rollout_id, plan.kind)}{why}",
                                 None if current is None else current[0])
            row = rows.rollout_row(conn, rollout_id)
            numbers: dict[str, Any] = {"plan": plan.to_dict(),
                                       "policy": policy_to_dict(policy),
                                       **({} if evaluated is None
                                          else {"evaluation": evaluated})}
            if isinstance(plan, ABPlan):  # the sample size, planned before any data
                # imported here: the statistics (scipy) cost ~1 s of start-up to every
                # command that opens a registry
                from shipyard.monitoring.ab_report import plan_sample

                try:
                    numbers["sample"] = plan_sample(plan).to_dict()
                except MonitoringError as exc:  # the plan's fault: said as the CLI says it
                    raise RoutingError(f"cannot plan the A/B test (baseline, mde, alpha, "
                                       f"power, sd): {exc}") from None
            self._move(conn, row, "start", why, numbers, revision, percent=share(plan, 0))
            return self._get(conn, rollout_id)

    def _move(self, conn: sa.Connection, row: sa.Row[Any], verb: str, why: str,
              numbers: dict[str, Any], revision: PolicyRevision, *, step: int | None = None,
              percent: float | None = None, actor_note: str | None = None,
              **changes: Any) -> None:
        """After a traffic change of rollout ``row``: its row, its decision, its audit."""
        rows.update_rollout(conn, row.id, policy_revision=revision.revision, **changes)
        at_step = row.step if step is None else step
        rows.insert_decision(conn, row.id, at=self._now(), step=at_step, percent=percent,
                             outcome=verb, reason=why, numbers=numbers,
                             actor=self._actor(actor_note))
        self._audit(conn, verb, row.candidate, None if verb == "start" else {
            "rollout": row.id, "endpoint": row.endpoint, "kind": row.kind,
            "state": row.state, "step": row.step, "policy_revision": row.policy_revision}, {
            "rollout": row.id, "endpoint": row.endpoint, "kind": row.kind,
            "state": changes.get("state", row.state), "step": at_step,
            "policy_revision": revision.revision, "percent": percent, "reason": why})

    def _finish(self, conn: sa.Connection, row: sa.Row[Any], state: str, why: str,
                numbers: dict[str, Any], revision: PolicyRevision, percent: float,
                actor_note: str | None, verb: str | None = None) -> None:
        self._move(conn, row, "promote" if state == "promoted" else "abort", why, numbers,
                   revision, percent=percent, actor_note=actor_note, state=state,
                   finished_at=self._now(), reason=why)
        if verb is not None:  # a rollback that aborted: said as such in the audit log too
            version = numbers["version"]
            self._audit(conn, verb, version, {"rollout": row.id, "state": "running"},
                        {"rollout": row.id, "state": state, "version": version,
                         "reason": why})

    def _abort(self, conn: sa.Connection, row: sa.Row[Any], why: str, verb: str,
               actor_note: str | None) -> PolicyRevision:
        """All traffic back to the version that answered before the rollout started (an A/B
        test's ``a`` may never have served: not there unless it did)."""
        before, target = rows.served_before(conn, row)
        revision = self._set(conn, row.endpoint, Single(target),
                             f"rollout {row.id} {verb} to {target}: {why}")
        self._finish(conn, row, "aborted", why, {"version": target, "before_revision": before},
                     revision, 100.0 if target == row.candidate else 0.0, actor_note,
                     None if verb == "abort" else verb)
        return revision

    def _alias_back(self, conn: sa.Connection, moved: Any) -> dict[str, Any] | None:
        """Undo a promote's alias move, if the alias still points where the promote put it."""
        if not isinstance(moved, Mapping) or "alias" not in moved:
            return None
        model, alias, before = moved["model"], moved["alias"], moved.get("before")
        if rows.alias_version(conn, model, alias) != moved.get("after"):
            return {**moved, "moved_back": False, "why": "moved since the promote"}
        if before is None:
            self.registry._drop_alias(conn, model, alias)
        else:
            self.registry._move_alias(conn, model, alias, int(before))
        return {**moved, "moved_back": True}

    def _audit(self, conn: sa.Connection, verb: str, version: str, before: Any,
               after: Any) -> None:
        name, number = rows.split(version)
        self.registry._audit(conn, f"rollout.{verb}", name, number, None, before, after)
