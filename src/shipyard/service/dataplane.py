"""The data plane: every protocol (simple JSON, Open Inference Protocol) delegates here.

An ``Endpoint`` serves one ``Deployment`` (a loaded, warmed model version with its own
adaptive batcher). A hot swap loads and warms the next version off the event loop, then
replaces the pointer in one step; requests already admitted finish on the version they
started on, because they sit in the old deployment's batcher, which drains before closing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.batching import AdaptiveBatcher
from shipyard.errors import ModelNotReadyError, NotFoundError
from shipyard.registry import Registry, is_model_uri, parse_ref
from shipyard.runtimes.model import LoadedModel, VerifiedPackage, describe
from shipyard.runtimes.model import load as load_path
from shipyard.runtimes.outputs import check_rows, concat
from shipyard.runtimes.process import ChildLog, InferenceProcess, log_entry
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.feedback import FeedbackGate, FeedbackItem
from shipyard.service.metrics import ServingMetrics
from shipyard.service.model_threads import ModelThreads
from shipyard.settings import Settings
from shipyard.stores.predictions import (
    LogStats,
    PredictionBatch,
    PredictionLog,
)
from shipyard.types import Columns, num_rows

if TYPE_CHECKING:
    from shipyard.service.monitor_scheduler import MonitorScheduler
    from shipyard.service.rollout_controller import RolloutController

log = logging.getLogger("shipyard.serve")


@dataclass
class Deployment:
    """One loaded model version behind an endpoint."""

    model: VerifiedPackage  # a LoadedModel unless its inference process runs it
    model_name: str
    version: int  # registry version; 1 for a package served from a path
    batcher: AdaptiveBatcher[_Ticket, _Share]
    process: InferenceProcess | None = None  # the model's own process (inference: process)
    # raw simple-JSON requests, answered whole by the process (see ``predict_raw``)
    raw: AdaptiveBatcher[_RawTicket, RawServed] | None = None
    labels: tuple[str, str] = field(init=False)  # (model name, version) as metric labels

    def __post_init__(self) -> None:
        self.labels = (self.model_name, str(self.version))

    @property
    def ready(self) -> bool:
        """Takes requests: its inference process is up (not restarting) and its model is
        not stuck in a call past the deadline."""
        return (self.process is None or self.process.alive) and not self.batcher.wedged

    @property
    def depth(self) -> int:
        """Requests waiting in its batchers."""
        return self.batcher.depth + (self.raw.depth if self.raw is not None else 0)

    async def drain(self) -> None:
        """Take no more requests; finish those admitted."""
        await self.batcher.close()
        if self.raw is not None:
            await self.raw.close()

    async def close(self) -> None:
        """Stop the model's process and release the model (after the batcher drained)."""
        if self.process is not None:
            await self.process.aclose()  # its last log entries are written first
        await asyncio.get_running_loop().run_in_executor(None, self.model.close)


@dataclass
class Served:
    """The answer to one request, with what produced it."""

    outputs: Columns
    deployment: Deployment
    request_id: str
    latency_ms: float


@dataclass(slots=True)
class RawServed:
    """The answer to one raw request: status and body as the inference process made them;
    ``rows``: where its rows are in the process's batch ``frame`` (for the log)."""

    status: int
    body: bytes
    frame: int
    rows: tuple[int, int] | None
    request_id: str | None = None  # an infer answer's id (the body's, else the fallback)


class _Arrival:
    """What a request's log row needs beyond its rows: its id, routing key and arrival."""

    __slots__ = ("request_id", "routing_key", "started", "ts")

    def __init__(self, request_id: str, routing_key: str | None) -> None:
        self.request_id = request_id
        self.routing_key = routing_key
        self.started = time.perf_counter()
        self.ts = time.time()


class _RawTicket(_Arrival):
    """One raw request in a batcher: the body as it came; ``infer``: an OIP infer body (else
    simple-JSON predict), whose JSON header ends at ``header_cut`` (None: the whole body).
    An infer request's ``request_id`` is the fallback until the process has read the body's
    own ``id``."""

    __slots__ = ("body", "header_cut", "infer")

    def __init__(self, body: bytes, request_id: str, routing_key: str | None,
                 infer: bool = False, header_cut: int | None = None) -> None:
        super().__init__(request_id, routing_key)
        self.body = body
        self.infer = infer
        self.header_cut = header_cut


class _Ticket(_Arrival):
    """One request in a batcher: its prepared columns."""

    __slots__ = ("columns", "rows")

    def __init__(self, columns: Columns, request_id: str, routing_key: str | None) -> None:
        super().__init__(request_id, routing_key)
        self.columns = columns
        self.rows = num_rows(columns)


@dataclass(slots=True)
class _Batch:
    """What one model call saw and answered (all its requests' rows, in order)."""

    inputs: Columns
    outputs: Columns
    requests: int
    frame: int = 0  # the inference process's id for this batch (0: run in this process)


@dataclass(slots=True)
class _Share:
    """One request's rows of a batch's outputs (sliced only when asked)."""

    batch: _Batch
    start: int
    stop: int

    def outputs(self) -> Columns:
        if self.batch.requests == 1:
            return self.batch.outputs
        start, stop = self.start, self.stop
        return {name: arr[start:stop] for name, arr in self.batch.outputs.items()}


_ID_BLOCK = 256  # ids drawn per os.urandom call
_ids: list[str] = []  # unused random ids of this process


def _forget_ids() -> None:
    _ids.clear()  # a forked child must never hand out its parent's ids


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ids)


def new_request_id() -> str:
    """An unguessable request id: 128 random bits from the OS (32 hex digits). They are
    drawn in blocks of ``_ID_BLOCK``, so a request costs a list pop rather than a syscall;
    ``list.pop`` is atomic, so threads never share one."""
    try:
        return _ids.pop()
    except IndexError:
        block = os.urandom(16 * _ID_BLOCK).hex()
        _ids.extend(block[i:i + 32] for i in range(0, len(block), 32))
        return _ids.pop()


def _ticket_rows(ticket: _Ticket) -> int:
    return ticket.rows


def _run_batch(model: LoadedModel, tickets: list[_Ticket]) -> list[_Share]:
    """The batch function: one model call for every ticket's rows."""
    inputs = concat([t.columns for t in tickets])
    return _shares(tickets, inputs, model.runtime.predict(inputs))


async def _run_batch_remote(process: InferenceProcess, tickets: list[_Ticket]) -> list[_Share]:
    """The batch function when the model runs in an inference process."""
    inputs = concat([t.columns for t in tickets])
    outputs, frame = await process.run(inputs)
    return _shares(tickets, inputs, outputs, frame)


async def _run_raw_batch(process: InferenceProcess, spec: dict[str, Any],
                         on_call: Callable[[float], None],
                         tickets: list[_RawTicket]) -> list[RawServed]:
    """The batch function of raw requests: the process answers each one whole;
    ``on_call`` hears the rows of each model call it made (the batch-size metric)."""
    batch = {**spec, "request_ids": [t.request_id for t in tickets]}
    infer = [i for i, t in enumerate(tickets) if t.infer]
    if infer:
        batch["infer"] = [[i, tickets[i].header_cut] for i in infer]
    header, frame = await process.run_raw(batch, [t.body for t in tickets])
    for rows in header["calls"]:
        on_call(rows)
    answers = [RawServed(status, bytes(body), frame, None if rows is None else (rows[0], rows[1]))
               for status, body, rows in zip(header["statuses"], header["payload"],
                                              header["ranges"], strict=True)]
    ids = header.get("ids", {})
    for i in infer:  # the id the answer names is the one the log keeps
        ticket = tickets[i]
        ticket.request_id = answers[i].request_id = ids.get(str(i), ticket.request_id)
    return answers


def _sampled(rate: float, n: int) -> Sequence[int]:
    """Which of ``n`` answered requests the log keeps at ``log_sample_rate`` ``rate``."""
    if rate >= 1.0:
        return range(n)
    return [i for i in range(n) if random.random() < rate]


def _log_in_process(process: InferenceProcess, tickets: Sequence[_Arrival],
                    rows: list[tuple[int, int, int]]) -> None:
    """Have the inference process log these requests: each ticket with its ``rows``, the
    batch id and the row range its rows have in that batch (the process still holds them)."""
    if not rows:
        return
    done = time.perf_counter()
    process.log(log_entry(
        rows, [t.request_id for t in tickets], [(done - t.started) * 1000.0 for t in tickets],
        [t.routing_key for t in tickets], [t.ts for t in tickets],
        upto=max(frame for frame, _, _ in rows)))


def _shares(tickets: list[_Ticket], inputs: Columns, outputs: Columns,
            frame: int = 0) -> list[_Share]:
    batch = _Batch(inputs, outputs, len(tickets), frame)
    shares, start = [], 0
    for ticket in tickets:
        shares.append(_Share(batch, start, start + ticket.rows))
        start += ticket.rows
    check_rows(outputs, start)
    return shares


class Endpoint:
    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.current: Deployment | None = None
        self.last_error: str | None = None
        self.failed_version: int | None = None  # not retried until the alias moves again

    @property
    def name(self) -> str:
        return self.config.name

    def deployment(self, version: int | None = None) -> Deployment:
        current = self.current
        if current is None:
            raise ModelNotReadyError(f"endpoint {self.name!r} has no model loaded yet")
        if version is not None and version != current.version:
            raise NotFoundError(f"endpoint {self.name!r} serves version {current.version}, "
                                f"not {version}")
        return current


class DataPlane:
    """Endpoints, their models and batchers, the prediction log and the metrics."""

    def __init__(self, config: ServeConfig, settings: Settings | None = None,
                 registry: Registry | None = None) -> None:
        self.config = config
        self.settings = settings or Settings.from_env()
        self._registry = registry
        self.endpoints = {e.name: Endpoint(e) for e in config.endpoints}
        self.metrics = ServingMetrics()
        log_dir = Path(config.log_dir) if config.log_dir else self.settings.home / "logs"
        self.log = PredictionLog(log_dir, flush_interval=config.flush_interval_s)
        self.feedback_gate = FeedbackGate(  # other processes' log rows: ~2 flushes away
            log_dir, list(self.endpoints), self.metrics.registry,
            horizon_s=config.feedback_horizon_s, grace_s=2 * config.flush_interval_s + 1.0)
        self._retired_log_stats = LogStats()  # log counters of stopped replaced processes
        self._retiring: set[InferenceProcess] = set()  # replaced, still stopping
        self.raw_answers: bool = False  # inference processes take raw batches (raw_child)
        self.metrics.watch(lambda: {n: (e.current.depth if e.current else 0)
                                    for n, e in self.endpoints.items()},
                           self.log_stats)
        self.executor = ModelThreads(max(4, sum(e.concurrency for e in config.endpoints) + 2))
        self._watcher: asyncio.Task[None] | None = None
        self.monitor: MonitorScheduler | None = None
        self.controller: RolloutController | None = None
        self._checking = asyncio.Lock()  # one check at a time: the watcher or a direct call
        self._closing: set[asyncio.Task[None]] = set()  # replaced deployments being released
        self.started_at = time.time()

    def log_stats(self) -> LogStats:
        """The prediction log's counters: this process's writer (feedback, and predictions
        of in-thread models) plus every inference process's, replaced ones included."""
        parts = [self.log.stats, self._retired_log_stats]
        parts += [p.total_log_stats for p in self._retiring]  # counters never step back
        parts += [ep.current.process.total_log_stats for ep in self.endpoints.values()
                  if ep.current is not None and ep.current.process is not None]
        return LogStats.total(parts)

    async def flush_log(self) -> None:
        """Write every buffered prediction-log row now: this process's writer and each
        inference process's."""
        await asyncio.gather(*(ep.current.process.flush_log() for ep in self.endpoints.values()
                               if ep.current is not None and ep.current.process is not None))
        await asyncio.get_running_loop().run_in_executor(None, self.log.flush)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(settings=self.settings)
        return self._registry

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load and warm up every endpoint, start the log writer and the alias watcher."""
        self.log.start()
        await asyncio.gather(*(self._load(ep) for ep in self.endpoints.values()))
        if any(self._watched(ep) for ep in self.endpoints.values()):
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        self._start_monitor()
        self._start_controller()

    def _start_monitor(self) -> None:
        """Run the endpoints' ``monitor:`` sections on their schedule, in a thread of their
        own (never on the event loop); imported only when a monitor is configured."""
        if not any(self.config.monitor_for(e.name) for e in self.config.endpoints):
            return
        from shipyard.service.monitor_scheduler import MonitorScheduler

        self.monitor = MonitorScheduler.from_config(self.config, self.settings)
        if self.monitor is not None:
            self.monitor.start()

    def _start_controller(self) -> None:
        """Run the rollout controller (a daemon thread) when an endpoint serves from the
        registry and the config does not turn it off."""
        if not self.config.rollout_controller or not any(
                is_model_uri(e.model) for e in self.config.endpoints):
            return
        from shipyard.service.rollout_controller import RolloutController, default_holder

        self.controller = RolloutController(self.registry, self.log.root,
                                            holder=default_holder())
        self.controller.start()

    @property
    def ready(self) -> bool:
        return all(ep.current is not None and ep.current.ready
                   for ep in self.endpoints.values())

    async def close(self) -> None:
        """Finish admitted requests, then flush the prediction log (SIGTERM lands here).
        Every step is bounded (a batch by its deadline, an inference process's last flush by
        ``LOG_TIMEOUT_S``); a deployment that fails to stop is logged, and the log is still
        flushed."""
        try:
            await self._stop_serving()
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self.log.close)
            self.executor.shutdown(wait=True)
            if self._registry is not None:
                self._registry.close()

    async def _stop_serving(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        loop = asyncio.get_running_loop()
        if self.controller is not None:  # releases its leases: a database call
            await loop.run_in_executor(None, self.controller.stop)
        if self.monitor is not None:  # may finish a window in progress: not on the loop
            await loop.run_in_executor(None, self.monitor.stop)
            # release its references (DataSketches objects) now, not at interpreter exit,
            # where nanobind reports every still-live sketch as a leak on stderr
            self.monitor = None
        for ep in self.endpoints.values():
            if ep.current is not None:
                try:
                    await ep.current.drain()
                    await ep.current.close()
                except Exception:
                    log.exception("endpoint %s: could not stop its deployment", ep.name)
        for failed in await asyncio.gather(*self._closing, return_exceptions=True):
            if isinstance(failed, Exception):
                log.error("a replaced deployment could not stop: %r", failed)

    def endpoint(self, name: str) -> Endpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            raise NotFoundError(f"unknown endpoint {name!r}; serving "
                                f"{sorted(self.endpoints)}") from None

    # -- requests --------------------------------------------------------------------------

    async def predict(self, endpoint: Endpoint, columns: Columns, *, request_id: str | None,
                      version: int | None = None, routing_key: str | None = None) -> Served:
        """Run prepared columns through the endpoint's batcher; the batch is logged when its
        answers are delivered (see ``_log_batch``)."""
        deployment = endpoint.deployment(version)
        ticket = _Ticket(columns, request_id or new_request_id(), routing_key)
        share = await deployment.batcher.submit(ticket, timeout=endpoint.config.timeout_s)
        return Served(share.outputs(), deployment, ticket.request_id,
                      (time.perf_counter() - ticket.started) * 1000.0)

    def predict_raw(self, endpoint: Endpoint, deployment: Deployment, body: bytes, *,
                    request_id: str, routing_key: str | None, infer: bool = False,
                    header_cut: int | None = None) -> asyncio.Future[RawServed]:
        """A simple-JSON predict request (or with ``infer``, an OIP infer request whose JSON
        header ends at ``header_cut``), parsed, validated, predicted and answered by the
        deployment's inference process (``deployment.raw`` must be set); await the answer."""
        assert deployment.raw is not None
        return deployment.raw.submit(_RawTicket(body, request_id, routing_key, infer,
                                                header_cut),
                                     timeout=endpoint.config.timeout_s)

    def _log_raw_batch(self, endpoint: Endpoint, process: InferenceProcess,
                       tickets: list[_RawTicket], answers: list[RawServed]) -> None:
        """The log entry for the answered requests of a raw batch (the process holds the rows
        and writes them)."""
        kept: list[_RawTicket] = []
        rows: list[tuple[int, int, int]] = []
        ids, counts = [], []  # every answered id may get feedback, logged or sampled out
        for ticket, answer in zip(tickets, answers, strict=True):
            if answer.rows is not None:
                ids.append(ticket.request_id)
                counts.append(answer.rows[1] - answer.rows[0])
        self.feedback_gate.answered(endpoint.name, ids, counts)
        for i in _sampled(endpoint.config.log_sample_rate, len(tickets)):
            answer = answers[i]
            if answer.rows is not None:  # None: a 4xx or 5xx answer, no rows
                kept.append(tickets[i])
                rows.append((answer.frame, *answer.rows))
        _log_in_process(process, kept, rows)

    def _log_batch(self, endpoint: Endpoint, deployment: Deployment, tickets: list[_Ticket],
                   shares: list[_Share]) -> None:
        """One log record for the requests of a batch that got their answers (a sampled
        subset below a log rate of 1)."""
        done = time.perf_counter()
        self.feedback_gate.answered(endpoint.name, [t.request_id for t in tickets],
                                    [t.rows for t in tickets])
        if endpoint.config.log_sample_rate < 1.0:
            kept = _sampled(endpoint.config.log_sample_rate, len(tickets))
            if not kept:
                return
            tickets, shares = [tickets[i] for i in kept], [shares[i] for i in kept]
        if deployment.process is not None:  # the child holds the rows: it writes them
            _log_in_process(deployment.process, tickets,
                            [(s.batch.frame, s.start, s.stop) for s in shares])
            return
        batch = shares[0].batch
        if len(shares) == batch.requests and all(s.batch is batch for s in shares):
            inputs, outputs = batch.inputs, batch.outputs
        else:  # some callers timed out, were sampled out, or were retried alone
            inputs = concat([t.columns for t in tickets])
            outputs = concat([s.outputs() for s in shares])
        self.log.append(PredictionBatch(
            request_ids=[t.request_id for t in tickets], row_counts=[t.rows for t in tickets],
            latency_ms=[(done - t.started) * 1000.0 for t in tickets],
            routing_keys=[t.routing_key for t in tickets], ts=[t.ts for t in tickets],
            endpoint=endpoint.name, model=deployment.model_name, version=deployment.version,
            inputs=inputs, outputs=outputs,
            class_labels=deployment.model.signature.class_labels))

    async def feedback(self, endpoint: Endpoint, items: Sequence[FeedbackItem]) -> int:
        """Log ground-truth labels of answered requests (``service.feedback``); returns the
        rows accepted."""
        signature = endpoint.deployment().model.signature
        return await self.feedback_gate.admit(endpoint.name, signature, items, self.log.append)

    # -- loading and hot swap --------------------------------------------------------------

    def _watched(self, ep: Endpoint) -> bool:
        source = ep.config.model
        return is_model_uri(source) and parse_ref(source).version is None

    def _resolve(self, source: str) -> tuple[Path, str, int]:
        if is_model_uri(source):
            version = self.registry.get_version(source)
            return self.registry.fetch(version.uri), version.name, version.version
        path = Path(source)
        return path, path.name, 1

    def _build(self, ep: Endpoint) -> tuple[Deployment, float]:
        """Load + warm up the endpoint's model (runs in a thread)."""
        started = time.perf_counter()
        path, name, version = self._resolve(ep.config.model)
        labels = {"endpoint": ep.name, "model": name, "version": str(version)}
        batch_hist = self.metrics.batch_size.labels(**labels)
        model: VerifiedPackage
        process = None
        if ep.config.inference == "process":
            # the inference process verifies and loads the model files and warms up; here
            # only the manifest and the rest (signature, reference profile): one copy of
            # the model in memory, and its files are read once
            model = describe(path, runtime=ep.config.runtime, model_files=False)
            log = ChildLog(str(self.log.root), self.config.flush_interval_s, ep.name, name,
                           version)
            process = InferenceProcess(path, trust=ep.config.trust, runtime=ep.config.runtime,
                                       settings=self.settings, log=log,
                                       raw=self.raw_answers)
            concurrency = 1  # one batch at a time per process
            run: Callable[[list[_Ticket]], Sequence[_Share]] | None = None
            run_remote = functools.partial(_run_batch_remote, process)
        else:
            loaded = model = load_path(path, trust=ep.config.trust, runtime=ep.config.runtime,
                                       settings=self.settings)
            example = model.manifest.input_example
            if example is not None:
                loaded.predict(json.loads((path / example).read_text()))  # warm-up
            concurrency = ep.config.concurrency if loaded.runtime.capabilities.thread_safe \
                else 1
            run, run_remote = functools.partial(_run_batch, loaded), None
        batcher: AdaptiveBatcher[_Ticket, _Share] = AdaptiveBatcher(
            run,
            rows_of=_ticket_rows,
            afn=run_remote,
            max_batch_size=ep.config.max_batch_size, max_wait_ms=ep.config.max_wait_ms,
            max_queue=ep.config.max_queue, concurrency=concurrency, executor=self.executor,
            on_batch=batch_hist.observe, deadline_s=ep.config.batch_deadline_s,
            on_results=lambda tickets, shares: self._log_batch(ep, deployment, tickets, shares))
        raw = None
        if process is not None and process.raw:
            spec = {"model": name, "endpoint": ep.name, "version": version,
                    "max_rows": ep.config.max_batch_size, "unknown": ep.config.unknown_categories}
            raw_process = process
            # batches of requests (not rows: the process splits calls at max_batch_size rows)
            raw = AdaptiveBatcher(
                None, afn=functools.partial(_run_raw_batch, process, spec, batch_hist.observe),
                max_batch_size=ep.config.max_batch_size, max_wait_ms=ep.config.max_wait_ms,
                max_queue=ep.config.max_queue, concurrency=1,
                deadline_s=ep.config.batch_deadline_s,
                on_results=lambda tickets, answers: self._log_raw_batch(
                    ep, raw_process, tickets, answers))
        deployment = Deployment(model, name, version, batcher, process, raw)
        return deployment, time.perf_counter() - started

    async def _load(self, ep: Endpoint) -> bool:
        loop = asyncio.get_running_loop()
        try:
            deployment, seconds = await loop.run_in_executor(None, self._build, ep)
        except Exception as exc:  # a version that fails to load never takes traffic
            ep.last_error = f"{type(exc).__name__}: {exc}"
            self.metrics.load_failures.labels(endpoint=ep.name,
                                              model=ep.config.model).inc()
            log.error("endpoint %s: could not load %s: %s", ep.name, ep.config.model, exc)
            return False
        self.metrics.load_seconds.labels(endpoint=ep.name, model=deployment.model_name,
                                         version=str(deployment.version)).set(seconds)
        old, ep.current = ep.current, deployment  # the swap: one assignment
        if deployment.process is not None:  # a child dying between batches is restarted
            deployment.process.watch()
        ep.last_error = None
        if old is not None:
            self.metrics.swaps.labels(endpoint=ep.name).inc()
            log.info("endpoint %s: now serving %s v%d (was v%d)", ep.name,
                     deployment.model_name, deployment.version, old.version)
            await old.drain()  # in-flight requests finish on the old version
            # stopping its process may take a moment: not on the watcher's path
            if old.process is not None:
                self._retiring.add(old.process)
            closing = loop.create_task(self._retire(old))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        else:
            log.info("endpoint %s: serving %s v%d (loaded in %.2fs)", ep.name,
                     deployment.model_name, deployment.version, seconds)
        return True

    async def _retire(self, old: Deployment) -> None:
        await old.close()
        if old.process is not None:  # its final counters, moved in one step
            self._retired_log_stats = LogStats.total([self._retired_log_stats,
                                                      old.process.total_log_stats])
            self._retiring.discard(old.process)

    async def check_for_new_versions(self) -> None:
        """One pass of the watcher: swap endpoints whose alias moved."""
        async with self._checking:  # concurrent passes would load and swap a version twice
            await self._check_for_new_versions()

    async def _check_for_new_versions(self) -> None:
        loop = asyncio.get_running_loop()
        for ep in self.endpoints.values():
            if not self._watched(ep):
                continue
            try:
                latest = await loop.run_in_executor(None, self.registry.get_version,
                                                    ep.config.model)
            except Exception as exc:
                log.warning("endpoint %s: cannot resolve %s: %s", ep.name, ep.config.model, exc)
                continue
            if latest.version == ep.failed_version:
                continue
            ep.failed_version = None  # the alias moved: a version that failed may be retried
            changed = ep.current is None or latest.version != ep.current.version
            if changed and not await self._load(ep):
                ep.failed_version = latest.version

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            await self.check_for_new_versions()
