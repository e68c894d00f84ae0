"""The data plane: every protocol (simple JSON, Open Inference Protocol) delegates here.

It owns the endpoints, the prediction log and the metrics, and offers the request entry
points. What runs beside the requests (the watcher, the monitor's schedule, the rollout
controller) is ``service.background``; the log's counters across its writers,
``service.log_accounting``. One request: the server reads the endpoint's route table
(``service.routes``) and picks a deployment, then ``predict`` / ``predict_raw`` put a ticket
(``service.batch_calls``) in that deployment's batcher; the batch's answers are logged by
``service.request_log``. A shadow policy's copy goes through ``service.shadowing``. Loading
and hot swap live in ``service.swapping`` (route tables) and ``service.deployment`` (one
loaded version).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import NotFoundError
from shipyard.packaging.signing import SigningPolicy
from shipyard.registry import Registry
from shipyard.service.background import Background
from shipyard.service.batch_calls import Arrival, RawServed, RawTicket, Ticket
from shipyard.service.config import ServeConfig
from shipyard.service.defence_config import read_secret
from shipyard.service.deployment import Deployment, DeploymentBuilder
from shipyard.service.feedback import FeedbackGate, FeedbackItem
from shipyard.service.joint import JointRaw
from shipyard.service.keyring import KeyRefresh, KeyRing, server_name
from shipyard.service.log_accounting import deployments, flush_processes, joint, log_stats
from shipyard.service.metrics import ServingMetrics
from shipyard.service.model_threads import ModelThreads
from shipyard.service.monitor_metrics import MonitorResults
from shipyard.service.request_ids import new_request_id
from shipyard.service.request_log import RequestLog
from shipyard.service.rollout_metrics import RolloutState
from shipyard.service.routes import Endpoint, Pick
from shipyard.service.shadowing import Shadowing
from shipyard.service.swapping import Swapper
from shipyard.settings import Settings
from shipyard.stores.log_location import local_state, log_root
from shipyard.stores.log_shipping import LogShipper
from shipyard.stores.predictions import LogStats, PredictionLog
from shipyard.types import Columns

if TYPE_CHECKING:
    from shipyard.service.monitor_scheduler import MonitorScheduler
    from shipyard.service.rollout_controller import RolloutController
    from shipyard.service.rollout_metrics import RolloutStep

__all__ = ["DataPlane", "Deployment", "Endpoint", "Pick", "RawServed", "Served",
           "new_request_id"]

log = logging.getLogger("shipyard.serve")


class Served:
    """The answer to one request, with what produced it."""

    __slots__ = ("deployment", "latency_ms", "outputs", "request_id")

    def __init__(self, outputs: Columns, deployment: Deployment, request_id: str,
                 latency_ms: float) -> None:
        self.outputs = outputs
        self.deployment = deployment
        self.request_id = request_id
        self.latency_ms = latency_ms


class DataPlane:
    """Endpoints, their models and batchers, the prediction log and the metrics."""

    def __init__(self, config: ServeConfig, settings: Settings | None = None,
                 registry: Registry | None = None) -> None:
        self.config = config
        self.settings = settings or Settings.from_env()
        self._registry = registry
        self.endpoints = {e.name: Endpoint(e) for e in config.endpoints}
        self.metrics = ServingMetrics()
        log_dir = log_root(config.log_dir or self.settings.home / "logs")
        self.log = PredictionLog(log_dir, flush_interval=config.flush_interval_s)
        # what stays on local disk: the label claims, and for a log on an object store the
        # inference processes' segments and spools until ``shipper`` uploads them
        local = local_state(log_dir, self.settings.home)
        self.shipper = None if isinstance(log_dir, Path) else LogShipper(
            local / "outbox", log_dir, interval_s=config.flush_interval_s)
        flushes = 2 if self.shipper is None else 3  # an upload after the child's flush
        self.feedback_gate = FeedbackGate(  # other processes' log rows: ~2 flushes away
            log_dir, list(self.endpoints), self.metrics.registry, claims=local,
            horizon_s=config.feedback_horizon_s,
            grace_s=flushes * config.flush_interval_s + 1.0)
        self.request_log = RequestLog(self.log, self.feedback_gate)
        # an endpoint's versions share the threads: each may keep its batches' slots busy
        self.executor = ModelThreads(max(4, 2 * sum(e.concurrency for e in config.endpoints)
                                         + 2))
        self.builder = DeploymentBuilder(
            settings=self.settings, metrics=self.metrics,
            log_root=local if self.shipper is None else self.shipper.outbox,
            flush_interval_s=config.flush_interval_s, executor=self.executor,
            request_log=self.request_log, registry=lambda: self.registry,
            signing=SigningPolicy.load(
                config.trusted_keys or self.settings.trusted_keys,
                self.settings.require_signed if config.require_signed is None
                else config.require_signed))
        if any(e.noise > 0 for e in config.endpoints):  # the key of their output noise
            self.builder.output_secret = read_secret(config.output_secret_file)
        self.swapper = Swapper(self.endpoints.values(), self.builder, self.metrics,
                               lambda: self.registry, retain_s=config.retain_previous_s)
        self.shadowing = Shadowing(self.metrics.registry)
        self.metrics.watch(lambda: {n: sum(d.depth for d in (*deployments(e),
                                                             *self.swapper.kept(n)))
                                    + sum(j.depth for j in joint(e))
                                    for n, e in self.endpoints.items()},
                           self.log_stats,
                           lambda: {n: e.config.max_queue for n, e in self.endpoints.items()})
        self.shadowing.on_failure = self._shadow_failed
        # the watcher, the monitor's schedule and the rollout controller
        self.background = Background(config, self.settings, self.endpoints, self.swapper,
                                     lambda: self.registry, self.log.root)
        self.metrics.watch_shared(
            MonitorResults(log_dir, list(self.endpoints), home=self.settings.home,
                           top_features=config.metrics_top_features),
            RolloutState(self.endpoints.values(), lambda: self.background.rollout_steps))
        # the API keys this server accepts: serve.yaml's, and the registry's (re-read every
        # poll interval, first uses recorded there)
        self.keys = KeyRing(config.api_keys, config.admin_api_keys)
        self.key_refresh = KeyRefresh(
            self.keys, lambda: self.registry.api_keys.snapshot(),
            lambda name: self.registry.api_keys.mark_used(name, where=server_name()),
            config.poll_interval_s) if config.registry_keys else None
        self.started_at = time.time()

    @property
    def raw_answers(self) -> bool:
        """Inference processes take raw batches (``runtimes.raw_child``)."""
        return self.builder.raw_answers

    @raw_answers.setter
    def raw_answers(self, raw: bool) -> None:
        self.builder.raw_answers = raw

    def log_stats(self) -> LogStats:
        """The prediction log's counters: this process's writer (feedback, and predictions
        of in-thread models) plus every inference process's, replaced ones included."""
        return log_stats(self.log, self.endpoints.values(), self.swapper)

    async def flush_log(self) -> None:
        """Write every buffered prediction-log row now: this process's writer and each
        inference process's."""
        await flush_processes(self.endpoints.values(), self.swapper)
        await asyncio.get_running_loop().run_in_executor(None, self.log.flush)
        if self.shipper is not None:  # the inference processes' segments, uploaded
            await asyncio.get_running_loop().run_in_executor(None, self.shipper.ship)

    @property
    def monitor(self) -> MonitorScheduler | None:
        return self.background.monitor

    @property
    def controller(self) -> RolloutController | None:
        return self.background.controller

    @property
    def rollout_steps(self) -> dict[str, RolloutStep]:
        return self.background.rollout_steps

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(settings=self.settings)
        return self._registry

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the keys, load and warm up every endpoint, start the log writer and the
        policy watcher."""
        if self.key_refresh is not None:  # no request is answered before the keys are known
            await self.key_refresh.start()
        self.log.start()
        if self.shipper is not None:  # segments left by a server that stopped are uploaded
            self.shipper.start()
        for ep in self.endpoints.values():  # a plane started again after close loads afresh
            ep.table, ep.failed = None, None
        await asyncio.gather(*(self.swapper.load(ep) for ep in self.endpoints.values()))
        self.background.start()

    @property
    def ready(self) -> bool:
        """Every endpoint's answering versions are loaded and take requests."""
        for ep in self.endpoints.values():
            table = ep.table
            if table is None or not all(table.deployments[v].ready
                                        for v in table.policy.versions):
                return False
            if table.joint is not None and not table.joint.ready:
                return False
        return True

    async def close(self) -> None:
        """Finish admitted requests, then flush the prediction log (SIGTERM lands here).
        Every step is bounded (a batch by its deadline, an inference process's last flush by
        ``LOG_TIMEOUT_S``); a deployment that fails to stop is logged, and the log is still
        flushed."""
        try:
            await self._stop_serving()
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self.log.close)
            if self.shipper is not None:  # after the inference processes' last segments
                await asyncio.get_running_loop().run_in_executor(None, self.shipper.close)
            self.executor.shutdown(wait=True)
            if self._registry is not None:
                self._registry.close()

    async def _stop_serving(self) -> None:
        if self.key_refresh is not None:
            await self.key_refresh.stop()
        await self.background.stop()
        for ep in self.endpoints.values():
            parts: list[Deployment | JointRaw] = [*joint(ep), *deployments(ep)]
            for deployment in parts:
                try:
                    await deployment.drain()
                    await deployment.close()
                except Exception:
                    log.exception("endpoint %s: could not stop %s", ep.name,
                                  getattr(deployment, "ref", "its joint process"))
        await self.swapper.release()  # retained versions: closed with the replaced ones
        for failed in await asyncio.gather(*self.swapper.closing, return_exceptions=True):
            if isinstance(failed, Exception):
                log.error("a replaced deployment could not stop: %r", failed)

    def endpoint(self, name: str) -> Endpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            raise NotFoundError(f"unknown endpoint {name!r}; serving "
                                f"{sorted(self.endpoints)}") from None

    async def check_for_new_versions(self) -> None:
        """One pass of the watcher (``Background.check``)."""
        await self.background.check()

    # -- requests --------------------------------------------------------------------------

    async def predict(self, endpoint: Endpoint, columns: Columns, *, request_id: str | None,
                      version: int | None = None, routing_key: str | None = None,
                      pick: Pick | None = None, copy: Columns | None = None,
                      key_name: str | None = None) -> Served:
        """Run prepared columns through the batcher of the deployment ``pick`` names (else:
        the one ``version`` names, else the one the route table gives ``routing_key``); with
        ``copy`` (the columns prepared for the shadow's model) a shadow pick's copy goes out
        once the request is in. The batch is logged when its answers are delivered, with
        ``key_name`` (the API key's name) on its rows."""
        if pick is None:
            table = endpoint.routes()
            pick = table.pick(routing_key) if version is None else \
                table.pinned(version, endpoint.name)
        deployment = pick.deployment
        ticket = Ticket(columns, request_id or new_request_id(), routing_key, pick.variant,
                        pick.revision, key_name=key_name)
        future = deployment.batcher.submit(ticket, timeout=endpoint.config.timeout_s)
        shadow = pick.shadow
        if shadow is not None:
            if copy is None:  # the request does not fit the shadow's model
                self.shadowing.dropped(endpoint.name)
            else:
                self.shadowing.send(endpoint.name, shadow, shadow.batcher, Ticket(
                    copy, ticket.request_id, routing_key, "shadow", pick.revision, True,
                    key_name), endpoint.config.timeout_s)
        share = await future
        return Served(share.outputs(), deployment, ticket.request_id,
                      (time.perf_counter() - ticket.started) * 1000.0)

    def predict_raw(self, endpoint: Endpoint, pick: Pick, body: bytes, *, request_id: str,
                    routing_key: str | None, infer: bool = False,
                    header_cut: int | None = None,
                    key_name: str | None = None) -> asyncio.Future[RawServed]:
        """A simple-JSON predict request (or with ``infer``, an OIP infer request whose JSON
        header ends at ``header_cut``), parsed, validated, predicted and answered by the
        inference process of the deployment ``pick`` names (its ``raw`` must be set); await
        the answer. A shadow pick's copy goes out once the request is in."""
        joint = pick.joint  # a split's versions in one process: one frame per batch
        raw = pick.deployment.raw if joint is None else joint.batcher
        assert raw is not None
        timeout = endpoint.config.timeout_s
        future = raw.submit(RawTicket(body, request_id, routing_key, infer, header_cut,
                                      pick.variant, pick.revision, slot=pick.slot,
                                      key_name=key_name),
                            timeout=timeout)
        shadow = pick.shadow
        if shadow is not None:
            if shadow.copies is None:  # its process takes column batches only
                self.shadowing.dropped(endpoint.name)
            else:
                self.shadowing.send(endpoint.name, shadow, shadow.copies, RawTicket(
                    body, request_id, routing_key, infer, header_cut, "shadow", pick.revision,
                    True, key_name=key_name), timeout)
        return future

    def failed(self, endpoint: Endpoint, pick: Pick, request_id: str, routing_key: str | None,
               status: int, latency_ms: float) -> None:
        """A routed request was answered with ``status`` (not 200): an error record."""
        d = pick.deployment
        self.request_log.error(endpoint.name, d.model_name, d.version, pick.variant,
                               pick.revision, request_id, status, latency_ms, routing_key)

    def _shadow_failed(self, endpoint: str, deployment: Deployment, ticket: Arrival,
                       status: int) -> None:
        self.request_log.error(endpoint, deployment.model_name, deployment.version, "shadow",
                               ticket.revision, ticket.request_id, status,
                               (time.perf_counter() - ticket.started) * 1000.0,
                               ticket.routing_key, shadow=True)

    async def feedback(self, endpoint: Endpoint, items: Sequence[FeedbackItem]) -> int:
        """Log ground-truth labels of answered requests (``service.feedback``); returns the
        rows accepted."""
        signature = endpoint.deployment().model.signature
        return await self.feedback_gate.admit(endpoint.name, signature, items, self.log.append)
