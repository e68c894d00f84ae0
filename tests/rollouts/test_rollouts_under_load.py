"""A real ``shipyard serve`` process under continuous load on 127.0.0.1 while its endpoint
goes through a whole canary (promoted by the server's own controller), a canary aborted by
hand, a blue-green start and switch, and a rollback: no request fails, and every answer
comes from the version that a policy in force at that time gives its routing key.

"In force at that time": the prediction log names the policy revision that routed each
request; that revision must have been set before the answer and not replaced more than one
poll interval (plus a margin for a busy machine) before the request was sent, or, when the
revision replacing it brought a version not loaded yet, more than a load's time.
"""

from __future__ import annotations

import signal
import time

import numpy as np

from rollouts.conftest import MakeFleet
from rollouts.harness import (
    ENDPOINT,
    Timeline,
    decisions,
    finished,
    routed_revisions,
    running_load,
    until,
)
from shipyard.routing.plans import CanaryPlan

POLL = 0.3
MARGIN = 0.7  # a busy machine's slack on top of a poll (the registry read, the swap)
LOAD_S = 30.0  # a new version's inference process starts and warms within this
PLAN = CanaryPlan(steps=(20.0, 50.0, 100.0), interval_s=1.0, min_requests=5, failures=3,
                  max_p99_ratio=20.0, alias="production")


def test_canary_abort_bluegreen_and_rollback_under_load_fail_no_request(
        make_fleet: MakeFleet, iris_x: np.ndarray) -> None:
    fleet = make_fleet(poll_interval_s=POLL)
    reg, rollouts = fleet.registry, fleet.registry.rollouts
    server = fleet.start("server-a")
    with running_load([server.base], iris_x, threads=4) as load:
        load.more(50)
        canary = rollouts.start_canary(ENDPOINT, "iris/2", PLAN, reason="e2e: v2")
        done = until(lambda: finished(reg, canary.id), 50.0,
                     lambda: f"the canary never finished: {decisions(reg, canary.id)}")
        assert done.state == "promoted", decisions(reg, canary.id)
        assert reg.get_version("models:/iris@production").version == 2
        load.more(50)

        aborted = rollouts.start_canary(ENDPOINT, "iris/3", PLAN, reason="e2e: v3")
        until(lambda: rollouts.get(aborted.id).step >= 1, 30.0,
              lambda: f"the second canary never advanced: {decisions(reg, aborted.id)}")
        rollouts.abort(ENDPOINT, reason="e2e: by hand")
        load.more(50)

        started = time.time()
        rollouts.start_bluegreen(ENDPOINT, "iris/3", reason="e2e: blue-green")
        # blue answers under the blue-green policy once a poll has passed (before it, the
        # aborted canary's policy may still route; a switch within that poll skips it)
        until(lambda: any(a.sent > started + POLL + MARGIN for a in load.answers), 10.0,
              "no answer after the blue-green started")
        switched = time.time()
        rollouts.switch(ENDPOINT, reason="e2e: to green")
        # green, and only green, answers once a poll has passed: not the canary's iris/3
        until(lambda: any(a.sent > switched + POLL + MARGIN for a in load.answers), LOAD_S,
              "no answer after the switch")
        green = [a for a in load.answers if a.sent > switched + POLL + MARGIN]
        assert {a.version for a in green} == {"iris/3"}, "green never answered alone"
        load.more(50)
        rolled_back = time.time()
        rollouts.rollback(ENDPOINT, reason="e2e: back")
        until(lambda: any(a.sent > rolled_back + POLL + MARGIN for a in load.answers), 10.0,
              "no answer after the rollback")
        load.more(50)
    answers = load.answers
    server.signal(signal.SIGTERM)  # its log flushed whole
    assert server.wait() in (0, -signal.SIGTERM), server.output()

    timeline = Timeline(reg)
    problems = timeline.problems(answers, routed_revisions(fleet.log_dir), warm_s=POLL + MARGIN,
                                 load_s=LOAD_S)
    assert not problems, f"{len(problems)} of {len(answers)}:\n" + "\n".join(problems[:10])
    # the rollback ended the blue-green: the stable version answers, within a poll
    late = [a for a in answers if a.sent > rolled_back + POLL + MARGIN]
    assert late and {a.version for a in late} == {"iris/2"}
    # every policy served somewhere: each answered at least once with its revision
    served = set(routed_revisions(fleet.log_dir).values())
    kinds = [timeline.policies[r].kind for r in sorted(served)]
    assert {"weighted", "blue_green", "single"} <= set(kinds), kinds
    outcomes = [o for o, _, _ in decisions(reg, canary.id)]
    assert outcomes.count("advance") == 2 and outcomes[-1] == "promote", outcomes
    assert [o for o, _, _ in decisions(reg, aborted.id)][-1] == "abort"
