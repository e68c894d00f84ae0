"""Rollout state on ``/metrics``: each endpoint's traffic split as its route table has it
now, and the step of its running rollout.

``shipyard_traffic_weight{endpoint, version}`` is the share of requests (0 to 1) the policy
sends to each warm version: a canary's split, an A/B test's two arms, 1 for the live side
of a blue-green pair and 0 for the other, 1 for a shadow's primary and 0 for its candidate
(which only gets copies). ``shipyard_rollout_step{endpoint, kind}`` is the 0-based step of
the running rollout (a canary moves through its steps; other kinds stay at 0); absent when
none runs. The step comes from the registry, read by the policy watcher (off the event
loop), never by a scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shipyard.routing import Policy, Shadow, Single, StickyAB, Weighted
from shipyard.service.routes import Endpoint


@dataclass(frozen=True)
class RolloutStep:
    """Where an endpoint's running rollout is."""

    kind: str
    step: int


class RolloutState(Collector):
    """Traffic weights of ``endpoints`` and the steps ``steps()`` returns (by endpoint)."""

    names = frozenset({"shipyard_traffic_weight", "shipyard_rollout_step"})

    def __init__(self, endpoints: Iterable[Endpoint],
                 steps: Callable[[], Mapping[str, RolloutStep]]) -> None:
        self.endpoints = list(endpoints)
        self.steps = steps

    def collect(self) -> Iterator[GaugeMetricFamily]:
        weights = GaugeMetricFamily(
            "shipyard_traffic_weight", "Share of requests (0 to 1) the routing policy sends "
            "to each warm version.", labels=["endpoint", "version"])
        for endpoint in self.endpoints:
            table = endpoint.table
            if table is None:
                continue
            for uri, share in policy_weights(table.policy).items():
                deployment = table.deployments.get(uri)
                if deployment is not None:
                    weights.add_metric([endpoint.name, str(deployment.version)], share)
        yield weights
        step = GaugeMetricFamily(
            "shipyard_rollout_step", "0-based step of the endpoint's running rollout.",
            labels=["endpoint", "kind"])
        for name, where in sorted(self.steps().items()):
            step.add_metric([name, where.kind], where.step)
        yield step


def policy_weights(policy: Policy) -> dict[str, float]:
    """Each warm version of ``policy`` -> the share of requests it answers."""
    if isinstance(policy, Single):
        return {policy.version: 1.0}
    if isinstance(policy, Weighted):
        return {version: percent / 100 for version, percent in policy.splits}
    if isinstance(policy, StickyAB):
        return {policy.a: 1 - policy.split / 100, policy.b: policy.split / 100}
    if isinstance(policy, Shadow):
        return {policy.primary: 1.0, policy.candidate: 0.0}
    live = policy.live_version  # BlueGreen
    return {v: 1.0 if v == live else 0.0 for v in (policy.blue, policy.green)}
