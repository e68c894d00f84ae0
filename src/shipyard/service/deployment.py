"""A deployment: one loaded, warmed model version with its own batchers, and how one is
built from an endpoint's configuration and a source (a package path or an exact registry
version, ``models:/NAME/VERSION``)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.batching import AdaptiveBatcher
from shipyard.packaging.signing import SigningPolicy
from shipyard.registry import Registry, is_model_uri
from shipyard.runtimes.model import VerifiedPackage, describe
from shipyard.runtimes.model import load as load_path
from shipyard.runtimes.process import ChildLog, InferenceProcess
from shipyard.service.batch_calls import (
    RawServed,
    RawTicket,
    Share,
    Ticket,
    run_batch,
    run_batch_remote,
    run_raw_batch,
    ticket_rows,
)
from shipyard.service.config import EndpointConfig
from shipyard.service.metrics import ServingMetrics
from shipyard.service.model_threads import ModelThreads
from shipyard.service.request_log import LogTarget, RequestLog
from shipyard.settings import Settings

log = logging.getLogger("shipyard.serve")

COPY_BATCH = 4  # a batch of shadow copies holds up to this many times max_batch_size requests
COPY_HOLD_MS = 10.0  # ... and waits this long for company when it is short of that
# a shadow candidate's inference process runs this much nicer (os.nice): on a busy machine
# the primary's processes get the CPU first and the copies take what is left
BACKGROUND_NICE = 10


@dataclass
class Deployment:
    """One loaded model version behind an endpoint."""

    model: VerifiedPackage  # a LoadedModel unless its inference process runs it
    model_name: str
    version: int  # registry version; a path's: the endpoint's model_version (default 1)
    batcher: AdaptiveBatcher[Ticket, Share]
    process: InferenceProcess | None = None  # the model's own process (inference: process)
    # raw simple-JSON requests, answered whole by the process (see ``DataPlane.predict_raw``)
    raw: AdaptiveBatcher[RawTicket, RawServed] | None = None
    # shadow copies of raw requests: larger batches, answered with statuses and rows only
    copies: AdaptiveBatcher[RawTicket, RawServed] | None = None
    # built for a shadow candidate: its process runs at a lower CPU priority for good, so a
    # policy that routes clients to the version loads it again (a request pinned to it by
    # version is answered, at that priority)
    background: bool = False
    # loaded with trust (the endpoint's ``trust``, or a trusted key signed the package)
    trusted: bool = False
    labels: tuple[str, str] = field(init=False)  # (model name, version) as metric labels
    ref: str = field(init=False)  # NAME/VERSION, as traffic policies name it
    header: bytes = field(init=False)  # ``ref`` as the X-Model-Version header's value

    def __post_init__(self) -> None:
        self.labels = (self.model_name, str(self.version))
        self.ref = f"{self.model_name}/{self.version}"
        self.header = self.ref.encode("ascii")

    @property
    def ready(self) -> bool:
        """Takes requests: its inference process is up (not restarting) and its model is
        not stuck in a call past the deadline."""
        return (self.process is None or self.process.alive) and not self.batcher.wedged

    @property
    def depth(self) -> int:
        """Requests waiting in its batchers."""
        return self.batcher.depth + sum(b.depth for b in (self.raw, self.copies)
                                        if b is not None)

    async def drain(self) -> None:
        """Take no more requests; finish those admitted."""
        await self.batcher.close()
        for batcher in (self.raw, self.copies):
            if batcher is not None:
                await batcher.close()

    async def close(self) -> None:
        """Stop the model's process and release the model (after the batcher drained)."""
        if self.process is not None:
            await self.process.aclose()  # its last log entries are written first
        await asyncio.get_running_loop().run_in_executor(None, self.model.close)


class DeploymentBuilder:
    """Loads and warms deployments (in a thread: ``build`` blocks)."""

    def __init__(self, *, settings: Settings, metrics: ServingMetrics, log_root: Path,
                 flush_interval_s: float, executor: ModelThreads, request_log: RequestLog,
                 registry: Callable[[], Registry], signing: SigningPolicy) -> None:
        self.settings = settings
        self.metrics = metrics
        self.log_root = log_root
        self.flush_interval_s = flush_interval_s
        self.executor = executor
        self.request_log = request_log
        self.registry = registry
        self.signing = signing
        self.raw_answers = False  # inference processes take raw batches (runtimes.raw_child)
        self.output_secret = b""  # the key of the endpoints' output noise (DataPlane sets it)

    def output_spec(self, ep: EndpointConfig) -> dict[str, Any]:
        """What a raw batch's spec adds for ``ep``'s output policy (labels only, rounding,
        noise): nothing when it shows the model's outputs as they are."""
        policy = ep.output_policy
        if not policy.active:
            return {}
        spec: dict[str, Any] = {"outputs": policy.to_spec()}
        if policy.noise > 0:
            spec["secret"] = self.output_secret.hex()
        return spec

    def resolve(self, ep: EndpointConfig, source: str) -> tuple[Path, str, int]:
        """The package directory, model name and version of ``source`` (a path: what the
        endpoint serves it as, `EndpointConfig.served_as`)."""
        if is_model_uri(source):
            registry = self.registry()
            version = registry.get_version(source)
            return registry.fetch(version.uri), version.name, version.version
        name, number = ep.served_as(source)
        return Path(source), name, number

    def trust(self, ep: EndpointConfig, source: str, path: Path) -> bool:
        """Whether ``path`` loads with trust: the endpoint trusts its packages, or a trusted
        key signed this one. Refuses (`SignatureError`, naming the reason) what the signing
        policy does not allow. A trusted package from the registry is audited there, with
        what it was trusted by."""
        signer = self.signing.check(path)
        trust = ep.trust or signer is not None
        if trust:
            by = f"signature:{signer}" if signer is not None else "config:trust"
            log.info("endpoint %s: %s is trusted (%s)", ep.name, source, by)
            if is_model_uri(source):
                self.registry().record_trust(source, endpoint=ep.name, by=by)
        return trust

    def build(self, ep: EndpointConfig, source: str, *,
              background: bool = False) -> tuple[Deployment, float]:
        """Load + warm up ``source`` for endpoint ``ep``; returns it and the seconds taken.
        ``background``: for shadow copies only (see `Deployment.background`)."""
        started = time.perf_counter()
        path, name, version = self.resolve(ep, source)
        trust = self.trust(ep, source, path)
        labels = {"endpoint": ep.name, "model": name, "version": str(version)}
        batch_hist = self.metrics.batch_size.labels(**labels)
        model: VerifiedPackage
        process = None
        if ep.inference == "process":
            # the inference process verifies and loads the model files and warms up; here
            # only the manifest and the rest (signature, reference profile): one copy of
            # the model in memory, and its files are read once
            model = describe(path, runtime=ep.runtime, model_files=False)
            log = ChildLog(str(self.log_root), self.flush_interval_s, ep.name, name, version)
            process = InferenceProcess(path, trust=trust, runtime=ep.runtime,
                                       settings=self.settings, log=log,
                                       raw=self.raw_answers,
                                       nice=BACKGROUND_NICE if background else 0)
            concurrency = 1  # one batch at a time per process
            run: Callable[[list[Ticket]], Sequence[Share]] | None = None
            run_remote = functools.partial(run_batch_remote, process)
        else:
            loaded = model = load_path(path, trust=trust, runtime=ep.runtime,
                                       settings=self.settings)
            example = model.manifest.input_example
            if example is not None:
                loaded.predict(json.loads((path / example).read_text()))  # warm-up
            concurrency = ep.concurrency if loaded.runtime.capabilities.thread_safe else 1
            run, run_remote = functools.partial(run_batch, loaded), None
        target = LogTarget(ep.name, name, version, ep.log_sample_rate,
                           model.signature.class_labels, process)
        request_log = self.request_log
        batcher: AdaptiveBatcher[Ticket, Share] = AdaptiveBatcher(
            run, rows_of=ticket_rows, afn=run_remote,
            max_batch_size=ep.max_batch_size, max_wait_ms=ep.max_wait_ms,
            max_queue=ep.max_queue, concurrency=concurrency, executor=self.executor,
            on_batch=batch_hist.observe, deadline_s=ep.batch_deadline_s,
            on_results=functools.partial(request_log.batch, target))
        raw = copies = None
        if process is not None and process.raw:
            spec = {"model": name, "endpoint": ep.name, "version": version,
                    "max_rows": ep.max_batch_size, "unknown": ep.unknown_categories,
                    **self.output_spec(ep)}
            logged = functools.partial(request_log.raw_batch, target)
            # batches of requests (not rows: the process splits calls at max_batch_size rows)
            raw = AdaptiveBatcher(
                None, afn=functools.partial(run_raw_batch, process, spec, batch_hist.observe),
                max_batch_size=ep.max_batch_size, max_wait_ms=ep.max_wait_ms,
                max_queue=ep.max_queue, concurrency=1, deadline_s=ep.batch_deadline_s,
                on_results=logged)
            # copies nobody waits on: fewer, larger frames, no answer bodies back
            copies = AdaptiveBatcher(
                None, afn=functools.partial(run_raw_batch, process, {**spec, "bodies": False},
                                            batch_hist.observe),
                max_batch_size=COPY_BATCH * ep.max_batch_size, hold_ms=COPY_HOLD_MS,
                max_queue=ep.max_queue, concurrency=1, deadline_s=ep.batch_deadline_s,
                on_results=logged)
        return Deployment(model, name, version, batcher, process, raw, copies, background,
                          trust), \
            time.perf_counter() - started
