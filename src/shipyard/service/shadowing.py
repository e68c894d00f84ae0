"""Shadow copies: a request routed by a shadow policy is also sent to the candidate version,
whose answer is logged (``shadow`` segments) and never sent to the client.

A copy is submitted after the primary request and never awaited: the copy's future only gets
a callback that counts how it ended. Nothing about the copy can slow or fail the primary: a
copy the candidate's batcher refuses (queue full, closed, stuck) is dropped at once, one
that fails or passes its deadline ends as failed; each is counted in
``shipyard_shadow_requests_total{endpoint, outcome}`` (answered | failed | dropped) and
nothing is logged per request.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter

from shipyard.batching import AdaptiveBatcher, BatchTimeoutError, QueueFullError
from shipyard.service.batch_calls import Arrival, RawServed
from shipyard.service.deployment import Deployment

T = TypeVar("T", bound=Arrival)
R = TypeVar("R")
OUTCOMES = ("answered", "failed", "dropped")

# on_failure(endpoint, deployment, ticket, status): a copy the candidate answered with an
# error (or none in time), with the HTTP status a client would have seen
FailureHook = Callable[[str, Deployment, Arrival, int], None]


def failure_status(exc: BaseException) -> int:
    """The status a client would have got for a request that ended with ``exc``."""
    if isinstance(exc, BatchTimeoutError):
        return 504
    if isinstance(exc, QueueFullError):
        return 503
    return 500


class Shadowing:
    """Sends shadow copies and counts how they end."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "shipyard_shadow_requests", "Copies of requests sent to a shadow version, by "
            "outcome (answered, failed, or dropped without being sent).",
            ["endpoint", "outcome"], registry=registry)
        self._counters: dict[tuple[str, str], Any] = {}
        self.on_failure: FailureHook | None = None

    def _count(self, endpoint: str, outcome: str) -> None:
        counter = self._counters.get((endpoint, outcome))
        if counter is None:
            counter = self._counters[endpoint, outcome] = self.requests.labels(
                endpoint=endpoint, outcome=outcome)
        counter.inc()

    def dropped(self, endpoint: str) -> None:
        """Count a copy that could not be sent."""
        self._count(endpoint, "dropped")

    def send(self, endpoint: str, deployment: Deployment, batcher: AdaptiveBatcher[T, R],
             ticket: T, timeout: float | None) -> None:
        """Submit ``ticket`` (a copy, ``ticket.shadow`` set) to the shadow ``deployment``'s
        ``batcher``; returns at once, never raises."""
        try:
            future = batcher.submit(ticket, timeout=timeout)
        except Exception:
            self.dropped(endpoint)
            return
        future.add_done_callback(functools.partial(self._done, endpoint, deployment, ticket))

    def _done(self, endpoint: str, deployment: Deployment, ticket: Arrival,
              future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            status = 500
        elif (exc := future.exception()) is not None:  # retrieved: never "unhandled"
            status = failure_status(exc)
        else:
            answer = future.result()
            status = answer.status if isinstance(answer, RawServed) else 200
        if status == 200:
            self._count(endpoint, "answered")
            return
        self._count(endpoint, "failed")
        if self.on_failure is not None:
            self.on_failure(endpoint, deployment, ticket, status)
