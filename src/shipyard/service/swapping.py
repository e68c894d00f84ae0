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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from shipyard.registry import Registry, is_model_uri
from shipyard.registry.uri import SCHEME
from shipyard.routing import Policy, Single
from shipyard.runtimes.process import InferenceProcess
from shipyard.service.deployment import Deployment, DeploymentBuilder
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


def watched(ep: Endpoint) -> bool:
    """Whether the endpoint's target can change while it serves (a registry source)."""
    return is_model_uri(ep.config.model)


class Swapper:
    """Loads endpoints' targets and swaps their route tables; keeps the log counters of
    deployments it stopped."""

    def __init__(self, endpoints: Iterable[Endpoint], builder: DeploymentBuilder,
                 metrics: ServingMetrics, registry: Callable[[], Registry]) -> None:
        self.endpoints = list(endpoints)
        self.builder = builder
        self.metrics = metrics
        self.registry = registry
        self.retired_log_stats = LogStats()  # log counters of stopped replaced processes
        self.retiring: set[InferenceProcess] = set()  # replaced, still stopping
        self.closing: set[asyncio.Task[None]] = set()  # replaced deployments being released
        self.checking = asyncio.Lock()  # one pass at a time: the watcher or a direct call

    def target(self, ep: Endpoint) -> Target:
        """The endpoint's target now (blocks: reads the registry)."""
        source = ep.config.model
        if not is_model_uri(source):
            ref = f"{Path(source).name}/1"
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
        have = {} if old is None else old.deployments
        missing = [v for v in target.policy.warm if v not in have]
        built = await asyncio.gather(
            *(loop.run_in_executor(None, self.builder.build, ep.config, target.sources[v])
              for v in missing), return_exceptions=True)
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
        table = RouteTable(target.revision, target.policy,
                           {v: have.get(v) or new[v] for v in target.policy.warm})
        ep.table = table  # the swap: one assignment
        ep.last_error = None
        if old is None:
            log.info("endpoint %s: serving %s (revision %d)", ep.name,
                     ", ".join(target.policy.warm), target.revision)
            return True
        self.metrics.swaps.labels(endpoint=ep.name).inc()
        log.info("endpoint %s: now serving %s (revision %d; was %s, revision %d)", ep.name,
                 ", ".join(target.policy.warm), target.revision,
                 ", ".join(old.policy.warm), old.revision)
        gone = [d for v, d in old.deployments.items() if v not in table.deployments]
        for deployment in gone:
            await deployment.drain()  # in-flight requests finish on the old version
        self._retire(gone)
        return True

    def _failed(self, ep: Endpoint, label: str, exc: BaseException) -> None:
        ep.last_error = f"{type(exc).__name__}: {exc}"
        self.metrics.load_failures.labels(endpoint=ep.name, model=label).inc()
        log.error("endpoint %s: could not load %s: %s", ep.name, label, exc)

    def _retire(self, deployments: list[Deployment]) -> None:
        """Close ``deployments`` in the background (stopping a process takes a moment: not on
        the watcher's path)."""
        loop = asyncio.get_running_loop()
        for deployment in deployments:
            if deployment.process is not None:
                self.retiring.add(deployment.process)
            closing = loop.create_task(self._close(deployment))
            self.closing.add(closing)
            closing.add_done_callback(self.closing.discard)

    async def _close(self, old: Deployment) -> None:
        await old.drain()  # at once when it was drained or never took a request
        await old.close()
        if old.process is not None:  # its final counters, moved in one step
            self.retired_log_stats = LogStats.total([self.retired_log_stats,
                                                     old.process.total_log_stats])
            self.retiring.discard(old.process)
