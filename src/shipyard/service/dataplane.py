"""The data plane: every protocol (simple JSON, Open Inference Protocol) delegates here.

An ``Endpoint`` serves one ``Deployment`` (a loaded, warmed model version with its own
adaptive batcher). A hot swap loads and warms the next version off the event loop, then
replaces the pointer in one step; requests already admitted finish on the version they
started on, because they sit in the old deployment's batcher, which drains before closing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.batching import AdaptiveBatcher
from shipyard.errors import NotFoundError
from shipyard.registry import Registry, is_model_uri, parse_ref
from shipyard.runtimes.model import LoadedModel
from shipyard.runtimes.model import load as load_path
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.metrics import ServingMetrics
from shipyard.settings import Settings
from shipyard.stores.predictions import FeedbackRecord, PredictionLog, PredictionRecord
from shipyard.types import Columns

log = logging.getLogger("shipyard.serve")


@dataclass
class Deployment:
    """One loaded model version behind an endpoint."""

    model: LoadedModel
    model_name: str
    version: int  # registry version; 1 for a package served from a path
    batcher: AdaptiveBatcher[Columns, Columns]


@dataclass
class Served:
    """The answer to one request, with what produced it."""

    outputs: Columns
    deployment: Deployment
    request_id: str
    latency_ms: float


_ids: tuple[int, str, itertools.count[int]] = (-1, "", itertools.count())


def new_request_id() -> str:
    """A unique request id: a random per-process prefix and a counter (no syscall per
    request, unlike uuid4). The prefix is redrawn in a forked child."""
    global _ids
    pid, prefix, counter = _ids
    if pid != os.getpid():
        _ids = pid, prefix, counter = os.getpid(), secrets.token_hex(8), itertools.count()
    return f"{prefix}{next(counter):016x}"


def _concat(items: list[Columns]) -> Columns:
    if len(items) == 1:
        return items[0]
    return {k: np.concatenate([it[k] for it in items]) for k in items[0]}


def _split(outputs: Columns, sizes: Sequence[int]) -> list[Columns]:
    if len(sizes) == 1:
        return [outputs]
    bounds = np.cumsum(sizes)[:-1]
    parts = {k: np.split(v, bounds) for k, v in outputs.items()}
    return [{k: parts[k][i] for k in outputs} for i in range(len(sizes))]


def _rows(columns: Columns) -> int:
    return len(next(iter(columns.values())))


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
            raise NotFoundError(f"endpoint {self.name!r} has no model loaded yet")
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
        self.metrics.watch(lambda: {n: (e.current.batcher.depth if e.current else 0)
                                    for n, e in self.endpoints.items()},
                           lambda: self.log.stats)
        self.executor = ThreadPoolExecutor(max_workers=max(
            4, sum(e.concurrency for e in config.endpoints) + 2), thread_name_prefix="infer")
        self._watcher: asyncio.Task[None] | None = None
        self._checking = asyncio.Lock()  # one check at a time: the watcher or a direct call
        self.started_at = time.time()

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

    @property
    def ready(self) -> bool:
        return all(ep.current is not None for ep in self.endpoints.values())

    async def close(self) -> None:
        """Finish admitted requests, then flush the prediction log (SIGTERM lands here)."""
        if self._watcher is not None:
            self._watcher.cancel()
        for ep in self.endpoints.values():
            if ep.current is not None:
                await ep.current.batcher.close()
        await asyncio.get_running_loop().run_in_executor(None, self.log.close)
        self.executor.shutdown(wait=True)
        if self._registry is not None:
            self._registry.close()

    def endpoint(self, name: str) -> Endpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            raise NotFoundError(f"unknown endpoint {name!r}; serving "
                                f"{sorted(self.endpoints)}") from None

    # -- requests --------------------------------------------------------------------------

    async def predict(self, endpoint: Endpoint, columns: Columns, *, request_id: str | None,
                      version: int | None = None, routing_key: str | None = None) -> Served:
        """Run prepared columns through the endpoint's batcher and log the pair."""
        started = time.perf_counter()
        deployment = endpoint.deployment(version)
        outputs = await deployment.batcher.submit(columns, timeout=endpoint.config.timeout_s)
        latency = (time.perf_counter() - started) * 1000.0
        rid = request_id or new_request_id()
        rate = endpoint.config.log_sample_rate
        if rate >= 1.0 or random.random() < rate:
            self.log.append(PredictionRecord(
                request_id=rid, ts=time.time(), endpoint=endpoint.name,
                model=deployment.model_name, version=deployment.version, latency_ms=latency,
                routing_key=routing_key, inputs=columns, outputs=outputs,
                class_labels=deployment.model.signature.class_labels))
        return Served(outputs, deployment, rid, latency)

    def feedback(self, endpoint: Endpoint, items: Sequence[tuple[str, Sequence[Any]]]) -> int:
        """Log ground-truth labels by request id; returns the rows accepted."""
        now = time.time()
        accepted = 0
        for request_id, labels in items:
            if self.log.append(FeedbackRecord(request_id, now, endpoint.name, list(labels))):
                accepted += len(labels)
        return accepted

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
        model = load_path(path, trust=ep.config.trust, runtime=ep.config.runtime,
                          settings=self.settings)
        example = model.manifest.input_example
        if example is not None:
            model.predict(json.loads((path / example).read_text()))  # warm-up
        labels = {"endpoint": ep.name, "model": name, "version": str(version)}
        batch_hist = self.metrics.batch_size.labels(**labels)

        def run(items: list[Columns]) -> list[Columns]:
            return _split(model.runtime.predict(_concat(items)), [_rows(it) for it in items])

        concurrency = ep.config.concurrency if model.runtime.capabilities.thread_safe else 1
        batcher: AdaptiveBatcher[Columns, Columns] = AdaptiveBatcher(
            run, rows_of=_rows, max_batch_size=ep.config.max_batch_size,
            max_wait_ms=ep.config.max_wait_ms, max_queue=ep.config.max_queue,
            concurrency=concurrency, executor=self.executor, on_batch=batch_hist.observe)
        return Deployment(model, name, version, batcher), time.perf_counter() - started

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
        ep.last_error = None
        if old is not None:
            self.metrics.swaps.labels(endpoint=ep.name).inc()
            log.info("endpoint %s: now serving %s v%d (was v%d)", ep.name,
                     deployment.model_name, deployment.version, old.version)
            await old.batcher.close()  # in-flight requests finish on the old version
            old.model.close()
        else:
            log.info("endpoint %s: serving %s v%d (loaded in %.2fs)", ep.name,
                     deployment.model_name, deployment.version, seconds)
        return True

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
