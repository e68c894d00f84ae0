"""Hot swap: each endpoint follows its target (the registry's stored policy for its name, else
its configured source), loading and warming what the next route table needs off the event
loop, swapping the table in one assignment, then draining and closing what is no longer warm.

- A target is a policy at a revision. An endpoint with a stored policy follows it; one
  without serves its source (a path, a registry version, or an alias that may move) as a
  `Single` at revision 0.
- A swap happens only once every version the new policy keeps warm is loaded. A version that
  fails to load never takes traffic: the old table stays, the error is logged, kept in
  ``Endpoint.last_error`` and counted, and that target is not tried again until it changes.
- Requests admitted on a deployment that leaves the table finish on it (its batchers drain
  before it closes).
- What a swap leaves out is not closed at once: the versions of the last replaced table that
  the new one lacks stay loaded, routed to by nothing, for ``retain_s`` (the serve config's
  ``retain_previous_s``), so that a policy needing one of them again in that time (a rollback
  after a promote, an abort) takes it without a load, within one poll. A later swap or the
  time running out drains and closes them; so does `Swapper.release` (shutdown). Their
  number per endpoint is the gauge ``shipyard_retained_versions``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from shipyard.registry import Registry, is_model_uri
from shipyard.registry.uri import SCHEME
from shipyard.routing import Policy, Shadow, Single
from shipyard.runtimes.process import InferenceProcess
from shipyard.service.deployment import Deployment, DeploymentBuilder
from shipyard.service.joint import JointRaw, build_joint, joinable
from shipyard.service.metrics import ServingMetrics
from shipyard.service.routes import Endpoint, RouteTable
from shipyard.stores.predictions import LogStats

log = logging.getLogger("shipyard.serve")


@dataclass(frozen=True)
class Target:
    """What an endpoint should serve: ``policy`` at ``revision``, and where each of its warm
    versions loads from (``sources``); ``label``: the model label of a load failure (the
    configured source when there is no stored policy)."""

    revision: int
    policy: Policy
    sources: dict[str, str]
    label: str | None = None

    def label_of(self, version: str) -> str:
        return self.label or version


@dataclass
class Retained:
    """An endpoint's deployments that its last swap left out, loaded and not routed to, and
    the task that closes them when their time is up."""

    deployments: dict[str, Deployment]
    expiry: asyncio.Task[None] | None = field(default=None, repr=False)


def shadowed(policy: Policy) -> frozenset[str]:
    """The versions ``policy`` loads only to take shadow copies (built in the background:
    `Deployment.background`)."""
    return frozenset((policy.candidate,)) if isinstance(policy, Shadow) else frozenset()


def watched(ep: Endpoint) -> bool:
    """Whether the endpoint's target can change while it serves (a registry source)."""
    return is_model_uri(ep.config.model)


class Swapper:
    """Loads endpoints' targets and swaps their route tables; keeps the log counters of
    deployments it stopped."""

    def __init__(self, endpoints: Iterable[Endpoint], builder: DeploymentBuilder,
                 metrics: ServingMetrics, registry: Callable[[], Registry], *,
                 retain_s: float = 0.0) -> None:
        self.endpoints = list(endpoints)
        self.builder = builder
        self.metrics = metrics
        self.registry = registry
        self.retired_log_stats = LogStats()  # log counters of stopped replaced processes
        self.retiring: set[InferenceProcess] = set()  # replaced, still stopping
        self.closing: set[asyncio.Task[None]] = set()  # replaced deployments being released
        self.checking = asyncio.Lock()  # one pass at a time: the watcher or a direct call
        self.retain_s = retain_s
        self.retained: dict[str, Retained] = {}  # endpoint -> what its last swap left out

    def target(self, ep: Endpoint) -> Target:
        """The endpoint's target now (blocks: reads the registry)."""
        source = ep.config.model
        if not is_model_uri(source):
            name, number = ep.config.served_as(source)
            ref = f"{name}/{number}"
            return Target(0, Single(ref), {ref: source}, source)
        registry = self.registry()
        current = registry.deployments.current(ep.name)
        if current is not None:
            revision, policy = current
            return Target(revision, policy, {v: SCHEME + v for v in policy.warm})
        version = registry.get_version(source)
        ref = f"{version.name}/{version.version}"
        return Target(0, Single(ref), {ref: SCHEME + ref}, source)

    async def load(self, ep: Endpoint) -> bool:
        """Resolve and load the endpoint's target (at start); a failure is a load failure."""
        loop = asyncio.get_running_loop()
        try:
            target = await loop.run_in_executor(None, self.target, ep)
        except Exception as exc:
            self._failed(ep, ep.config.model, exc)
            return False
        return await self._follow(ep, target)

    async def check(self) -> None:
        """One pass of the watcher: every watched endpoint follows its target."""
        async with self.checking:  # concurrent passes would load and swap a version twice
            loop = asyncio.get_running_loop()
            for ep in self.endpoints:
                if not watched(ep):
                    continue
                try:
                    target = await loop.run_in_executor(None, self.target, ep)
                except Exception as exc:
                    log.warning("endpoint %s: cannot resolve %s: %s", ep.name, ep.config.model,
                                exc)
                    continue
                await self._follow(ep, target)

    async def _follow(self, ep: Endpoint, target: Target) -> bool:
        table = ep.table
        if table is not None and table.revision == target.revision \
                and table.policy == target.policy:
            return True
        wanted = (target.revision, target.policy)
        if ep.failed == wanted:
            return False
        ep.failed = None  # the target moved: a version that failed may be retried
        if not await self._swap(ep, target):
            ep.failed = wanted
            return False
        return True

    async def _swap(self, ep: Endpoint, target: Target) -> bool:
        loop = asyncio.get_running_loop()
        old = ep.table
        background = shadowed(target.policy)
        # a loaded version serves the new table only in the role it was built for
        have = {} if old is None else {v: d for v, d in old.deployments.items()
                                       if d.background == (v in background)}
        # kept from the last swap: changed only by swaps and expiries, both under `checking`
        kept = self.retained.get(ep.name)
        reused = {v: d for v in target.policy.warm
                  if v not in have and kept is not None
                  and (d := kept.deployments.get(v)) is not None
                  and d.background == (v in background)}
        missing = [v for v in target.policy.warm if v not in have and v not in reused]
        built = await asyncio.gather(
            *(loop.run_in_executor(None, functools.partial(
                self.builder.build, ep.config, target.sources[v],
                background=v in background)) for v in missing), return_exceptions=True)
        new: dict[str, Deployment] = {}
        failed = False
        for version, result in zip(missing, built, strict=True):
            if isinstance(result, BaseException):  # never takes traffic
                self._failed(ep, target.label_of(version), result)
                failed = True
            else:
                deployment, seconds = result
                new[version] = deployment
                self.metrics.load_seconds.labels(
                    endpoint=ep.name, model=deployment.model_name,
                    version=str(deployment.version)).set(seconds)
        if failed:
            self._retire(list(new.values()))  # never took a request
            return False
        for deployment in new.values():  # a child dying between batches is restarted
            if deployment.process is not None:
                deployment.process.watch()
        chosen = {v: have.get(v) or reused.get(v) or new[v] for v in target.policy.warm}
        table = RouteTable(target.revision, target.policy, chosen)
        joint = await self._joint(ep, table, None if old is None else old.joint)
        if joint is not None:
            table = RouteTable(target.revision, target.policy, chosen, joint)
        ep.table = table  # the swap: one assignment
        if old is not None and old.joint is not None and old.joint is not joint:
            self._retire([old.joint])  # its admitted requests finish on it first
        ep.last_error = None
        if old is None:
            log.info("endpoint %s: serving %s (revision %d)", ep.name,
                     ", ".join(target.policy.warm), target.revision)
            return True
        self.metrics.swaps.labels(endpoint=ep.name).inc()
        log.info("endpoint %s: now serving %s (revision %d; was %s, revision %d)%s", ep.name,
                 ", ".join(target.policy.warm), target.revision,
                 ", ".join(old.policy.warm), old.revision,
                 f"; {', '.join(reused)} kept loaded since the last swap, not loaded again"
                 if reused else "")
        serving = {id(d) for d in table.deployments.values()}
        gone = {v: d for v, d in old.deployments.items() if id(d) not in serving}
        await self._keep(ep, gone, reused)
        return True

    async def _joint(self, ep: Endpoint, table: RouteTable,
                     old: JointRaw | None) -> JointRaw | None:
        """The joint process ``table`` gets (``joint.py``): ``old`` while the split routes to
        the same versions, a new one when they changed, None for a table that routes without
        a split (or cannot have one). A joint process that fails to start is logged, and the
        table routes to each version's own process."""
        if table.fixed is not None:
            return None
        refs = table.routed()
        routed = [table.deployments[v] for v in refs]
        if not joinable(ep.config, routed):
            return None
        if old is not None and old.refs == tuple(refs):
            return old
        try:
            joint = await asyncio.get_running_loop().run_in_executor(
                None, build_joint, self.builder, ep.config, refs, routed)
        except Exception as exc:
            log.warning("endpoint %s: no joint inference process for %s (%s); each version "
                        "answers in its own process", ep.name, ", ".join(refs), exc)
            return None
        joint.process.watch()
        return joint

    async def _keep(self, ep: Endpoint, gone: dict[str, Deployment],
                    reused: dict[str, Deployment]) -> None:
        """After a swap of ``ep``: what it left out (``gone``) is retained for ``retain_s``
        (or drained and closed now, with no retention), replacing what the swap before left
        out, which is closed now unless ``reused`` (routed again)."""
        before = self.retained.pop(ep.name, None)
        if before is not None:
            if before.expiry is not None:
                before.expiry.cancel()
            self._retire([d for v, d in before.deployments.items() if v not in reused])
        if gone and self.retain_s > 0:
            kept = Retained(gone)
            kept.expiry = asyncio.get_running_loop().create_task(self._expire(ep.name, kept))
            self.retained[ep.name] = kept
            log.info("endpoint %s: keeping %s loaded for %g s, not routed to (a policy that "
                     "needs it again by then takes it at once)", ep.name, ", ".join(gone),
                     self.retain_s)
        else:
            for deployment in gone.values():
                await deployment.drain()  # in-flight requests finish on the old version
            self._retire(list(gone.values()))
        self._count(ep.name)

    async def _expire(self, name: str, kept: Retained) -> None:
        """Drain and close ``kept`` after ``retain_s`` unless a swap took it meanwhile."""
        await asyncio.sleep(self.retain_s)
        async with self.checking:  # never while a swap may be reusing one of them
            if self.retained.get(name) is not kept:
                return
            del self.retained[name]
            log.info("endpoint %s: closing %s, not routed to for %g s", name,
                     ", ".join(kept.deployments), self.retain_s)
            self._retire(list(kept.deployments.values()))
            self._count(name)

    def _count(self, name: str) -> None:
        kept = self.retained.get(name)
        self.metrics.retained.labels(endpoint=name).set(
            0 if kept is None else len(kept.deployments))

    def kept(self, name: str | None = None) -> list[Deployment]:
        """The retained deployments (loaded, not routed to) of endpoint ``name`` (None:
        every endpoint's): their processes' log counters and queues still count."""
        return [d for n, kept in self.retained.items() if name is None or n == name
                for d in kept.deployments.values()]

    async def release(self) -> None:
        """Drain and close every retained deployment now (shutdown): their closing joins
        ``closing``."""
        found = list(self.retained.items())
        self.retained.clear()
        expiries = [kept.expiry for _, kept in found if kept.expiry is not None]
        for expiry in expiries:
            expiry.cancel()
        await asyncio.gather(*expiries, return_exceptions=True)
        for name, kept in found:
            self._retire(list(kept.deployments.values()))
            self._count(name)

    def _failed(self, ep: Endpoint, label: str, exc: BaseException) -> None:
        ep.last_error = f"{type(exc).__name__}: {exc}"
        self.metrics.load_failures.labels(endpoint=ep.name, model=label).inc()
        log.error("endpoint %s: could not load %s: %s", ep.name, label, exc)

    def _retire(self, deployments: list[Deployment] | list[JointRaw]) -> None:
        """Close ``deployments`` in the background (stopping a process takes a moment: not on
        the watcher's path)."""
        loop = asyncio.get_running_loop()
        for deployment in deployments:
            if deployment.process is not None:
                self.retiring.add(deployment.process)
            closing = loop.create_task(self._close(deployment))
            self.closing.add(closing)
            closing.add_done_callback(self.closing.discard)

    async def _close(self, old: Deployment | JointRaw) -> None:
        await old.drain()  # at once when it was drained or never took a request
        await old.close()
        if old.process is not None:  # its final counters, moved in one step
            self.retired_log_stats = LogStats.total([self.retired_log_stats,
                                                     old.process.total_log_stats])
            self.retiring.discard(old.process)
