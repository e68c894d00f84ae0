"""``rollback`` takes effect on a running server within one poll interval: every request
sent one poll (plus a busy machine's margin) after ``rollback`` returned is answered by the
stable version, for a running canary and for a switched blue-green (both keep stable warm),
and after a promote, whose policy no longer keeps the old version warm: the server keeps it
loaded (``retain_previous_s``), so the rollback loads nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import numpy as np

from rollouts.conftest import MakeFleet
from rollouts.harness import ENDPOINT, Load, running_load, until
from serving.helpers import metric
from shipyard.routing.plans import CanaryPlan

POLL = 0.3
MARGIN = 0.5  # the registry read and the swap on a busy machine
HELD = CanaryPlan(steps=(50.0, 100.0), interval_s=3600.0)  # the controller leaves it be


def rolled_back(load: Load, back: float) -> list[str]:
    """Roll back (or promote) at ``back`` (time.time()); the versions of the answers sent
    from one poll and the margin after it, once 100 have come."""
    after = back + POLL + MARGIN
    until(lambda: sum(a.sent > after for a in load.answers) >= 100, 30.0,
          "too few answers after the rollback")
    return [str(a.version) for a in load.answers if a.sent > after]


def answered_by(load: Load, version: str, since: float, what: str) -> None:
    """Wait for an answer from ``version`` to a request sent after ``since``, then 50 more."""
    until(lambda: any(a.sent > since and a.version == version for a in load.answers),
          30.0, f"{what} never answered")
    load.more(50)


def only_after(load: Load, change: Callable[[], object], version: str) -> None:
    """Make ``change`` (a rollback, a promote): every answer to a request sent one poll and
    the margin after it returned comes from ``version``."""
    change()
    late = rolled_back(load, time.time())
    assert set(late) == {version}, late


def test_rollback_takes_effect_within_one_poll_interval(make_fleet: MakeFleet,
                                                        iris_x: np.ndarray) -> None:
    fleet = make_fleet(poll_interval_s=POLL)
    rollouts = fleet.registry.rollouts
    server = fleet.start("server-a")
    with running_load([server.base], iris_x, threads=4) as load:
        started = time.time()
        rollouts.start_canary(ENDPOINT, "iris/2", HELD, reason="e2e: canary")
        answered_by(load, "iris/2", started, "the canary")
        only_after(load, lambda: rollouts.rollback(ENDPOINT, reason="e2e: back from the "
                                                   "canary"), "iris/1")

        rollouts.start_bluegreen(ENDPOINT, "iris/2", reason="e2e: blue-green")
        load.more(50)
        switched = time.time()
        rollouts.switch(ENDPOINT, reason="e2e: to green")
        answered_by(load, "iris/2", switched, "green")
        only_after(load, lambda: rollouts.rollback(ENDPOINT, reason="e2e: back from green"),
                   "iris/1")

        # a promote: Single(iris/2) drops iris/1 from the warm set; the rollback after it
        # is answered by iris/1 within a poll all the same (it was kept loaded)
        started = time.time()
        rollouts.start_canary(ENDPOINT, "iris/2", HELD, reason="e2e: canary to promote")
        answered_by(load, "iris/2", started, "the second canary")
        only_after(load, lambda: rollouts.promote(ENDPOINT, reason="e2e: promote"), "iris/2")
        only_after(load, lambda: rollouts.rollback(ENDPOINT, reason="e2e: back from the "
                                                   "promote"), "iris/1")
    assert {a.status for a in load.answers} == {200}
    # iris/2, left out by the rollback, is kept loaded in turn
    scraped = httpx.get(f"{server.base}/metrics", timeout=30).text
    assert metric(scraped, "shipyard_retained_versions", endpoint=ENDPOINT) == 1
