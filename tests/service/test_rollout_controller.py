"""The rollout controller on a real registry and real log segments, with a fake clock: it
promotes a healthy canary step by step, aborts unhealthy ones with the reason, waits on
too little traffic, and acts once per step with two controllers on one registry."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from registry.helpers import open_registry
from service.conftest import Behaviour, Clock, Traffic, register_both
from shipyard.errors import ShipyardError
from shipyard.registry import Registry, Rollout, Rollouts
from shipyard.routing import Policy, Single
from shipyard.routing.plans import CanaryPlan
from shipyard.service.rollout_controller import RolloutController, default_holder

PER_INTERVAL = 10000  # requests per interval, split by the step's percent
PLAN = CanaryPlan(steps=(10.0, 50.0, 100.0), interval_s=60.0, min_requests=50, failures=2,
                  alias="production")


class Canary:
    """One canary of iris/1 -> iris/2 with its traffic written interval by interval."""

    def __init__(self, reg: Registry, root: Path, plan: CanaryPlan = PLAN) -> None:
        self.reg, self.root, self.plan = reg, root, plan
        self.clock = Clock()
        self.rollouts = Rollouts(reg, clock=self.clock)
        self.traffic = Traffic(root)
        self.rollouts.deploy("iris", "iris/1", reason="first version")
        self.rollout = self.rollouts.start_canary("iris", "iris/2", plan, reason="try v2")

    def controller(self, holder: str = "a", **kw: Any) -> RolloutController:
        return RolloutController(self.reg, self.root, holder=holder, clock=self.clock, **kw)

    def interval(self, candidate: Behaviour | None = None, *, total: int = PER_INTERVAL,
                 labelled: float = 0.0, seconds: float | None = None) -> None:
        """Write one interval of traffic at the current step's split; move the clock."""
        active = self.rollouts.active("iris")
        percent = self.plan.steps[active.step] if active is not None else 0.0
        start, end = self.clock.now, self.clock.now + (seconds or self.plan.interval_s)
        on_candidate = round(total * percent / 100)
        self.traffic.write("iris/1", total - on_candidate, start, end, labelled=labelled)
        self.traffic.write("iris/2", on_candidate, start, end, behaviour=candidate,
                           variant="canary", labelled=labelled)
        self.clock.now = end

    def run(self, controller: RolloutController, candidate: Behaviour | None = None,
            rounds: int = 8, **kw: Any) -> Rollout:
        """Intervals and ticks until the rollout ends (or ``rounds`` intervals)."""
        for _ in range(rounds):
            if self.rollouts.active("iris") is None:
                break
            self.interval(candidate, **kw)
            controller.tick()
        return self.rollouts.get(self.rollout.id)

    def outcomes(self) -> list[tuple[str, int]]:
        return [(d.outcome, d.step) for d in self.rollouts.get(self.rollout.id).decisions
                if d.outcome != "start"]


def _serving(registry: Registry) -> Policy | None:
    current = registry.deployments.current("iris")
    return None if current is None else current[1]


@pytest.fixture
def canary(reg: Registry, tmp_path: Path) -> Canary:
    return Canary(reg, tmp_path / "logs")


def test_a_healthy_canary_promotes_through_every_step(canary: Canary) -> None:
    done = canary.run(canary.controller())
    assert done.state == "promoted", canary.outcomes()
    assert canary.outcomes() == [("advance", 1), ("advance", 2), ("pass", 2), ("promote", 2)]
    assert canary.reg.get_version("iris@production").version == 2
    assert _serving(canary.reg) == Single("iris/2")
    advance = next(d for d in done.decisions if d.outcome == "advance")
    assert {c["name"] for c in advance.numbers["checks"]} >= {"traffic", "error_rate",
                                                              "latency", "prediction_drift"}


@pytest.mark.parametrize(("behaviour", "check"), [
    (Behaviour(errors=0.1), "error_rate"),
    (Behaviour(latency_ms=40.0), "latency"),
    (Behaviour(constant=1), "prediction_drift"),
], ids=["errors", "latency", "constant"])
def test_an_unhealthy_candidate_is_aborted_with_the_reason(
        canary: Canary, behaviour: Behaviour, check: str) -> None:
    done = canary.run(canary.controller(), behaviour)
    assert done.state == "aborted", canary.outcomes()
    assert canary.outcomes() == [("fail", 0), ("fail", 0), ("abort", 0)]
    assert check in done.reason and "2 of 2" in done.reason
    fail = next(d for d in done.decisions if d.outcome == "fail")
    failed = {c["name"] for c in fail.numbers["checks"] if c["outcome"] == "fail"}
    assert check in failed
    assert _serving(canary.reg) == Single("iris/1")


def test_five_points_worse_accuracy_on_labelled_traffic_is_aborted(
        reg: Registry, tmp_path: Path) -> None:
    plan = CanaryPlan(steps=(50.0, 100.0), interval_s=60.0, min_requests=50, metric="accuracy",
                      tolerance=0.02)
    canary = Canary(reg, tmp_path / "logs", plan)
    done = canary.run(canary.controller(), Behaviour(accuracy=0.85), total=8000, labelled=1.0)
    assert done.state == "aborted", canary.outcomes()
    assert "quality" in done.reason


def test_too_little_traffic_waits_once_per_interval_and_never_passes(canary: Canary) -> None:
    controller = canary.controller()
    for _ in range(4):
        canary.interval(total=200)  # 20 candidate requests per interval, 50 needed
        controller.tick()
        canary.clock.now += 5
        assert controller.tick() == []  # within the interval: no second decision
    assert canary.outcomes() == [("wait", 0)] * 4
    assert canary.rollouts.get(canary.rollout.id).step == 0


def test_firing_alerts_for_the_candidate_fail_its_checks(canary: Canary) -> None:
    controller = canary.controller(alerts=lambda endpoint, version: (
        ["p99_latency_ms > 100"] if version == "iris/2" else []))
    done = canary.run(controller)
    assert done.state == "aborted" and "alerts" in done.reason


def test_two_controllers_advance_each_step_once(canary: Canary) -> None:
    first, second = canary.controller("a"), canary.controller("b")
    acted: dict[str, list[str]] = {"a": [], "b": []}
    for _ in range(6):
        if canary.rollouts.active("iris") is None:
            break
        canary.interval()
        for controller in (second, first, second, first):  # alternate within the interval
            acted[controller.holder] += [d.outcome for d in controller.tick()]
            canary.clock.now += 1
    assert canary.outcomes() == [("advance", 1), ("advance", 2), ("pass", 2), ("promote", 2)]
    assert len(acted["a"]) + len(acted["b"]) == 4
    assert not (acted["a"] and acted["b"])  # one holder did everything


def test_a_stale_controller_past_the_lease_conflicts_instead_of_advancing_twice(
        canary: Canary, caplog: pytest.LogCaptureFixture) -> None:
    first, second = canary.controller("a"), canary.controller("b")
    canary.interval()
    # what the second read before the first advanced
    stale, stale_full = canary.rollouts.running(), canary.rollouts.get(canary.rollout.id)
    assert [d.outcome for d in first.tick()] == ["advance"]
    canary.clock.now += first.lease_ttl_s + 1  # the first's lease expires
    second.rollouts.running = lambda: stale  # type: ignore[method-assign]
    second.rollouts.get = lambda _id: stale_full  # type: ignore[method-assign]
    with caplog.at_level(logging.DEBUG, "shipyard.service.rollout_controller"):
        assert second.tick() == []
    assert canary.outcomes() == [("advance", 1)]
    assert second.failures == 0 and "rollout" in caplog.text


def test_when_the_holder_stops_renewing_another_takes_over(canary: Canary) -> None:
    first, second = canary.controller("a"), canary.controller("b")
    canary.interval()
    assert [d.outcome for d in first.tick()] == ["advance"]
    canary.interval(seconds=45.0)
    assert first.tick() == []  # renews its lease until 45 + 30 s into the step
    canary.interval(seconds=15.0)  # the step is due, but the first still holds the lease
    assert second.tick() == []
    canary.clock.now += 16.0  # the first died 31 s ago: its lease has expired
    assert [d.outcome for d in second.tick()] == ["advance"]
    assert canary.outcomes() == [("advance", 1), ("advance", 2)]
    assert first.tick() == []  # back from the dead: the lease is the second's now


def test_a_fresh_controller_resumes_at_the_recorded_step(canary: Canary) -> None:
    first = canary.controller("a")
    canary.run(first, rounds=1)
    first.stop()  # a server stopping gives its leases back
    assert canary.rollouts.get(canary.rollout.id).step == 1
    restarted = canary.controller(default_holder())
    done = canary.run(restarted)
    assert done.state == "promoted"
    assert canary.outcomes() == [("advance", 1), ("advance", 2), ("pass", 2), ("promote", 2)]


def test_the_thread_ticks_survives_a_failing_tick_and_stops_promptly(
        canary: Canary) -> None:
    controller = canary.controller(lease_ttl_s=3.0)
    calls = {"n": 0}
    real = controller.rollouts.running

    def flaky() -> list[Rollout]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the database went away")
        return real()

    controller.rollouts.running = flaky  # type: ignore[method-assign]
    controller.start(period_s=0.01)
    deadline = time.monotonic() + 10
    while controller.ticks < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert controller.ticks >= 3 and controller.running
    began = time.monotonic()
    controller.stop()
    assert time.monotonic() - began < 2 and not controller.running
    # its lease was given back: another holder takes it at once
    other = canary.controller("b")
    assert other.leases.acquire("rollout:iris", "b", 30.0, now=canary.clock()) is not None


def test_a_period_longer_than_a_third_of_the_lease_is_refused(canary: Canary) -> None:
    with pytest.raises(ShipyardError, match="lease"):
        canary.controller(lease_ttl_s=3.0).start(period_s=2.0)


def test_two_controllers_on_postgresql_advance_each_step_once(
        postgres_url: str, tmp_path: Path, iris_packages: tuple[Any, Any]) -> None:
    registries = [open_registry(postgres_url, tmp_path / name) for name in ("a", "b")]
    try:
        register_both(registries[0], iris_packages)
        canary = Canary(registries[0], tmp_path / "logs")
        first = canary.controller("a")
        second = RolloutController(registries[1], canary.root, holder="b", clock=canary.clock)
        for _ in range(6):
            if canary.rollouts.active("iris") is None:
                break
            canary.interval()
            second.tick()
            first.tick()
        assert canary.outcomes() == [("advance", 1), ("advance", 2), ("pass", 2), ("promote", 2)]
    finally:
        for registry in registries:
            registry.close()
