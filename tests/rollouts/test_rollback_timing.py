"""``rollback`` takes effect on a running server within one poll interval: every request
sent one poll (plus a busy machine's margin) after ``rollback`` returned is answered by the
stable version, for a running canary and for a switched blue-green (both keep stable warm).
"""

from __future__ import annotations

import time

import numpy as np

from rollouts.conftest import MakeFleet
from rollouts.harness import ENDPOINT, Load, running_load, until
from shipyard.routing.plans import CanaryPlan

POLL = 0.3
MARGIN = 0.5  # the registry read and the swap on a busy machine
HELD = CanaryPlan(steps=(50.0, 100.0), interval_s=3600.0)  # the controller leaves it be


def rolled_back(load: Load, back: float) -> list[str]:
    """Roll back at ``back`` (time.time()); the versions of the answers sent from one poll
    and the margin after it, once 100 have come."""
    after = back + POLL + MARGIN
    until(lambda: sum(a.sent > after for a in load.answers) >= 100, 30.0,
          "too few answers after the rollback")
    return [str(a.version) for a in load.answers if a.sent > after]


def test_rollback_takes_effect_within_one_poll_interval(make_fleet: MakeFleet,
                                                        iris_x: np.ndarray) -> None:
    fleet = make_fleet(poll_interval_s=POLL)
    rollouts = fleet.registry.rollouts
    server = fleet.start("server-a")
    with running_load([server.base], iris_x, threads=4) as load:
        started = time.time()
        rollouts.start_canary(ENDPOINT, "iris/2", HELD, reason="e2e: canary")
        until(lambda: any(a.sent > started and a.version == "iris/2" for a in load.answers),
              30.0, "the canary never answered")
        load.more(50)
        rollouts.rollback(ENDPOINT, reason="e2e: back from the canary")
        back = time.time()
        late = rolled_back(load, back)
        assert set(late) == {"iris/1"}, late

        rollouts.start_bluegreen(ENDPOINT, "iris/2", reason="e2e: blue-green")
        load.more(50)
        switched = time.time()
        rollouts.switch(ENDPOINT, reason="e2e: to green")
        until(lambda: any(a.sent > switched and a.version == "iris/2" for a in load.answers),
              30.0, "green never answered")
        load.more(50)
        rollouts.rollback(ENDPOINT, reason="e2e: back from green")
        back = time.time()
        late = rolled_back(load, back)
        assert set(late) == {"iris/1"}, late
    assert {a.status for a in load.answers} == {200}
