"""The rollout controller in real server processes: a server restarted mid-canary resumes at
the recorded step (the new process makes the next advance); two servers on one PostgreSQL
registry route each routing key to the same version, one controller advances each step
once, and when the lease holder is killed (SIGKILL) the other takes the rollout over."""

from __future__ import annotations

import signal
from collections import defaultdict

import numpy as np

from rollouts.conftest import MakeFleet
from rollouts.harness import (
    ENDPOINT,
    decisions,
    finished,
    reasons,
    routed_revisions,
    running_load,
    until,
)
from shipyard.registry import Leases, Rollout
from shipyard.routing import route
from shipyard.routing.plans import CanaryPlan

PLAN = CanaryPlan(steps=(30.0, 60.0, 100.0), interval_s=1.0, min_requests=5,
                  failures=3, max_p99_ratio=20.0)


def advances(outcomes: list[tuple[str, int, str]]) -> list[tuple[int, str]]:
    return [(step, actor) for outcome, step, actor in outcomes if outcome == "advance"]


def test_a_server_restarted_mid_canary_resumes_at_the_recorded_step(
        make_fleet: MakeFleet, iris_x: np.ndarray) -> None:
    fleet = make_fleet(poll_interval_s=0.3)
    reg, rollouts = fleet.registry, fleet.registry.rollouts
    first = fleet.start("server-a")
    with running_load([first.base], iris_x) as load:
        canary = rollouts.start_canary(ENDPOINT, "iris/2", PLAN, reason="e2e: v2")
        until(lambda: rollouts.get(canary.id).step >= 1, 30.0,
              lambda: f"the canary never advanced:\n{reasons(reg, canary.id)}")
    first.signal(signal.SIGTERM)
    assert first.wait() in (0, -signal.SIGTERM), first.output()
    stopped = rollouts.get(canary.id)
    before = decisions(reg, canary.id)
    assert stopped.state == "running" and stopped.step >= 1, before

    second = fleet.start("server-b")
    assert rollouts.get(canary.id).step == stopped.step  # the step did not go back
    with running_load([second.base], iris_x) as load:
        # the new process serves the recorded step's policy
        load.more(30)
        policy = reg.deployments.current(ENDPOINT)
        assert policy is not None and policy[0] == stopped.policy_revision
        steps: list[int] = []

        def ended() -> Rollout | None:
            steps.append(rollouts.get(canary.id).step)
            return finished(reg, canary.id)

        done = until(ended, 40.0, lambda: f"never finished:\n{reasons(reg, canary.id)}")
    assert done.state == "promoted", decisions(reg, canary.id)
    assert steps == sorted(steps) and steps[0] == stopped.step, steps
    after = decisions(reg, canary.id)[len(before):]
    assert {actor for _, _, actor in after} == {"server-b"}, after
    assert advances(after)[0] == (stopped.step + 1, "server-b"), after
    # each step advanced once, over both processes
    assert [s for s, _ in advances(before + after)] == list(range(1, len(PLAN.steps)))


def test_two_servers_on_postgres_one_controller_and_a_takeover(
        make_fleet: MakeFleet, postgres_url: str, iris_x: np.ndarray) -> None:
    # in-thread models: two servers' inference processes would double the processes
    fleet = make_fleet(postgres_url, poll_interval_s=0.3,
                       rollout_lease_s=5.0, inference="thread")
    reg, rollouts = fleet.registry, fleet.registry.rollouts
    servers = {name: fleet.start(name, wait=False) for name in ("server-a", "server-b")}
    for server in servers.values():
        server.wait_ready()
    by_pid = {s.pid: name for name, s in servers.items()}
    with running_load([s.base for s in servers.values()], iris_x, threads=6) as load:
        canary = rollouts.start_canary(ENDPOINT, "iris/2", PLAN, reason="e2e: v2")
        until(lambda: rollouts.get(canary.id).step >= 1, 30.0,
              lambda: f"the canary never advanced:\n{reasons(reg, canary.id)}")
        lease = Leases(reg).get(f"rollout:{ENDPOINT}")
        assert lease is not None
        holder = by_pid[int(lease.holder.split(":")[-2])]
        survivor = next(name for name in servers if name != holder)
        killed_at = len(decisions(reg, canary.id))
        load.bases = [servers[survivor].base]
        servers[holder].stop()  # SIGKILL to its process group
        done = until(lambda: finished(reg, canary.id), 40.0,
                     lambda: f"never finished:\n{reasons(reg, canary.id)}\n{fleet.output()}")
    assert done.state == "promoted", decisions(reg, canary.id)
    outcomes = decisions(reg, canary.id)
    # one controller: each step advanced exactly once; the survivor took over
    assert [s for s, _ in advances(outcomes)] == list(range(1, len(PLAN.steps))), outcomes
    assert {actor for _, _, actor in outcomes[:killed_at] if actor != "tester"} == {holder}
    taken = outcomes[killed_at:]
    assert taken and {actor for _, _, actor in taken} == {survivor}, taken
    assert any(o == "advance" for o, _, _ in taken) and taken[-1][0] == "promote", taken

    # sticky across servers: one (key, policy revision) -> one version, whichever answered
    servers[survivor].signal(signal.SIGTERM)
    servers[survivor].wait()
    revisions = routed_revisions(fleet.log_dir)
    policies = {r.revision: r.policy for r in reg.deployments.history(ENDPOINT)}
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    bases: dict[tuple[str, int], set[str]] = defaultdict(set)
    for a in load.answers:
        if a.status == 200 and a.request_id in revisions:
            pair = (a.key, revisions[a.request_id])
            seen[pair].add(str(a.version))
            bases[pair].add(a.base)
            assert a.version == route(policies[pair[1]], a.key).version, a
    both = [pair for pair in seen if len(bases[pair]) == 2]
    assert len(both) >= 50, len(both)
    assert all(len(seen[pair]) == 1 for pair in both)
    assert {v for pair in both for v in seen[pair]} == {"iris/1", "iris/2"}
