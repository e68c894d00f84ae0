"""``Deployments``: each endpoint's traffic policy over model versions, with its history.

An endpoint has one current policy (``endpoint_policies``) at a revision that grows by one
with every change; every revision stays in ``endpoint_policy_history`` with who set it, when,
the revision it replaced and why, and each change appends one ``deployment.policy`` audit
record (before/after) in the same transaction. Policies are validated by ``shipyard.routing``
and name versions as ``NAME/VERSION`` (stored in that canonical form); every version a policy
loads must exist and be active. ``expected_revision`` makes a change conditional (optimistic
concurrency): of two writers that read the same revision, one wins and the other gets a
`ConflictError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import ConflictError, NotFoundError, RegistryError
from shipyard.names import is_safe_name
from shipyard.registry import queries as q
from shipyard.registry.schema import endpoint_policies, endpoint_policy_history
from shipyard.registry.uri import parse_ref
from shipyard.routing import Policy, policy_from_dict, policy_to_dict

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

ACTION = "deployment.policy"
_MAX_REASON = 2000
# the stored fields that name versions, per policy kind (see routing.stored)
_VERSION_FIELDS = {"single": ("version",), "sticky_ab": ("a", "b"),
                   "shadow": ("primary", "candidate"), "blue_green": ("blue", "green")}


@dataclass(frozen=True)
class PolicyRevision:
    """One revision of an endpoint's policy: who set it, when, replacing which, and why."""

    endpoint: str
    revision: int
    policy: Policy
    previous_revision: int | None
    actor: str
    reason: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "revision": self.revision,
                "policy": policy_to_dict(self.policy),
                "previous_revision": self.previous_revision, "actor": self.actor,
                "reason": self.reason, "at": self.at.isoformat()}


def check_endpoint(endpoint: object) -> str:
    if not is_safe_name(endpoint):  # the one endpoint-name rule (shipyard.names)
        raise RegistryError(f"invalid endpoint {endpoint!r}: 1-128 letters, digits, '_', '.' "
                            "or '-', starting with a letter or digit")
    return endpoint


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise RegistryError("a policy change needs a reason (why it is made)")
    if len(reason) > _MAX_REASON:
        raise RegistryError(f"reason is {len(reason)} characters long; at most {_MAX_REASON}")
    return reason


def _canonical(version: str) -> str:
    ref = parse_ref(version)
    if ref.version is None:
        raise RegistryError(f"a policy names exact versions (NAME/VERSION), not {version!r}: "
                            "resolve aliases before setting the policy")
    return str(ref)


def _stored(policy: Policy | Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of ``policy`` (validated by routing), its versions canonical."""
    parsed = policy if isinstance(policy, Policy) else policy_from_dict(policy)
    doc = policy_to_dict(parsed)
    if doc["kind"] == "weighted":
        doc["splits"] = [{**s, "version": _canonical(s["version"])} for s in doc["splits"]]
    for name in _VERSION_FIELDS.get(doc["kind"], ()):
        doc[name] = _canonical(doc[name])
    policy_from_dict(doc)  # canonical names may collide ("iris/3" and "models:/iris/3")
    return doc


def _check_versions(conn: sa.Connection, policy: Policy) -> None:
    """Every version ``policy`` loads exists (`NotFoundError`) and is active (`ConflictError`)."""
    for version in policy.warm:
        ref = parse_ref(version)
        row = q.version_row(conn, ref)
        if row.status != "active":
            raise ConflictError(f"{ref} is {row.status}: restore it before routing to it")


def endpoints_loading(conn: sa.Connection, ref: str) -> list[str]:
    """The endpoints whose current policy loads the version ``ref`` (``NAME/VERSION``)."""
    rows = conn.execute(sa.select(endpoint_policies.c.endpoint, endpoint_policies.c.policy)
                        .order_by(endpoint_policies.c.endpoint)).all()
    return [r.endpoint for r in rows if ref in policy_from_dict(r.policy).warm]


class Deployments:
    """Endpoints and their traffic policies, in a registry's database: ``Registry.deployments``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def set_policy(self, endpoint: str, policy: Policy | Mapping[str, Any], *, reason: str,
                   expected_revision: int | None = None,
                   conn: sa.Connection | None = None) -> PolicyRevision:
        """Make ``policy`` the endpoint's current one, as the next revision. With
        ``expected_revision`` (0: the endpoint has no policy yet) the change happens only if
        the current revision is still that one, else `ConflictError`. With ``conn`` (an open
        transaction, e.g. a rollout's) the change is made in it, committed with it; the
        caller turns a concurrent writer's `sqlalchemy.exc.IntegrityError` into a conflict."""
        check_endpoint(endpoint)
        why = _reason(reason)
        doc = _stored(policy)
        if expected_revision is not None and (
                isinstance(expected_revision, bool) or not isinstance(expected_revision, int)
                or expected_revision < 0):
            raise RegistryError(f"expected_revision must be a revision number (0 for none), "
                                f"not {expected_revision!r}")
        if conn is not None:
            return self._write(conn, endpoint, doc, why, expected_revision)
        try:
            with self.registry.engine.begin() as own:
                return self._write(own, endpoint, doc, why, expected_revision)
        except sa.exc.IntegrityError:
            # a concurrent writer created this endpoint's first revision (or the same next
            # one) between our read and our insert: it won
            raise ConflictError(f"the policy of {endpoint!r} was changed concurrently; read "
                                "the current revision and try again") from None

    def current(self, endpoint: str) -> tuple[int, Policy] | None:
        """The endpoint's revision and policy, or None when it has none."""
        with self.registry.engine.connect() as conn:
            row = conn.execute(sa.select(endpoint_policies).where(
                endpoint_policies.c.endpoint == check_endpoint(endpoint))).first()
        return None if row is None else (row.revision, policy_from_dict(row.policy))

    def history(self, endpoint: str) -> list[PolicyRevision]:
        """Every revision of the endpoint's policy, oldest first; `NotFoundError` if none."""
        with self.registry.engine.connect() as conn:
            rows = conn.execute(sa.select(endpoint_policy_history).where(
                endpoint_policy_history.c.endpoint == check_endpoint(endpoint))
                .order_by(endpoint_policy_history.c.revision)).all()
        if not rows:
            raise NotFoundError(f"unknown endpoint {endpoint!r}: no policy was ever set")
        return [PolicyRevision(r.endpoint, r.revision, policy_from_dict(r.policy),
                               r.previous_revision, r.actor, r.reason, q.utc(r.at))
                for r in rows]

    def endpoints(self) -> list[str]:
        """The endpoints that have a policy, sorted."""
        with self.registry.engine.connect() as conn:
            return list(conn.execute(sa.select(endpoint_policies.c.endpoint)
                                     .order_by(endpoint_policies.c.endpoint)).scalars())

    def _write(self, conn: sa.Connection, endpoint: str, doc: dict[str, Any], reason: str,
               expected: int | None) -> PolicyRevision:
        registry = self.registry
        old = conn.execute(sa.select(endpoint_policies).where(
            endpoint_policies.c.endpoint == endpoint).with_for_update()).first()
        revision = 0 if old is None else int(old.revision)
        if expected is not None and expected != revision:
            raise ConflictError(f"the policy of {endpoint!r} is at revision {revision}, "
                                f"not {expected}: someone changed it meanwhile")
        _check_versions(conn, policy_from_dict(doc))
        now, actor = datetime.now(UTC), registry.actor
        values = {"revision": revision + 1, "policy": doc, "updated_at": now,
                  "updated_by": actor}
        if old is None:
            conn.execute(sa.insert(endpoint_policies).values(endpoint=endpoint, **values))
        else:
            conn.execute(sa.update(endpoint_policies).where(
                endpoint_policies.c.endpoint == endpoint,
                endpoint_policies.c.revision == revision).values(**values))
        conn.execute(sa.insert(endpoint_policy_history).values(
            endpoint=endpoint, revision=revision + 1, policy=doc,
            previous_revision=None if old is None else revision, actor=actor,
            reason=reason, at=now))
        before = None if old is None else {
            "endpoint": endpoint, "revision": revision, "policy": old.policy}
        registry._audit(conn, ACTION, None, None, None, before, {
            "endpoint": endpoint, "revision": revision + 1, "policy": doc,
            "reason": reason})
        return PolicyRevision(endpoint, revision + 1, policy_from_dict(doc),
                              None if old is None else revision, actor, reason, now)
