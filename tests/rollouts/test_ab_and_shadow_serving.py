"""A/B and shadow through a real server: an A/B test started with ``rollouts.start_ab`` keeps
each of 10,000 routing keys on one variant and splits them within 2 points of the target;
a shadow started with ``rollouts.start_shadow`` never changes a primary answer (byte-equal
with no shadow), and a shadow version that hangs or crashes costs the primary no error and
no wait."""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest

import shipyard
from rollouts.conftest import MakeFleet
from rollouts.harness import ENDPOINT, Answer, post, until, wait_serving
from serving.helpers import FEATURES, metric
from shipyard.registry import Registry
from shipyard.routing import route
from shipyard.routing.plans import ABPlan, ShadowPlan

KEYS = 10_000
SHADOW_TIMEOUT_S = 3.0  # the endpoint's deadline: a hung shadow copy ends there


def send_all(base: str, rows: np.ndarray, keys: list[str], threads: int = 8) -> list[Answer]:
    """One request per key (in that order, ``threads`` at a time)."""
    local: dict[int, httpx.Client] = {}

    def one(item: tuple[int, str]) -> Answer:
        i, key = item
        client = local.get(i % threads)
        if client is None:
            client = local[i % threads] = httpx.Client(timeout=30)
        return post(client, base, rows, key, f"{key}-{i}")

    chunks = [[(i, k) for i, k in enumerate(keys) if i % threads == t] for t in range(threads)]
    try:
        with ThreadPoolExecutor(threads) as pool:
            return [a for chunk in pool.map(lambda c: [one(x) for x in c], chunks) for a in chunk]
    finally:
        for client in local.values():
            client.close()


@pytest.mark.parametrize("split", [50.0, 80.0])
def test_ab_keys_stay_on_their_variant_and_split_as_planned(
        make_fleet: MakeFleet, iris_x: np.ndarray, split: float) -> None:
    fleet = make_fleet(inference="thread")
    server = fleet.start("server-a")
    rollout = fleet.registry.rollouts.start_ab(
        ENDPOINT, "iris/1", "iris/2", ABPlan(split=split, interval_s=3600.0),
        reason=f"e2e: a/b {split:g}")
    policy = fleet.registry.deployments.current(ENDPOINT)
    assert policy is not None
    rows = iris_x[:1]
    probe = next(k for k in (f"probe-{i}" for i in range(100))
                 if route(policy[1], k).version == "iris/2")
    with httpx.Client(timeout=30) as client:  # the server has loaded b and serves the test
        until(lambda: post(client, server.base, rows, probe, probe).version == "iris/2", 30.0,
              "the A/B test never served")
    keys = [f"user-{i}" for i in range(KEYS)]
    rng = np.random.default_rng(0)
    answers = send_all(server.base, rows, keys) + send_all(
        server.base, rows, [keys[i] for i in rng.permutation(KEYS)])
    assert {a.status for a in answers} == {200}
    versions: dict[str, set[str]] = defaultdict(set)
    for a in answers:
        assert a.header == a.version, a
        versions[a.key].add(str(a.version))
    assert len(versions) == KEYS and all(len(v) == 1 for v in versions.values())
    assert all(v == {route(policy[1], k).version} for k, v in versions.items())
    on_b = sum(v == {"iris/2"} for v in versions.values()) / KEYS * 100
    assert abs(on_b - split) <= 2.0, on_b
    assert fleet.registry.rollouts.get(rollout.id).state == "running"


def shadow_candidates(fleet_registry: Registry, iris_x: np.ndarray) -> None:
    """``sleepy/1`` (hangs) and ``broken/1`` (raises) on rows with petal_width >= 1."""
    frame = pd.DataFrame(iris_x[:5], columns=FEATURES)
    for name, cls in (("sleepy", "Sleeps"), ("broken", "Raises")):
        fleet_registry.register(shipyard.package(f"serving.shadow_models:{cls}", frame,
                                                 name=name))


def test_a_shadow_never_changes_slows_or_fails_the_primary(make_fleet: MakeFleet,
                                                          iris_x: np.ndarray) -> None:
    fleet = make_fleet(timeout_s=SHADOW_TIMEOUT_S)
    reg, rollouts = fleet.registry, fleet.registry.rollouts
    shadow_candidates(reg, iris_x)
    server = fleet.start("server-a")
    # versicolor and virginica rows: every one triggers the misbehaving shadows
    requests = [(f"r{i}", iris_x[50 + i:51 + i + i % 3]) for i in range(40)]

    def send(client: httpx.Client) -> tuple[list[tuple[int, bytes, str | None]], list[float]]:
        out, took = [], []
        for rid, rows in requests:
            a = post(client, server.base, rows, f"k{rid}", rid)
            out.append((a.status, a.body, a.header))
            took.append(a.received - a.sent)
        return out, took

    answers, latencies = {}, {}
    with httpx.Client(timeout=30) as client:
        answers["off"], _ = send(client)
        for candidate in ("iris/2", "broken/1", "sleepy/1"):
            started = rollouts.start_shadow(ENDPOINT, candidate, ShadowPlan(interval_s=3600.0),
                                            reason=f"e2e: shadow {candidate}")
            wait_serving(fleet, server.base, started.policy_revision, iris_x)
            answers[candidate], latencies[candidate] = send(client)
            done = rollouts.abort(ENDPOINT, reason="e2e: next shadow")
            wait_serving(fleet, server.base, done.policy_revision, iris_x)
        time.sleep(SHADOW_TIMEOUT_S)  # the hung copies end at their deadline
        text = client.get(f"{server.base}/metrics").text
    assert {(s, h) for s, _, h in answers["off"]} == {(200, "iris/1")}
    for candidate in ("iris/2", "broken/1", "sleepy/1"):
        assert answers[candidate] == answers["off"], candidate  # byte for byte
        # a primary that waited for its copy would take the shadow's deadline (3 s)
        assert max(latencies[candidate]) < SHADOW_TIMEOUT_S - 0.5, latencies[candidate]
    failed = metric(text, "shipyard_shadow_requests_total", outcome="failed")
    dropped = metric(text, "shipyard_shadow_requests_total", outcome="dropped")
    assert failed >= len(requests) and failed + dropped >= 2 * len(requests), text
