"""A traffic split's versions in one inference process, fed by one batcher.

Under a weighted or sticky split each version has its own process and batchers; a request
routed by the policy goes instead to the endpoint's joint process, which holds every version
the split routes to (``runtimes/joint_batch.py``): a batch is one frame whatever the split,
as for a single version, where separate processes made twice the frames, each half as full
(bench/README.md, rollouts). Each version's rows are still logged as that version's (an entry
names its ``slot``), and each keeps its batch-size metric.

The versions' own deployments stay loaded beside it: they answer requests that name a
version, column batches and shadow copies, and the joint process is only an addition (its
cost: one more copy of each version's model in memory; ``joint_inference: false`` turns it
off per endpoint). A route table holds at most one; a swap keeps it while the split routes to
the same versions, and builds a new one when they change.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.batching import AdaptiveBatcher
from shipyard.runtimes.process import ChildLog, InferenceProcess
from shipyard.service.batch_calls import RawServed, RawTicket, run_joint_batch
from shipyard.service.config import EndpointConfig
from shipyard.service.deployment import Deployment, DeploymentBuilder
from shipyard.service.request_log import LogTarget


@dataclass
class JointRaw:
    """The joint process of a split over ``refs`` (``NAME/VERSION``, in slot order)."""

    refs: tuple[str, ...]
    process: InferenceProcess
    batcher: AdaptiveBatcher[RawTicket, RawServed]

    def slot(self, ref: str) -> int:
        return self.refs.index(ref)

    @property
    def ready(self) -> bool:
        return self.process.alive and not self.batcher.wedged

    @property
    def depth(self) -> int:
        return self.batcher.depth

    async def drain(self) -> None:
        await self.batcher.close()

    async def close(self) -> None:
        await self.process.aclose()


def joinable(ep: EndpointConfig, routed: Sequence[Deployment]) -> bool:
    """Whether a split over ``routed`` (the versions its requests may go to) gets a joint
    process: two or more, each answering raw requests in a process of its own at full
    priority (a shadow's background copy never joins)."""
    return ep.joint_inference and len(routed) > 1 and all(
        d.raw is not None and d.process is not None and not d.background for d in routed)


def build_joint(builder: DeploymentBuilder, ep: EndpointConfig, refs: Sequence[str],
                routed: Sequence[Deployment]) -> JointRaw:
    """Start and warm the joint process of ``routed`` (the deployments of the policy's
    versions ``refs``; blocks: run it off the event loop)."""
    logs = [ChildLog(str(builder.log_root), builder.flush_interval_s, ep.name, d.model_name,
                     d.version) for d in routed]
    paths = [d.process.path for d in routed if d.process is not None]
    # each version passed its own trust decision when it loaded alone (one that needs
    # trust and lacks it never loads), so trusting the process trusts none of them more
    process = InferenceProcess(paths[0], trust=any(d.trusted for d in routed),
                               runtime=ep.runtime,
                               settings=builder.settings, log=logs[0], raw=True,
                               more=list(zip(paths[1:], logs[1:], strict=True)))
    specs: list[dict[str, Any]] = [
        {"model": d.model_name, "endpoint": ep.name, "version": d.version,
         "max_rows": ep.max_batch_size, "unknown": ep.unknown_categories,
         **builder.output_spec(ep)} for d in routed]
    on_calls = [builder.metrics.batch_size.labels(
        endpoint=ep.name, model=d.model_name, version=str(d.version)).observe for d in routed]
    targets = [LogTarget(ep.name, d.model_name, d.version, ep.log_sample_rate,
                         d.model.signature.class_labels, process, slot)
               for slot, d in enumerate(routed)]
    request_log = builder.request_log

    def logged(tickets: list[RawTicket], answers: list[RawServed]) -> None:
        """Each version's answered requests, logged as that version's."""
        for slot, target in enumerate(targets):
            mine = [i for i, t in enumerate(tickets) if t.slot == slot]
            if mine:
                request_log.raw_batch(target, [tickets[i] for i in mine],
                                      [answers[i] for i in mine])

    batcher: AdaptiveBatcher[RawTicket, RawServed] = AdaptiveBatcher(
        None, afn=functools.partial(run_joint_batch, process, specs, on_calls),
        max_batch_size=ep.max_batch_size, max_wait_ms=ep.max_wait_ms,
        max_queue=ep.max_queue, concurrency=1, deadline_s=ep.batch_deadline_s,
        on_results=logged)
    return JointRaw(tuple(refs), process, batcher)
