"""The SQL under `Rollouts`: rows of ``rollouts`` and ``rollout_decisions`` read and written
inside a transaction the caller holds, and the lookups a rollout needs (the endpoint's policy,
locked; a version reference resolved to ``NAME/VERSION``; the policy's history)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shipyard.errors import ConflictError, NotFoundError, RegistryError
from shipyard.registry import queries as q
from shipyard.registry.rollout_records import (
    Rollout,
    RolloutDecision,
    jsonable,
    to_decision,
    to_rollout,
)
from shipyard.registry.schema import (
    endpoint_policies,
    endpoint_policy_history,
    rollout_decisions,
    rollouts,
)
from shipyard.registry.uri import parse_ref
from shipyard.routing import BlueGreen, Policy, Single, policy_from_dict

_MAX_LIMIT = 1000


def lock_policy(conn: sa.Connection, endpoint: str) -> tuple[int, Policy] | None:
    """The endpoint's current (revision, policy), its row locked until the transaction ends
    (every rollout change of one endpoint takes this lock first: they queue, never deadlock)."""
    row = conn.execute(sa.select(endpoint_policies).where(
        endpoint_policies.c.endpoint == endpoint).with_for_update()).first()
    return None if row is None else (int(row.revision), policy_from_dict(row.policy))


def answering(endpoint: str, current: tuple[int, Policy] | None) -> str:
    """The one version the endpoint's policy answers with (Single, or a BlueGreen's live
    one): what a new rollout starts from; else `ConflictError`."""
    if current is None:
        raise ConflictError(f"endpoint {endpoint!r} has no traffic policy: deploy a version "
                            "first (shipyard deploy ENDPOINT MODEL_URI)")
    policy = current[1]
    if isinstance(policy, Single):
        return policy.version
    if isinstance(policy, BlueGreen):
        return policy.live_version
    raise ConflictError(f"endpoint {endpoint!r} splits its traffic ({policy.kind} policy, "
                        f"revision {current[0]}): a rollout starts from one version")


def resolve(conn: sa.Connection, uri: str) -> str:
    """``models:/iris/3``, ``models:/iris@prod``, ``iris/3`` ... as the exact ``NAME/VERSION``
    they name now (`NotFoundError` if none)."""
    ref = parse_ref(uri, require_version=True)
    return f"{ref.name}/{q.version_row(conn, ref).version}"


def manifest(conn: sa.Connection, version: str) -> dict[str, Any]:
    """The stored manifest of ``NAME/VERSION``."""
    return dict(q.version_row(conn, parse_ref(version)).manifest)


def split(version: str) -> tuple[str, int]:
    """``NAME/VERSION`` → (NAME, VERSION)."""
    ref = parse_ref(version)
    assert ref.version is not None, version
    return ref.name, ref.version


def alias_version(conn: sa.Connection, model: str, alias: str) -> int | None:
    """The version ``model``'s ``alias`` points at now (None: no such alias or model)."""
    try:
        return q.alias_map(conn, q.model_row(conn, model).id).get(alias)
    except NotFoundError:
        return None


def rollout_row(conn: sa.Connection, rollout_id: int, *, lock: bool = False) -> sa.Row[Any]:
    if isinstance(rollout_id, bool) or not isinstance(rollout_id, int):
        raise RegistryError(f"a rollout id is a whole number, not {rollout_id!r}")
    query = sa.select(rollouts).where(rollouts.c.id == rollout_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFoundError(f"unknown rollout {rollout_id}")
    return row


def running_row(conn: sa.Connection, endpoint: str, *, lock: bool = False) -> sa.Row[Any] | None:
    query = sa.select(rollouts).where(rollouts.c.endpoint == endpoint,
                                      rollouts.c.state == "running")
    return conn.execute(query.with_for_update() if lock else query).first()


def describe(row: sa.Row[Any]) -> str:
    return f"{row.kind} rollout {row.id} ({row.stable} -> {row.candidate})"


def refuse_running(conn: sa.Connection, endpoint: str) -> None:
    """`ConflictError` naming the endpoint's running rollout, if it has one."""
    row = running_row(conn, endpoint)
    if row is not None:
        raise ConflictError(f"endpoint {endpoint!r} runs the {describe(row)}: "
                            "promote or abort it first")


def promoted_version(row: sa.Row[Any], winner: str | None, policy: Policy | None) -> str:
    """The version a promote of rollout ``row`` sends all traffic to."""
    if row.kind == "ab":
        if winner not in ("a", "b"):
            raise RegistryError(f"an A/B test is promoted with its winner, 'a' ({row.stable}"
                                f") or 'b' ({row.candidate}), not {winner!r}")
        return str(row.stable if winner == "a" else row.candidate)
    if winner is not None:
        raise RegistryError(f"only an A/B test is promoted with a winner, not the "
                            f"{describe(row)}")
    if row.kind == "bluegreen":
        if not isinstance(policy, BlueGreen):
            raise ConflictError(f"the policy of {row.endpoint!r} is no longer blue-green")
        return policy.live_version
    return str(row.candidate)


def insert_rollout(conn: sa.Connection, **values: Any) -> int:
    return int(conn.execute(sa.insert(rollouts).values(**values)
                            .returning(rollouts.c.id)).scalar_one())


def update_rollout(conn: sa.Connection, rollout_id: int, **values: Any) -> None:
    conn.execute(sa.update(rollouts).where(rollouts.c.id == rollout_id).values(**values))


def insert_decision(conn: sa.Connection, rollout_id: int, *, at: datetime, step: int,
                    percent: float | None, outcome: str, reason: str, numbers: Any,
                    actor: str) -> RolloutDecision:
    values = {"rollout_id": rollout_id, "at": at, "step": step,
              "percent": None if percent is None else float(percent), "outcome": outcome,
              "reason": reason, "numbers": jsonable(numbers or {}), "actor": actor}
    new_id = conn.execute(sa.insert(rollout_decisions).values(**values)
                          .returning(rollout_decisions.c.id)).scalar_one()
    return RolloutDecision(id=int(new_id), **{**values, "at": q.utc(at)})


def load(conn: sa.Connection, rows: list[sa.Row[Any]], *,
         decisions: bool = True) -> list[Rollout]:
    """The rollouts of ``rows``, with their decisions (oldest first) when asked."""
    found: dict[int, list[RolloutDecision]] = {row.id: [] for row in rows}
    if decisions and found:
        for d in conn.execute(sa.select(rollout_decisions).where(
                rollout_decisions.c.rollout_id.in_(list(found)))
                .order_by(rollout_decisions.c.id)).all():
            found[d.rollout_id].append(to_decision(d))
    return [to_rollout(row, found[row.id]) for row in rows]


def select_rollouts(*, endpoint: str | None = None, state: str | None = None,
                    newest_first: bool = False, limit: int | None = None) -> sa.Select[Any]:
    query = sa.select(rollouts).order_by(rollouts.c.id.desc() if newest_first
                                         else rollouts.c.id)
    if endpoint is not None:
        query = query.where(rollouts.c.endpoint == endpoint)
    if state is not None:
        query = query.where(rollouts.c.state == state)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= _MAX_LIMIT:
            raise RegistryError(f"limit must be a whole number in 1..{_MAX_LIMIT}, "
                                f"not {limit!r}")
        query = query.limit(limit)
    return query


ROLLBACK = "rollback: "
"""How the reason of a policy revision that `Rollouts.rollback` set begins."""


def start_reason(rollout_id: int, kind: str) -> str:
    """How the reason of the policy revision that started rollout ``rollout_id`` begins."""
    return f"rollout {rollout_id} ({kind}) start: "


def served_before(conn: sa.Connection, row: sa.Row[Any]) -> tuple[int | None, str]:
    """Where an abort of rollout ``row`` sends all traffic: the version that answered (the
    policy's primary, as `RouteTable.primary`) under the revision in force just before the
    rollout's start revision, with that revision; (None, the rollout's stable version) when
    the endpoint had no policy then (an A/B test started on a bare endpoint: its ``a``)."""
    history = endpoint_policy_history.c
    before = conn.execute(sa.select(history.previous_revision).where(
        history.endpoint == row.endpoint,
        history.reason.startswith(start_reason(row.id, row.kind), autoescape=True))
        .order_by(history.revision).limit(1)).scalar()
    if before is None:
        return None, str(row.stable)
    doc = conn.execute(sa.select(history.policy).where(
        history.endpoint == row.endpoint, history.revision == before)).scalar_one()
    return int(before), policy_from_dict(doc).versions[0]


def previous_single(conn: sa.Connection, endpoint: str, current: Policy) -> str | None:
    """Where a rollback goes: the newest version, not served by the current policy, on the
    stack of Single versions the endpoint's history pushed (a deploy or promote pushes its
    version; a rollback pops back down to the one it went to). So rollbacks step back one
    deploy at a time, never forward again to the version a rollback left."""
    stack: list[str] = []
    for doc, reason in conn.execute(sa.select(
            endpoint_policy_history.c.policy, endpoint_policy_history.c.reason).where(
            endpoint_policy_history.c.endpoint == endpoint)
            .order_by(endpoint_policy_history.c.revision)).tuples():
        policy = policy_from_dict(doc)
        if not isinstance(policy, Single):
            continue
        if str(reason).startswith(ROLLBACK) and policy.version in stack:
            del stack[stack.index(policy.version) + 1:]  # popped back down to it
        elif not stack or stack[-1] != policy.version:
            stack.append(policy.version)
    return next((v for v in reversed(stack) if v not in current.versions), None)


def last_promote(conn: sa.Connection,
                 endpoint: str) -> tuple[sa.Row[Any] | None, dict[str, Any]]:
    """The endpoint's newest promoted rollout and its promote decision's numbers ({} if
    there is none)."""
    row = conn.execute(select_rollouts(endpoint=endpoint, state="promoted",
                                       newest_first=True, limit=1)).first()
    if row is None:
        return None, {}
    numbers = conn.execute(sa.select(rollout_decisions.c.numbers).where(
        rollout_decisions.c.rollout_id == row.id, rollout_decisions.c.outcome == "promote")
        .order_by(rollout_decisions.c.id.desc()).limit(1)).scalar()
    return row, dict(numbers or {})
