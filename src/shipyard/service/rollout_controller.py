"""The rollout controller: moves each running rollout along, from the registry's state and
the prediction log's observations, and writes what it decided back into the registry.

    controller = RolloutController(registry, log_dir, holder=default_holder())
    controller.start(period_s=5.0)   # in the server's startup (a daemon thread)
    controller.stop()                # in its shutdown: returns promptly, leases released
    controller.tick()                # one pass over the running rollouts (tests call it)

Per running rollout and tick, the controller first holds the lease ``rollout:<endpoint>``
in the registry (acquired, or renewed when already held), so with several servers on one
registry exactly one acts on a rollout; a rollout whose lease another holder has is
skipped, and when that holder stops renewing its lease expires and another takes over.
Then, by kind:

- canary: once the step has run ``interval_s``, its traffic over [step start, now) is
  analysed (``monitoring.canary.analyse_canary``; on the 100% step, where stable has no
  traffic, against stable's traffic of the step before): pass advances to the next step (the
  last step promotes: alias moved); fail counts a failure and, at ``failures``, aborts (traffic
  back to stable) with the failing checks as the reason; wait (too little traffic, labels
  not in yet) records 'wait'. A step is checked at most once per interval, so a check
  that fails or waits is retried one interval later over the step's growing traffic.
  The advance names the step it read (``expected_step``): of two controllers that both
  got past the lease (a lease that expired mid-tick), one advances, the other gets a
  ``ConflictError`` and moves on.
- ab: a 'verdict' every interval over everything since the rollout started (keyed
  requests only), against the sample planned up front; a verdict never promotes.
- shadow: an 'observe' every interval, the primary's and the shadow's answers to the same
  requests side by side (``monitoring.shadow.shadow_report``).
- bluegreen: nothing automatic (``switch`` and ``promote`` are people's decisions).

Time is the injectable ``clock`` (the registry's rollout writes use it too). Everything a
decision rests on is stored with it (``numbers``): every check with its figures.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.errors import ConflictError, ShipyardError
from shipyard.monitoring.canary import analyse_ab, analyse_canary, plan_sample
from shipyard.monitoring.experiments import SamplePlan
from shipyard.monitoring.shadow import shadow_report
from shipyard.registry import Lease, Leases, Registry, Rollout, RolloutDecision, Rollouts
from shipyard.routing.plans import ABPlan, CanaryPlan, ShadowPlan
from shipyard.service.monitor import firing_alerts
from shipyard.service.monitor_history import MonitorHistory
from shipyard.service.rollout_traffic import traffic
from shipyard.service.shadow_pairs import shadow_pairs
from shipyard.stores.log_location import log_root as resolve_log_root

log = logging.getLogger(__name__)
Alerts = Callable[[str, str], Sequence[str]]
"""``(endpoint, version) -> names of the monitoring alerts firing for that version``."""
MAX_REASON = 2000


def default_holder() -> str:
    """This process's lease-holder id: ``host:pid:random`` (random: a restarted process with
    a recycled pid is a different holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _text(reason: str) -> str:
    """A reason as the registry stores it (at most ``MAX_REASON`` characters)."""
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON - 1] + "…"


def _sample(doc: dict[str, Any]) -> SamplePlan:
    """The planned sample a 'start' decision stored (``SamplePlan.to_dict``)."""
    try:
        return SamplePlan(**{f.name: doc[f.name] for f in dataclasses.fields(SamplePlan)})
    except (KeyError, TypeError) as exc:
        raise ShipyardError(f"the A/B test's stored sample plan is incomplete: {exc}") from None


class RolloutController:
    """Acts on the registry's running rollouts; one ``tick`` per period in a thread."""

    def __init__(self, registry: Registry, log_root: str | Path, *, holder: str,
                 clock: Callable[[], float] = time.time, lease_ttl_s: float = 30.0,
                 alerts: Alerts | None = None) -> None:
        if not lease_ttl_s > 0:
            raise ShipyardError(f"lease_ttl_s must be positive, not {lease_ttl_s!r}")
        self.registry = registry
        self.log_root = resolve_log_root(log_root)
        self.holder = holder
        self.clock = clock
        self.lease_ttl_s = lease_ttl_s
        self.alerts = alerts
        self.rollouts = Rollouts(registry, clock=clock)
        self.leases = Leases(registry)
        self.ticks = 0
        self.failures = 0  # rollouts whose handling raised (logged; retried next tick)
        self._held: dict[str, Lease] = {}  # lease name -> the lease this controller holds
        self._labels: dict[str, tuple[str, ...] | None] = {}  # NAME/V -> class labels
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread ------------------------------------------------------------------------

    def start(self, period_s: float = 5.0) -> None:
        """Tick every ``period_s`` seconds in a daemon thread (idempotent). The period must
        leave the lease time to be renewed: at most a third of ``lease_ttl_s``."""
        if not 0 < period_s <= self.lease_ttl_s / 3:
            raise ShipyardError(f"period_s must be in (0, lease_ttl_s / 3 = "
                                f"{self.lease_ttl_s / 3:g}] so the lease is renewed in time, "
                                f"not {period_s!r}")
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(period_s,),
                                        name="shipyard-rollouts", daemon=True)
        self._thread.start()
        log.info("rollout controller %s: ticking every %gs", self.holder, period_s)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the rollout being handled, if any, and release the leases held (so
        another server takes over at once rather than after their ttl)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the rollout controller is still finishing a tick; not waiting")
                return
        self.release()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def release(self) -> None:
        """Give back every lease this controller holds."""
        for name, lease in list(self._held.items()):
            try:
                self.leases.release(lease)
            except Exception:  # the registry is away: the lease expires by itself
                log.warning("could not release lease %s; it expires in %gs", name,
                            self.lease_ttl_s, exc_info=True)
            self._held.pop(name, None)

    def _loop(self, period_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # never let the thread die: the registry may be back soon
                log.exception("rollout controller: tick failed; retrying in %gs", period_s)
            self._stop.wait(period_s)

    # -- one pass --------------------------------------------------------------------------

    def tick(self) -> list[RolloutDecision]:
        """Act on every running rollout whose lease this controller holds or gets; the
        decisions recorded, in order."""
        self.ticks += 1
        decisions: list[RolloutDecision] = []
        running = self.rollouts.running()
        self._let_go({f"rollout:{r.endpoint}" for r in running})
        for rollout in running:
            if self._stop.is_set():
                break
            if not self._hold(f"rollout:{rollout.endpoint}"):
                continue
            try:
                decisions += self._act(rollout)
            except ConflictError as exc:  # another controller moved it first
                log.debug("rollout %s of %s: %s", rollout.id, rollout.endpoint, exc)
            except Exception:
                self.failures += 1
                log.exception("rollout %s of %s: could not act on it; retrying next tick",
                              rollout.id, rollout.endpoint)
        return decisions

    def _hold(self, name: str) -> bool:
        """Renew the lease if held, else try to take it; False when another holder has it."""
        now = self.clock()
        held = self._held.get(name)
        lease = None if held is None else self.leases.renew(held, self.lease_ttl_s, now=now)
        if lease is None:
            lease = self.leases.acquire(name, self.holder, self.lease_ttl_s, now=now)
            if held is not None:
                log.info("lease %s: lost to another holder%s", name,
                         "; taken back" if lease is not None else "")
        if lease is None:
            self._held.pop(name, None)
            return False
        self._held[name] = lease
        return True

    def _let_go(self, wanted: set[str]) -> None:
        """Release the leases of rollouts no longer running."""
        for name in set(self._held) - wanted:
            lease = self._held.pop(name)
            try:
                self.leases.release(lease)
            except Exception:
                log.warning("could not release lease %s", name, exc_info=True)

    def _act(self, rollout: Rollout) -> list[RolloutDecision]:
        plan = rollout.plan
        if isinstance(plan, CanaryPlan):
            return self._canary(rollout, plan)
        if isinstance(plan, ABPlan):
            return self._ab(rollout, plan)
        if isinstance(plan, ShadowPlan):
            return self._shadow(rollout, plan)
        return []  # blue-green: switched and promoted by people

    # -- canary ----------------------------------------------------------------------------

    def _canary(self, rollout: Rollout, plan: CanaryPlan) -> list[RolloutDecision]:
        now = self.clock()
        started = _ts(rollout.step_started_at)
        if now - started < plan.interval_s:
            return []
        rollout = self.rollouts.get(rollout.id)  # with its decisions, as it is now
        if rollout.state != "running" or _ts(rollout.step_started_at) != started \
                or now - self._last_check(rollout) < plan.interval_s:
            return []
        versions = [rollout.stable, rollout.candidate]
        labels = self._class_labels(rollout.candidate)
        # only the requests this step's policy routed: a server answers by the previous
        # step's split until its next poll, and those would, on the 100% step, give the
        # stable version a few requests, too few for the checks that compare with it
        seen = traffic(self.log_root, rollout.endpoint, started, now, versions,
                       class_labels=labels, revisions=[rollout.policy_revision])
        stable, baseline = seen[rollout.stable], None
        if stable.requests == 0 and rollout.step > 0:
            # the 100% step: stable has no traffic now, so the candidate at full load is
            # compared with stable's traffic of the step before (else a candidate slow or
            # wrong only at full load would pass its checks "not compared")
            baseline = {"since": self._step_before(rollout), "until": started}
            stable = traffic(self.log_root, rollout.endpoint, baseline["since"], started,
                             [rollout.stable], class_labels=labels)[rollout.stable]
        report = analyse_canary(stable, seen[rollout.candidate], plan, self._firing(rollout))
        percent = plan.steps[rollout.step]
        numbers: dict[str, Any] = {**report.to_dict(), "percent": percent,
                                   "window": {"since": started, "until": now}}
        if baseline is not None:
            numbers["stable_window"] = baseline
        where = f"step {rollout.step + 1}/{len(plan.steps)} ({percent:g}%)"
        if report.outcome == "pass":
            return self._passed(rollout, plan, numbers, where)
        if report.outcome == "wait":
            return [self.rollouts.record(rollout.id, outcome="wait",
                                         reason=_text(f"{where}: {report.reason}"),
                                         numbers=numbers, step=rollout.step, percent=percent)]
        failures = rollout.failures + 1
        failed = ", ".join(c.name for c in report.checks if c.outcome == "fail")
        reason = _text(f"{where}: failed {failed} ({failures} of {plan.failures} failed "
                       f"checks): {report.reason}")
        out = [self.rollouts.record(rollout.id, outcome="fail", reason=reason, numbers=numbers,
                                    step=rollout.step, percent=percent, failures=failures)]
        if failures >= plan.failures:
            log.warning("rollout %s of %s: aborting: %s", rollout.id, rollout.endpoint, reason)
            done = self.rollouts.abort(rollout.endpoint, reason=reason)
            out += done.decisions[-1:]
        return out

    def _passed(self, rollout: Rollout, plan: CanaryPlan, numbers: dict[str, Any],
                where: str) -> list[RolloutDecision]:
        if rollout.step + 1 >= len(plan.steps):
            # the analysis behind the promote is stored as a 'pass' just before it
            passed = self.rollouts.record(rollout.id, outcome="pass",
                                          reason=f"{where} passed every check",
                                          numbers=numbers, step=rollout.step)
            reason = f"{where} passed every check: promoted {rollout.candidate}"
            log.info("rollout %s of %s: %s", rollout.id, rollout.endpoint, reason)
            done = self.rollouts.promote(rollout.endpoint, reason=reason)
            return [passed, *done.decisions[-1:]]
        following = plan.steps[rollout.step + 1]
        reason = f"{where} passed every check: advancing to {following:g}%"
        # the decision stored with the advance: the analysis, its reason ours
        moved = self.rollouts.advance(rollout.id, expected_step=rollout.step,
                                      decision={**numbers, "reason": reason})
        log.info("rollout %s of %s: %s", rollout.id, rollout.endpoint, reason)
        return moved.decisions[-1:]

    # -- A/B and shadow --------------------------------------------------------------------

    def _ab(self, rollout: Rollout, plan: ABPlan) -> list[RolloutDecision]:
        now = self.clock()
        began = _ts(rollout.created_at)
        if now - began < plan.interval_s:
            return []
        rollout = self.rollouts.get(rollout.id)  # with its decisions
        start = next((d for d in rollout.decisions
                      if d.outcome == "start" and "sample" in d.numbers), None)
        # the sample planned when the test started (a pure function of the plan when the
        # starter did not store it); every verdict stores it again
        sample = plan_sample(plan) if start is None else _sample(start.numbers["sample"])
        previous = [d for d in rollout.decisions if d.outcome == "verdict"]
        last = max((_ts(d.at) for d in previous), default=began)
        if now - last < plan.interval_s:
            return []
        a, b = rollout.stable, rollout.candidate
        seen = traffic(self.log_root, rollout.endpoint, began, now, [a, b],
                       class_labels=self._class_labels(b), variants=["a", "b"],
                       keyed_only=True)
        # a sequential test carries its always-valid p-value over the looks before
        report = analyse_ab(seen[a], seen[b], plan, sample,
                            previous=previous[-1].numbers if previous else None)
        numbers = {**report.to_dict(), "window": {"since": began, "until": now}}
        return [self.rollouts.record(rollout.id, outcome="verdict",
                                     reason=_text(f"{report.verdict}: {report.reason}"),
                                     numbers=numbers)]

    def _shadow(self, rollout: Rollout, plan: ShadowPlan) -> list[RolloutDecision]:
        now = self.clock()
        began = _ts(rollout.created_at)
        if now - began < plan.interval_s:
            return []
        rollout = self.rollouts.get(rollout.id)  # with its decisions
        last = max((_ts(d.at) for d in rollout.decisions if d.outcome == "observe"),
                   default=began)
        if now - last < plan.interval_s:
            return []
        pairs = shadow_pairs(self.log_root, rollout.endpoint, began, now,
                             primary=rollout.stable, shadow=rollout.candidate)
        numbers: dict[str, Any] = {"window": {"since": began, "until": now},
                                   "pairs": pairs.rows, "unpaired": pairs.unpaired}
        if pairs.rows:
            numbers.update(shadow_report(
                pairs.primary, pairs.shadow, classification=pairs.classification,
                latencies_primary=pairs.latencies_primary,
                latencies_shadow=pairs.latencies_shadow, truth=pairs.truth))
            reason = f"{pairs.rows} answers compared"
        else:
            reason = "no request answered by both versions yet"
        return [self.rollouts.record(rollout.id, outcome="observe", reason=reason,
                                     numbers=numbers)]

    # -- what the decisions rest on --------------------------------------------------------

    def _last_check(self, rollout: Rollout) -> float:
        """When the current step was last checked (a 'wait' or 'fail' recorded since it
        started); its start when not yet."""
        started = _ts(rollout.step_started_at)
        return max((_ts(d.at) for d in rollout.decisions
                    if d.outcome in ("wait", "fail") and d.step == rollout.step
                    and _ts(d.at) >= started), default=started)

    def _step_before(self, rollout: Rollout) -> float:
        """When the previous step's analysed window began (its advance stored the window;
        the rollout's start when not found)."""
        for d in reversed(rollout.decisions):
            window = d.numbers.get("window") if d.outcome == "advance" else None
            if d.step == rollout.step and isinstance(window, dict) \
                    and isinstance(window.get("since"), int | float):
                return float(window["since"])
        return _ts(rollout.created_at)

    def _class_labels(self, version: str) -> tuple[str, ...] | None:
        """The class labels of a version's signature (None: not a classifier), cached."""
        if version not in self._labels:
            manifest = self.registry.get_version(version).manifest
            labels = (manifest.get("signature") or {}).get("class_labels")
            self._labels[version] = None if labels is None else tuple(str(c) for c in labels)
        return self._labels[version]

    def _firing(self, rollout: Rollout) -> list[str]:
        """Alerts firing for the candidate: from ``alerts`` when given, else the endpoint's
        monitor alerts that began firing after the rollout started (the candidate took
        traffic; alerts firing before it are the stable version's)."""
        if self.alerts is not None:
            return list(self.alerts(rollout.endpoint, rollout.candidate))
        state = MonitorHistory(self.log_root, rollout.endpoint,
                               home=self.registry.settings.home).load_state()
        if not state:
            return []
        began = _ts(rollout.created_at)
        out = []
        for name, event in firing_alerts(state).items():
            try:
                since = datetime.fromisoformat(str(event.get("started_at"))).timestamp()
            except ValueError:
                since = began  # no start recorded: count it
            if since >= began:
                out.append(name)
        return sorted(out)
