"""The rollout controller's A/B verdicts and shadow comparisons: one decision per interval,
with the numbers behind it, and never a traffic change."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.conftest import T0, Behaviour, Clock, Traffic
from shipyard.registry import Registry, Rollouts
from shipyard.routing.plans import ABPlan, ShadowPlan
from shipyard.service.config import ConfigError, ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.service.rollout_controller import RolloutController

INTERVAL = 60.0


def _setup(reg: Registry, tmp_path: Path) -> tuple[Clock, Rollouts, RolloutController, Traffic]:
    clock = Clock()
    rollouts = Rollouts(reg, clock=clock)
    rollouts.deploy("iris", "iris/1", reason="first version")
    controller = RolloutController(reg, tmp_path / "logs", holder="a", clock=clock)
    return clock, rollouts, controller, Traffic(tmp_path / "logs")


def test_an_ab_test_records_one_verdict_per_interval_and_never_promotes(
        reg: Registry, tmp_path: Path) -> None:
    clock, rollouts, controller, traffic = _setup(reg, tmp_path)
    plan = ABPlan(split=50.0, metric="accuracy", mde=0.1, interval_s=INTERVAL)
    rollout = rollouts.start_ab("iris", "iris/1", "iris/2", plan, reason="test v2")
    verdicts = []
    for look in range(3):
        start = T0 + look * INTERVAL
        traffic.write("iris/1", 400, start, start + INTERVAL, variant="a", labelled=1.0)
        traffic.write("iris/2", 400, start, start + INTERVAL, variant="b", labelled=1.0,
                      behaviour=Behaviour(accuracy=0.6))
        traffic.write("iris/2", 300, start, start + INTERVAL, variant="canary")  # not b
        clock.now = start + INTERVAL - 1
        assert controller.tick() == []  # the interval is not over
        clock.now = start + INTERVAL
        verdicts += controller.tick()
        assert controller.tick() == []  # one verdict per interval
    assert [d.outcome for d in verdicts] == ["verdict"] * 3
    last = verdicts[-1].numbers
    assert last["requests"] == {"a": 1200, "b": 1200}  # since the start, variants a/b only
    assert last["verdict"] == "a_better" and last["sample"]["n_a"] > 0
    assert verdicts[-1].reason.startswith("a_better")
    after = rollouts.get(rollout.id)
    assert after.state == "running" and after.policy_revision == rollout.policy_revision


def test_a_shadow_records_the_comparison_of_both_answers_each_interval(
        reg: Registry, tmp_path: Path) -> None:
    clock, rollouts, controller, traffic = _setup(reg, tmp_path)
    rollout = rollouts.start_shadow("iris", "iris/2", ShadowPlan(interval_s=INTERVAL),
                                    reason="watch v2")
    ids = traffic.write("iris/1", 600, T0, T0 + INTERVAL, variant="primary", labelled=0.5)
    traffic.write("iris/2", 500, T0, T0 + INTERVAL, variant="shadow", kind="shadow",
                  ids=ids[:500], behaviour=Behaviour(constant=1, latency_ms=30.0))
    clock.now = T0 + INTERVAL
    [observed] = controller.tick()
    assert observed.outcome == "observe"
    numbers = observed.numbers
    assert numbers["pairs"] == 500 and numbers["unpaired"] == 100
    assert 0.2 < numbers["agreement"]["rate"] < 0.5  # a constant against three classes
    assert numbers["latency_ms"]["p99_ratio"] > 2
    assert set(numbers["metrics"]) == {"primary", "shadow"}
    assert numbers["metrics"]["primary"]["accuracy"] > numbers["metrics"]["shadow"]["accuracy"]
    assert controller.tick() == []
    assert rollouts.get(rollout.id).state == "running"


@pytest.mark.parametrize("enabled", [True, False])
def test_the_data_plane_runs_a_controller_for_registry_endpoints_unless_turned_off(
        reg: Registry, tmp_path: Path, enabled: bool) -> None:
    config = ServeConfig.from_dict({
        "endpoints": [{"name": "iris", "model": "models:/iris@production"}],
        "log_dir": str(tmp_path / "logs"), "rollout_controller": enabled,
        "rollout_lease_s": 2.0})
    plane = DataPlane(config, registry=reg)
    plane.background.start_controller()
    try:
        assert (plane.controller is not None and plane.controller.running) is enabled
        if plane.controller is not None:  # the config's lease, renewed every period
            assert plane.controller.lease_ttl_s == 2.0
    finally:
        if plane.controller is not None:
            plane.controller.stop()
    assert plane.controller is None or not plane.controller.running


def test_rollout_controller_must_be_true_or_false() -> None:
    with pytest.raises(ConfigError, match="rollout_controller"):
        ServeConfig.from_dict({"endpoints": [{"model": "models:/iris/1"}],
                               "rollout_controller": "false"})


@pytest.mark.parametrize("lease", [0.0, -3.0, "30"])
def test_the_rollout_lease_is_a_positive_duration(lease: object) -> None:
    with pytest.raises(ConfigError, match="rollout_lease_s"):
        ServeConfig.from_dict({"endpoints": [{"model": "models:/iris/1"}],
                               "rollout_lease_s": lease})
