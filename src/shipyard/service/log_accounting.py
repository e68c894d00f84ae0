"""The prediction log's counters and flushes across a data plane's writers: the server's own
(feedback, and the rows of in-thread models) and every inference process's, whether it
serves a route table, a joint split, is retained after a swap, or was replaced (its counters
never step back)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from shipyard.runtimes.process import InferenceProcess
from shipyard.service.deployment import Deployment
from shipyard.service.joint import JointRaw
from shipyard.service.routes import Endpoint
from shipyard.service.swapping import Swapper
from shipyard.stores.predictions import LogStats, PredictionLog


def deployments(ep: Endpoint) -> Iterator[Deployment]:
    """The deployments of the endpoint's route table."""
    table = ep.table
    return iter(()) if table is None else iter(table.deployments.values())


def joint(ep: Endpoint) -> tuple[JointRaw, ...]:
    """The route table's joint process, if it has one."""
    table = ep.table
    return () if table is None or table.joint is None else (table.joint,)


def live_processes(endpoints: Iterable[Endpoint], swapper: Swapper) -> list[InferenceProcess]:
    """Every inference process serving or retained (loaded, not routed to)."""
    out = []
    for ep in endpoints:
        out += [d.process for d in (*deployments(ep), *swapper.kept(ep.name))
                if d.process is not None]
        out += [j.process for j in joint(ep)]
    return out


def log_stats(log: PredictionLog, endpoints: Iterable[Endpoint], swapper: Swapper) -> LogStats:
    """The log's counters: this process's writer plus every inference process's, replaced
    ones included."""
    parts = [log.stats, swapper.retired_log_stats]
    parts += [p.total_log_stats for p in swapper.retiring]  # stopping: counted till stopped
    parts += [p.total_log_stats for p in live_processes(endpoints, swapper)]
    return LogStats.total(parts)


async def flush_processes(endpoints: Iterable[Endpoint], swapper: Swapper) -> None:
    """Have every live inference process write its buffered rows now."""
    await asyncio.gather(*(p.flush_log() for p in live_processes(endpoints, swapper)))
