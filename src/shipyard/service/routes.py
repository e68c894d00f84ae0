"""An endpoint and its route table: which loaded deployment answers a request.

A `RouteTable` is immutable: the policy at one revision and a deployment for every version
the policy keeps warm (keyed ``NAME/VERSION``). The watcher (``service.swapping``) builds the
next table and replaces the endpoint's in one assignment; a request reads the table once and
routes on that, so it never sees half a change. For a plan without cuts (a single version,
blue-green) the answer is precomputed: routing costs an attribute read.

Revision 0 is an endpoint without a stored policy, serving its configured source as one
version: its requests get variant ``""``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shipyard.errors import ModelNotReadyError, NotFoundError
from shipyard.routing import Decision, KeySpec, Policy, Shadow, StickyAB, Weighted, extract_key
from shipyard.routing import route as route_policy
from shipyard.service.config import EndpointConfig
from shipyard.service.deployment import Deployment
from shipyard.service.joint import JointRaw

PINNED = "pinned"  # the variant of a request that named its version (OIP /versions/{v})


@dataclass(frozen=True, slots=True)
class Pick:
    """Where one request goes: ``deployment`` answers it as ``variant`` of policy
    ``revision``; ``shadow`` gets a copy (None: no copy). With ``joint``, a raw request goes
    to the split's joint process instead of the deployment's own, answered there by version
    ``slot`` (the same model version: only the process differs)."""

    deployment: Deployment
    variant: str
    revision: int
    shadow: Deployment | None = None
    joint: JointRaw | None = None
    slot: int = 0


def key_spec(policy: Policy) -> KeySpec | None:
    """The spec a policy reads routing keys by (None: it routes every request alike)."""
    return policy.key if isinstance(policy, Weighted | StickyAB | Shadow) else None


class RouteTable:
    """The policy at ``revision`` over ``deployments`` (every version of ``policy.warm``);
    ``joint``: the joint process of the versions the policy routes to (``joint.py``)."""

    __slots__ = ("deployments", "fixed", "joint", "key", "needs_body", "picks", "policy",
                 "primary", "revision")

    def __init__(self, revision: int, policy: Policy,
                 deployments: Mapping[str, Deployment], joint: JointRaw | None = None) -> None:
        missing = [v for v in policy.warm if v not in deployments]
        if missing:
            raise ValueError(f"no deployment for {missing} of revision {revision}")
        self.revision = revision
        self.policy = policy
        self.deployments = dict(deployments)
        self.joint = joint
        self.key = key_spec(policy)
        self.needs_body = self.key is not None and self.key.source == "json"
        plan = policy.plan
        decisions = (*plan.keyed, *plan.keyless,
                     *(() if plan.fallback is None else (plan.fallback,)))
        self.picks: dict[Decision, Pick] = {d: self._pick(d) for d in decisions}
        self.fixed = None if plan.cuts else self.picks[plan.keyless[0]]
        self.primary = self.deployments[policy.versions[0]]

    def _pick(self, d: Decision) -> Pick:
        shadow = None if d.shadow is None else self.deployments[d.shadow]
        joint = self.joint if self.joint is not None and d.version in self.joint.refs \
            else None
        return Pick(self.deployments[d.version], d.variant if self.revision else "",
                    self.revision, shadow, joint, 0 if joint is None else joint.slot(d.version))

    def routed(self) -> list[str]:
        """The versions the policy's decisions route requests to (not shadows), in the
        policy's order."""
        versions = {d.version for d in self.picks}  # every decision the plan can make
        return [v for v in self.policy.warm if v in versions]

    def pick(self, key: str | None) -> Pick:
        """Where a request with routing ``key`` goes."""
        fixed = self.fixed
        if fixed is not None:
            return fixed
        return self.picks[route_policy(self.policy, key)]

    def pinned(self, version: int, endpoint: str) -> Pick:
        """A request to ``endpoint`` that names ``version``: the loaded deployment of that
        version of the primary's model, else `NotFoundError`. Versions of other models (a
        shadow ``other/1`` beside ``iris/2``) are not the endpoint's: their numbers would
        collide with its own."""
        primary = self.primary
        if primary.version == version:
            return Pick(primary, PINNED, self.revision)
        own = [d for d in self.deployments.values() if d.model_name == primary.model_name]
        for d in own:
            if d.version == version:
                return Pick(d, PINNED, self.revision)
        loaded = sorted({d.version for d in own})
        shown = f"version {loaded[0]}" if len(loaded) == 1 else \
            f"versions {', '.join(map(str, loaded))}"
        raise NotFoundError(f"endpoint {endpoint!r} serves {shown}, not {version}")


def routing_key(spec: KeySpec, headers: Mapping[bytes, bytes], client: object,
                body: object = None) -> str | None:
    """A request's routing key under ``spec``: from its ``headers`` (lower-case names),
    its ASGI ``client`` (``(host, port)`` or None) or its parsed JSON ``body``."""
    if spec.source == "header":
        value = headers.get(spec.header.encode("latin-1"))
        return value.decode("latin-1") or None if value is not None else None
    host = client[0] if isinstance(client, list | tuple) and client else None
    return extract_key(spec, body=body, client=host if isinstance(host, str) else None)


class Endpoint:
    """One configured endpoint: its route table (None until its first load)."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.table: RouteTable | None = None
        self.last_error: str | None = None
        # the (revision, policy) that failed to load: not retried until it changes
        self.failed: tuple[int, Policy] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def current(self) -> Deployment | None:
        """The deployment of the policy's primary answering version (None: not loaded)."""
        table = self.table
        return None if table is None else table.primary

    def routes(self) -> RouteTable:
        table = self.table
        if table is None:
            raise ModelNotReadyError(f"endpoint {self.name!r} has no model loaded yet")
        return table

    def deployment(self, version: int | None = None) -> Deployment:
        """The primary deployment, or the loaded one of ``version`` (`NotFoundError`)."""
        table = self.routes()
        return table.primary if version is None else table.pinned(version, self.name).deployment
