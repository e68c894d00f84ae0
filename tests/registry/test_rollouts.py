"""Rollouts in the registry (``Registry.rollouts``), on both backends: every traffic change is
a policy revision written with the rollout's row, decision and audit record; one running
rollout per endpoint; canary steps, A/B, shadow, blue-green, promote, abort and rollback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry.helpers import MODEL, Packages, race
from shipyard.errors import ConflictError, NotFoundError, RegistryError
from shipyard.monitoring.ab_report import plan_sample
from shipyard.registry import Registry
from shipyard.registry.rollouts import Rollouts
from shipyard.registry.schema import rollouts
from shipyard.routing import BlueGreen, Shadow, Single, StickyAB, Weighted, policy_to_dict
from shipyard.routing.plans import ABPlan, CanaryPlan, ShadowPlan

V1, V2, V3 = f"{MODEL}/1", f"{MODEL}/2", f"{MODEL}/3"
T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.fixture
def three(reg: Registry, pkgs: Packages) -> Registry:
    reg.register(pkgs.base, alias="production")
    reg.register(pkgs.compatible, alias="candidate")
    reg.register(pkgs.compatible)
    return reg


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ro(three: Registry, clock: Clock) -> Rollouts:
    made = Rollouts(three, clock=clock)
    made.deploy("fraud", "models:/iris/1", reason="launch")
    return made


def actions(reg: Registry) -> list[str]:
    return [r.action for r in reg.audit() if r.action.startswith("rollout.")]


def test_registry_exposes_rollouts(three: Registry) -> None:
    assert isinstance(three.rollouts, Rollouts) and three.rollouts is three.rollouts
    assert three.rollouts.registry is three


def test_deploy_resolves_uris_and_is_audited(three: Registry) -> None:
    ro = three.rollouts
    first = ro.deploy("fraud", "models:/iris@candidate", reason="launch v2")
    assert (first.revision, first.policy) == (1, Single(V2))
    assert ro.deploy("fraud", "iris/3", reason="v3").policy == Single(V3)
    assert three.deployments.current("fraud") == (2, Single(V3))
    assert [h.reason for h in three.deployments.history("fraud")] == [
        "deploy: launch v2", "deploy: v3"]
    records = [r for r in three.audit() if r.action == "rollout.deploy"]
    assert [(r.model, r.version) for r in records] == [(MODEL, 2), (MODEL, 3)]
    assert records[1].before == {"endpoint": "fraud", "policy": policy_to_dict(Single(V2))}
    assert records[1].after["reason"] == "v3"
    with pytest.raises(RegistryError, match="names no version"):
        ro.deploy("fraud", "iris", reason="latest?")
    with pytest.raises(NotFoundError, match="no version 9"):
        ro.deploy("fraud", "iris/9", reason="nope")
    with pytest.raises(RegistryError, match="reason"):
        ro.deploy("fraud", V1, reason=" ")


def test_canary_steps_through_its_plan_then_promotes(ro: Rollouts, clock: Clock) -> None:
    reg = ro.registry
    plan = CanaryPlan(steps=(5, 20, 50, 100), alias="production", key="header:X-User-Id")
    rollout = ro.start_canary("fraud", "models:/iris@candidate", plan, reason="try v2")
    salt = f"rollout-{rollout.id}"
    assert (rollout.kind, rollout.state, rollout.stable, rollout.candidate) == (
        "canary", "running", V1, V2)
    assert (rollout.step, rollout.percent, rollout.plan, rollout.failures) == (0, 5, plan, 0)
    assert rollout.step_started_at == rollout.created_at == at(T0)
    assert rollout.policy_revision == 2
    assert reg.deployments.current("fraud") == (2, Weighted.canary(
        V1, V2, 5, salt=salt, key="header:X-User-Id"))
    assert [d.outcome for d in rollout.decisions] == ["start"]

    ro.record(rollout.id, outcome="fail", reason="p99 too high", numbers={"p99": 80.0},
              failures=1)
    assert ro.get(rollout.id).failures == 1
    for step, percent in enumerate((20, 50, 100), start=1):
        clock.now += 600
        moved = ro.advance(rollout.id, expected_step=step - 1,
                           decision={"outcome": "pass", "checks": [{"name": "traffic"}]})
        assert (moved.step, moved.percent, moved.failures) == (step, percent, 0)
        assert moved.step_started_at == at(clock.now)
        assert moved.policy_revision == 2 + step
        assert reg.deployments.current("fraud") == (2 + step, Weighted.canary(
            V1, V2, percent, salt=salt, key="header:X-User-Id"))  # the same salt throughout
        assert moved.decisions[-1].numbers == {"outcome": "pass",
                                               "checks": [{"name": "traffic"}]}
    with pytest.raises(ConflictError, match="at step 3, not 1"):  # a second controller
        ro.advance(rollout.id, expected_step=1, decision={})
    with pytest.raises(ConflictError, match="last step: promote"):
        ro.advance(rollout.id, expected_step=3, decision={})
    assert ro.get(rollout.id).step == 3

    clock.now += 600
    done = ro.promote("fraud", reason="all steps passed", actor_note="controller")
    assert (done.state, done.finished_at, done.reason) == ("promoted", at(clock.now),
                                                           "all steps passed")
    assert reg.deployments.current("fraud") == (6, Single(V2))
    assert reg.get_model(MODEL).aliases == {"production": 2, "candidate": 2}
    assert done.decisions[-1].actor == "tester (controller)"
    assert done.decisions[-1].numbers["alias"] == {"model": MODEL, "alias": "production",
                                                   "before": 1, "after": 2}
    assert ro.active("fraud") is None and ro.running() == []

    assert [d.outcome for d in done.decisions] == [
        "start", "fail", "advance", "advance", "advance", "promote"]
    assert [d.step for d in done.decisions] == [0, 0, 1, 2, 3, 3]
    assert [d.percent for d in done.decisions] == [5, 5, 20, 50, 100, 100]
    assert actions(reg) == ["rollout.deploy", "rollout.start", "rollout.advance",
                            "rollout.advance", "rollout.advance", "rollout.promote"]
    alias_moves = reg.audit(action="alias.set")
    assert alias_moves[-1].before == {"version": 1} and alias_moves[-1].after == {"version": 2}
    # every traffic change is a policy revision that says why
    reasons = [h.reason for h in reg.deployments.history("fraud")]
    assert reasons[1] == f"rollout {rollout.id} (canary) start: try v2"
    assert reasons[2] == f"rollout {rollout.id} step 2 (20%): step 1 of 4 passed: 20% to {V2}"
    assert reasons[-1] == f"rollout {rollout.id} promote {V2}: all steps passed"
    assert [r.after["policy_revision"] for r in reg.audit()
            if r.action.startswith("rollout.") and r.action != "rollout.deploy"] == [
        2, 3, 4, 5, 6]


def test_abort_returns_all_traffic_to_stable(ro: Rollouts, clock: Clock) -> None:
    rollout = ro.start_canary("fraud", V2, CanaryPlan(), reason="try")
    ro.advance(rollout.id, expected_step=0, decision={"reason": "healthy"})
    clock.now += 5
    aborted = ro.abort("fraud", reason="error rate 3% > 1%")
    assert (aborted.state, aborted.reason, aborted.finished_at) == (
        "aborted", "error rate 3% > 1%", at(T0 + 5))
    assert aborted.decisions[-1].outcome == "abort"
    assert aborted.decisions[1].reason == "healthy"
    assert ro.registry.deployments.current("fraud") == (4, Single(V1))
    assert ro.registry.deployments.history("fraud")[-1].reason == (
        f"rollout {rollout.id} abort to {V1}: error rate 3% > 1%")
    with pytest.raises(ConflictError, match="no running rollout"):
        ro.abort("fraud", reason="again")
    with pytest.raises(ConflictError, match="is aborted"):
        ro.advance(rollout.id, expected_step=1, decision={})
    with pytest.raises(ConflictError, match="is aborted: nothing to record"):
        ro.record(rollout.id, outcome="wait", reason="late", numbers={})
    assert ro.deploy("fraud", V3, reason="after the abort").revision == 5


def test_rollback_after_promote_goes_back_to_the_previous_stable_and_alias(
        ro: Rollouts) -> None:
    reg = ro.registry
    ro.start_canary("fraud", V2, CanaryPlan(steps=(100,), alias="production"), reason="v2")
    ro.promote("fraud", reason="good")
    assert reg.get_model(MODEL).aliases["production"] == 2
    back = ro.rollback("fraud", reason="complaints")
    assert (back.policy, back.reason) == (Single(V1), "rollback: complaints")
    assert reg.deployments.current("fraud") == (back.revision, Single(V1))
    assert reg.get_model(MODEL).aliases["production"] == 1
    record = reg.audit(action="rollout.rollback")[-1]
    assert record.after["version"] == V1 and record.after["alias"]["moved_back"] is True
    assert record.before["policy"] == policy_to_dict(Single(V2))
    promoted = ro.history("fraud")[0]
    assert promoted.state == "promoted"
    assert promoted.decisions[-1].outcome == "abort"
    assert promoted.decisions[-1].reason == "rolled back after promote: complaints"


def test_rollback_removes_an_alias_the_promote_created(ro: Rollouts) -> None:
    ro.start_canary("fraud", V3, CanaryPlan(steps=(100,), alias="champion"), reason="v3")
    ro.promote("fraud", reason="good")
    assert ro.registry.get_model(MODEL).aliases["champion"] == 3
    ro.rollback("fraud", reason="bad")
    assert "champion" not in ro.registry.get_model(MODEL).aliases
    assert ro.registry.deployments.current("fraud") == (4, Single(V1))


def test_rollbacks_step_back_one_deploy_at_a_time_never_forward(three: Registry) -> None:
    ro = three.rollouts
    for version in (V1, V2, V3):
        ro.deploy("fraud", version, reason=f"ship {version}")
    assert ro.rollback("fraud", reason="v3 is bad").policy == Single(V2)
    assert ro.rollback("fraud", reason="v2 is bad too").policy == Single(V1)
    # a third rollback must not go forward again to v2 or v3 (the versions rolled back from)
    with pytest.raises(ConflictError, match="no earlier version to roll back to"):
        ro.rollback("fraud", reason="again")
    assert three.deployments.current("fraud") == (5, Single(V1))
    ro.deploy("fraud", V3, reason="fixed v3")
    assert ro.rollback("fraud", reason="not fixed").policy == Single(V1)


def test_a_second_rollback_after_a_promote_does_not_bring_the_candidate_back(
        ro: Rollouts) -> None:
    ro.start_canary("fraud", V2, CanaryPlan(steps=(100,)), reason="v2")
    ro.promote("fraud", reason="good")
    assert ro.rollback("fraud", reason="complaints").policy == Single(V1)
    with pytest.raises(ConflictError, match="no earlier version"):
        ro.rollback("fraud", reason="pressed twice")
    assert ro.registry.deployments.current("fraud")[1] == Single(V1)


def test_rollback_with_a_running_rollout_aborts_it(ro: Rollouts) -> None:
    rollout = ro.start_shadow("fraud", V2, ShadowPlan(), reason="shadow")
    back = ro.rollback("fraud", reason="stop it")
    assert back.policy == Single(V1)
    done = ro.get(rollout.id)
    assert (done.state, done.reason, done.decisions[-1].outcome) == ("aborted", "stop it",
                                                                     "abort")
    assert actions(ro.registry)[-2:] == ["rollout.abort", "rollout.rollback"]


def test_rollback_needs_somewhere_to_go(three: Registry) -> None:
    with pytest.raises(NotFoundError, match="no traffic policy"):
        three.rollouts.rollback("fraud", reason="x")
    three.rollouts.deploy("fraud", V1, reason="launch")
    with pytest.raises(ConflictError, match="no earlier version to roll back to"):
        three.rollouts.rollback("fraud", reason="x")


def test_ab_test_promotes_its_winner(ro: Rollouts) -> None:
    plan = ABPlan(split=30, key="header:X-User-Id", mde=0.05)
    rollout = ro.start_ab("fraud", "models:/iris/1", "iris@candidate", plan, reason="ab")
    assert (rollout.kind, rollout.stable, rollout.candidate, rollout.percent) == (
        "ab", V1, V2, 30)
    assert ro.registry.deployments.current("fraud") == (2, StickyAB(
        V1, V2, 30, salt=f"rollout-{rollout.id}", key="header:X-User-Id"))  # type: ignore[arg-type]
    start = ro.get(rollout.id).decisions[0]
    planned = plan_sample(plan)  # the sample size is planned, and stored, before any data
    assert start.outcome == "start" and start.numbers["sample"]["n_a"] == planned.n_a > 0
    assert start.numbers["sample"]["n_b"] == planned.n_b
    verdict = ro.record(rollout.id, outcome="verdict", reason="not yet known",
                        numbers={"n": [120, 118], "p": float("nan")})
    assert verdict.numbers == {"n": [120, 118], "p": None}  # no NaN in JSON
    with pytest.raises(RegistryError, match=r"winner, 'a' .* or 'b'"):
        ro.promote("fraud", reason="which?")
    done = ro.promote("fraud", reason="b is better", winner="b")
    assert ro.registry.deployments.current("fraud") == (3, Single(V2))
    assert done.decisions[-1].numbers == {"version": V2}

    second = ro.start_ab("fraud", V2, V3, ABPlan(), reason="again")
    done = ro.promote("fraud", reason="a is better", winner="a")
    assert (done.id, ro.registry.deployments.current("fraud")) == (second.id, (5, Single(V2)))


def test_aborting_an_ab_test_returns_to_the_version_that_served_before(ro: Rollouts) -> None:
    """An A/B test of v2 against v3 on an endpoint that served v1: abort and rollback send
    all traffic back to v1 (neither ``a`` nor ``b`` ever served alone), said in the numbers."""
    reg = ro.registry
    rollout = ro.start_ab("fraud", V2, V3, ABPlan(), reason="v2 or v3?")
    aborted = ro.abort("fraud", reason="stop")
    assert reg.deployments.current("fraud") == (3, Single(V1))
    last = aborted.decisions[-1]
    assert (last.outcome, last.percent, last.numbers) == (
        "abort", 0.0, {"version": V1, "before_revision": 1})
    assert reg.deployments.history("fraud")[-1].reason == (
        f"rollout {rollout.id} abort to {V1}: stop")
    # rollback of a running test; its "before" is the revision the abort set (v1 again)
    ro.start_ab("fraud", V3, V2, ABPlan(), reason="again")
    back = ro.rollback("fraud", reason="no")
    assert (back.revision, back.policy) == (5, Single(V1))
    done = ro.history("fraud")[0]
    assert done.decisions[-1].numbers == {"version": V1, "before_revision": 3}
    assert reg.audit(action="rollout.rollback")[-1].after["version"] == V1
    # b was the version serving: aborting keeps it, all traffic (the candidate's 100%)
    ro.start_ab("fraud", V3, V1, ABPlan(), reason="v1 as b")
    done = ro.abort("fraud", reason="stop")
    assert reg.deployments.current("fraud") == (7, Single(V1))
    assert (done.decisions[-1].percent, done.decisions[-1].numbers["version"]) == (100.0, V1)


def test_aborting_rollouts_from_a_bluegreen_or_bare_endpoint(three: Registry) -> None:
    """The version before is the live one of a blue-green policy; an A/B test started on an
    endpoint without a policy falls back to its ``a``."""
    ro = three.rollouts
    ro.start_ab("bare", V2, V3, ABPlan(), reason="first ever policy")
    done = ro.abort("bare", reason="stop")
    assert three.deployments.current("bare") == (2, Single(V2))
    assert done.decisions[-1].numbers == {"version": V2, "before_revision": None}
    three.deployments.set_policy("bg", BlueGreen(V1, V2, "green"), reason="by hand")
    ro.start_ab("bg", V1, V3, ABPlan(), reason="test")
    ro.abort("bg", reason="stop")
    assert three.deployments.current("bg") == (3, Single(V2))
    ro.start_canary("bg", V3, CanaryPlan(), reason="canary from v2")
    ro.abort("bg", reason="stop")
    assert three.deployments.current("bg") == (5, Single(V2))


def test_shadow_copies_then_promotes_or_aborts(ro: Rollouts) -> None:
    rollout = ro.start_shadow("fraud", V2, ShadowPlan(percent=25), reason="shadow")
    assert ro.registry.deployments.current("fraud") == (2, Shadow(
        V1, V2, 25, salt=f"rollout-{rollout.id}"))
    observed = ro.record(rollout.id, outcome="observe", reason="agreement 97%",
                         numbers={"agreement": 0.97})
    assert (observed.step, observed.percent, observed.outcome) == (0, 25, "observe")
    with pytest.raises(RegistryError, match="only an A/B test is promoted with a winner"):
        ro.promote("fraud", reason="x", winner="b")
    ro.promote("fraud", reason="agrees")
    assert ro.registry.deployments.current("fraud") == (3, Single(V2))


@pytest.mark.parametrize("switches, live", [(1, V2), (2, V1)])
def test_bluegreen_switches_and_promote_keeps_the_live_one(
        ro: Rollouts, switches: int, live: str) -> None:
    rollout = ro.start_bluegreen("fraud", "iris/2", reason="bg")
    assert (rollout.kind, rollout.percent) == ("bluegreen", None)
    assert ro.registry.deployments.current("fraud") == (2, BlueGreen(V1, V2, "blue"))
    with pytest.raises(ConflictError, match="runs the bluegreen rollout"):
        ro.start_canary("fraud", V3, CanaryPlan(), reason="no")
    for i in range(switches):
        switched = ro.switch("fraud", reason=f"switch {i}")
        assert switched.decisions[-1].outcome == "switch"
    expected = BlueGreen(V1, V2, "green" if switches % 2 else "blue")
    assert ro.registry.deployments.current("fraud") == (2 + switches, expected)
    done = ro.promote("fraud", reason="keep the live one")
    assert ro.registry.deployments.current("fraud") == (3 + switches, Single(live))
    assert done.decisions[-1].numbers == {"version": live}
    with pytest.raises(ConflictError, match="no running rollout"):
        ro.switch("fraud", reason="late")


def test_a_canary_starts_from_a_bluegreen_policys_live_version(three: Registry) -> None:
    three.deployments.set_policy("fraud", BlueGreen(V1, V2, "green"), reason="by hand")
    rollout = three.rollouts.start_canary("fraud", V3, CanaryPlan(), reason="c")
    assert (rollout.stable, rollout.candidate) == (V2, V3)


def test_only_a_canary_switches_or_advances(ro: Rollouts) -> None:
    rollout = ro.start_shadow("fraud", V2, ShadowPlan(), reason="s")
    with pytest.raises(ConflictError, match="only a blue-green rollout switches"):
        ro.switch("fraud", reason="x")
    with pytest.raises(ConflictError, match="only a running canary advances"):
        ro.advance(rollout.id, expected_step=0, decision={})


def test_one_running_rollout_per_endpoint(ro: Rollouts, three: Registry) -> None:
    first = ro.start_canary("fraud", V2, CanaryPlan(), reason="first")
    message = f"runs the canary rollout {first.id} \\({V1} -> {V2}\\)"
    with pytest.raises(ConflictError, match=message):
        ro.start_shadow("fraud", V3, ShadowPlan(), reason="second")
    with pytest.raises(ConflictError, match=message):
        ro.deploy("fraud", V3, reason="by hand")
    ro.deploy("search", V1, reason="other endpoint")
    other = ro.start_bluegreen("search", V3, reason="independent")
    assert [r.id for r in ro.running()] == [first.id, other.id]
    assert ro.running()[0].decisions == []  # running() leaves the decisions out
    active = ro.active("fraud")
    assert active is not None and active.id == first.id and len(active.decisions) == 1


def test_starting_refuses_what_cannot_roll_out(three: Registry) -> None:
    ro = three.rollouts
    with pytest.raises(ConflictError, match="no traffic policy: deploy a version first"):
        ro.start_canary("fraud", V2, CanaryPlan(), reason="x")
    three.deployments.set_policy("fraud", Weighted.canary(V1, V2, 10), reason="by hand")
    with pytest.raises(ConflictError, match="splits its traffic"):
        ro.start_canary("fraud", V3, CanaryPlan(), reason="x")
    ro.deploy("fraud", V1, reason="launch")
    with pytest.raises(ConflictError, match="already the stable version"):
        ro.start_canary("fraud", "iris@production", CanaryPlan(), reason="x")
    with pytest.raises(RegistryError, match="needs a CanaryPlan, not ShadowPlan"):
        ro.start_canary("fraud", V2, ShadowPlan(), reason="x")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="'latest' is computed"):
        ro.start_canary("fraud", V2, CanaryPlan(alias="latest"), reason="x")
    three.archive(V3)
    with pytest.raises(ConflictError, match="iris/3 is archived"):
        ro.start_canary("fraud", V3, CanaryPlan(), reason="x")
    # nothing of a refused start was written: no rollout, decision or audit record
    assert ro.history("fraud") == [] and ro.running() == []
    assert "rollout.start" not in actions(three)
    assert three.deployments.current("fraud") == (2, Single(V1))


def test_advance_refuses_a_policy_changed_outside_the_rollout(ro: Rollouts) -> None:
    rollout = ro.start_canary("fraud", V2, CanaryPlan(), reason="c")
    ro.registry.deployments.set_policy("fraud", Single(V1), reason="by hand")
    with pytest.raises(ConflictError, match="at revision 3, not 2"):
        ro.advance(rollout.id, expected_step=0, decision={})
    assert ro.get(rollout.id).step == 0


def test_record_checks_its_arguments(ro: Rollouts) -> None:
    rollout = ro.start_canary("fraud", V2, CanaryPlan(), reason="c")
    with pytest.raises(RegistryError, match="not 'advance'"):
        ro.record(rollout.id, outcome="advance", reason="x", numbers={})
    with pytest.raises(RegistryError, match="failures must be"):
        ro.record(rollout.id, outcome="fail", reason="x", numbers={}, failures=-1)
    with pytest.raises(RegistryError, match="cannot store"):
        ro.record(rollout.id, outcome="wait", reason="x", numbers={"x": object()})
    with pytest.raises(NotFoundError, match="unknown rollout 999"):
        ro.record(999, outcome="wait", reason="x", numbers={})
    with pytest.raises(NotFoundError, match="unknown rollout 999"):
        ro.get(999)
    wait = ro.record(rollout.id, outcome="wait", reason="412 requests < 500", numbers={
        "requests": 412}, step=0, percent=5.0)
    assert wait.to_dict()["numbers"] == {"requests": 412}
    assert [d.outcome for d in ro.get(rollout.id).decisions] == ["start", "wait"]


def test_history_is_newest_first_with_decisions(ro: Rollouts, clock: Clock) -> None:
    first = ro.start_canary("fraud", V2, CanaryPlan(), reason="one")
    ro.abort("fraud", reason="no")
    clock.now += 60
    second = ro.start_shadow("fraud", V3, ShadowPlan(), reason="two")
    history = ro.history("fraud")
    assert [r.id for r in history] == [second.id, first.id]
    assert [[d.outcome for d in r.decisions] for r in history] == [["start"],
                                                                   ["start", "abort"]]
    assert [r.id for r in ro.history("fraud", limit=1)] == [second.id]
    doc = history[1].to_dict()
    assert doc["state"] == "aborted" and doc["decisions"][1]["reason"] == "no"
    assert doc["plan"] == CanaryPlan().to_dict() and doc["percent"] == 5
    with pytest.raises(RegistryError, match="limit"):
        ro.history("fraud", limit=0)
    assert ro.history("quiet") == []


def test_concurrent_starts_exactly_one_wins(backend: str, ro: Rollouts,
                                            tmp_path: Path) -> None:
    racers = 4

    def start(reg: Registry, i: int) -> str:
        reg.rollouts.start_canary("fraud", V2 if i % 2 else V3, CanaryPlan(),
                                  reason=f"racer {i}")
        return f"won:{i}"

    outcomes = race(backend, tmp_path, racers, start)
    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(winners) == 1 and outcomes.count("conflict") == racers - 1, outcomes
    running = ro.running()
    assert len(running) == 1 and running[0].created_by == f"racer-{winners[0][4:]}"
    assert ro.registry.deployments.current("fraud") == (2, Weighted.canary(
        V1, running[0].candidate, 5, salt=f"rollout-{running[0].id}"))


def test_the_database_refuses_a_second_running_rollout(ro: Rollouts) -> None:
    """The partial unique index: a racer that slipped past the check still cannot commit."""
    first = ro.start_canary("fraud", V2, CanaryPlan(), reason="c")
    with ro.registry.engine.connect() as conn:
        row = conn.execute(sa.select(rollouts).where(rollouts.c.id == first.id)).one()
    values = {k: v for k, v in row._mapping.items() if k != "id"}
    with pytest.raises(sa.exc.IntegrityError), ro.registry.engine.begin() as conn:
        conn.execute(sa.insert(rollouts).values(**values))
    with ro.registry.engine.begin() as conn:  # finished rollouts do not count
        conn.execute(sa.insert(rollouts).values(**{**values, "state": "aborted"}))
