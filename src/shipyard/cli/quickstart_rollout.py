"""The rollout part of the quickstart: register a second version (as good as the first) and
a bad third one, then canary each on the served endpoint while traffic with feedback flows.
The server's rollout controller decides: the second is promoted step by step, the third is
rolled back on its own. Every decision is printed with the numbers behind it."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from rich.console import Console

from shipyard.cli.quickstart_serve import demo_server, until_stopped
from shipyard.routing import Single
from shipyard.routing.plans import CanaryPlan
from shipyard.settings import Settings

if TYPE_CHECKING:
    from shipyard.registry import Registry, Rollout, RolloutDecision

ENDPOINT = "breast-cancer"
PLAN = CanaryPlan(steps=(20.0, 50.0, 100.0), interval_s=2.0, min_requests=370,
                  max_p99_ratio=3.0, max_error_rate=0.02, metric="accuracy", tolerance=0.02,
                  failures=2, alias="production")
"""A short canary: 20%, 50%, then all traffic, each step analysed after 2 s and at least 370
candidate requests (a p99 bound needs 367), a quality gate on labelled accuracy, a loose
latency gate (3x stable's p99: timings on a shared laptop are noisy), aborted at the second
failed analysis of a step (one unlucky window does not roll back a good version)."""
TIMEOUT_S = 90.0  # a canary that has not ended by then fails the quickstart
SENDERS = 3  # threads sending traffic
CONTROLLER_LOG = "shipyard.service.rollout_controller"
LABELLED = 2  # a row is sent LABELLED times a round, once with its label as feedback


class Split(NamedTuple):
    """The quickstart's data: training rows, validation rows (the monitoring reference) and
    held-out rows, each features and labels; the canaries' traffic is the validation and
    held-out rows (no version trained on them)."""

    x_train: Any
    y_train: Any
    x_valid: Any
    y_valid: Any
    x_test: Any
    y_test: Any


def deploy_production(console: Console, settings: Settings, uri: str) -> None:
    """Make the endpoint's traffic policy send everything to ``uri`` (the version just
    registered as @production): on a fresh home its first policy; on a rerun the end of
    whatever an earlier run left (a rollout still running is aborted first)."""
    from shipyard.registry import Registry

    with Registry(settings=settings) as registry:
        _deploy(console, registry, uri)


def _deploy(console: Console, registry: Registry, uri: str) -> None:
    running = registry.rollouts.active(ENDPOINT)
    if running is not None:
        registry.rollouts.abort(ENDPOINT, reason="the quickstart starts over")
        console.print(f"   aborted rollout {running.id} ({running.candidate}) left running "
                      "by an earlier quickstart")
    current = registry.deployments.current(ENDPOINT)
    if current is not None and current[1] == Single(uri):
        return
    revision = registry.rollouts.deploy(ENDPOINT, uri, reason="quickstart: serve the newly "
                                        "registered production version")
    console.print(f"   deployed: endpoint {ENDPOINT} sends all traffic to {uri} "
                  f"(policy revision {revision.revision})")


def run_rollouts(console: Console, settings: Settings, directory: Path, split: Split, *,
                 keep_serving: bool | None,
                 before_waiting: Callable[[], None] | None = None) -> None:
    """Steps 12 to 14: two candidate versions, a canary of each, the commands to try;
    ``before_waiting`` runs before the demo server is kept serving (``keep_serving``: see
    `quickstart_serve.until_stopped`)."""
    from shipyard.registry import Registry

    # the controller logs its aborts as warnings; here every decision is printed instead
    quiet, controller_log = logging.NullHandler(), logging.getLogger(CONTROLLER_LOG)
    controller_log.addHandler(quiet)
    try:
        with Registry(settings=settings) as registry:
            _run(console, settings, registry, directory, split, keep_serving, before_waiting)
    finally:
        controller_log.removeHandler(quiet)


def _run(console: Console, settings: Settings, registry: Registry, directory: Path,
         split: Split, keep_serving: bool | None,
         before_waiting: Callable[[], None] | None) -> None:
    from shipyard.service.config import EndpointConfig, ServeConfig

    good, bad = register_candidates(console, registry, directory, split)
    config = ServeConfig(endpoints=(EndpointConfig(name=ENDPOINT,
                                                   model=f"models:/{ENDPOINT}@production"),),
                         log_dir=str(settings.home / "logs"), poll_interval_s=0.5,
                         flush_interval_s=0.25, rollout_controller=True)
    with demo_server(config, settings) as (url, thread):
        console.print(f"13. serving {ENDPOINT} at [bold]{url}[/] with its rollout controller "
                      f"on; {SENDERS} clients send the validation and held-out rows, one a "
                      "request, in shuffled rounds, half of them with their label as "
                      "feedback")
        with Traffic(url, split) as traffic:
            _canaries(console, registry, traffic, good, bad)
        console.print(f"   {traffic.summary()}")
        console.print("   try: [cyan]shipyard rollout status breast-cancer[/], [cyan]shipyard "
                      "rollout history breast-cancer[/], [cyan]shipyard rollback "
                      "breast-cancer[/]")
        if before_waiting is not None:
            before_waiting()
        until_stopped(console, url, thread, keep_serving)


def _canaries(console: Console, registry: Registry, traffic: Traffic, good: str,
              bad: str) -> None:
    stable = _answering(registry)
    promoted = canary(console, registry, traffic, good)
    if promoted.state != "promoted":
        raise RuntimeError(f"the canary of {good} should have been promoted, but it was "
                           f"{promoted.state}: {promoted.reason}")
    alias = registry.get_version(f"{ENDPOINT}@production").version
    console.print(f"   [green]promoted[/]: {good} takes all traffic (was {stable}), "
                  f"@production -> v{alias}")
    console.print(f"14. a bad version: {bad}")
    aborted = canary(console, registry, traffic, bad)
    if aborted.state != "aborted":
        raise RuntimeError(f"the canary of {bad} should have been rolled back, but it was "
                           f"{aborted.state}: {aborted.reason}")
    console.print(f"   [red]rolled back[/] automatically: all traffic back on "
                  f"{aborted.stable}; why: {aborted.reason}")


def register_candidates(console: Console, registry: Registry, directory: Path,
                        split: Split) -> tuple[str, str]:
    """Step 12: train, package and register v2 (a regularised logistic regression, as good
    as v1 on the held-out rows) and v3 (the same with a typo in its regularisation: it calls
    every row benign)."""
    from sklearn.linear_model import LogisticRegression

    made = []
    for what, c in (("logistic regression (C=0.1)", 0.1),
                    ("logistic regression with a typo (C=0.0001)", 0.0001)):
        path, accuracy = _package(LogisticRegression(C=c, max_iter=1000), split, what,
                                  directory.with_name(f"{directory.name}-C{c:g}"))
        version = registry.register(path, tags={"source": "quickstart"})
        made.append((version.uri.removeprefix("models:/"), what, accuracy))
    production = registry.get_version(f"{ENDPOINT}@production")
    console.print(f"12. registered two candidates beside {ENDPOINT}/{production.version} "
                  f"(@production, held-out accuracy "
                  f"{production.metrics.get('accuracy', float('nan')):.3f}):")
    for uri, what, accuracy in made:
        console.print(f"   {uri}: {what}, held-out accuracy {accuracy:.3f}")
    return made[0][0], made[1][0]


def _package(estimator: Any, split: Split, what: str, out: Path) -> tuple[Path, float]:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from shipyard.runtimes import package

    model = Pipeline([("scale", StandardScaler()), ("lr", estimator)])
    model.fit(split.x_train, split.y_train)
    accuracy = float((model.predict(split.x_test) == split.y_test).mean())
    pkg = package(model, split.x_train, target=split.y_train,
                  reference=(split.x_valid, split.y_valid), name=ENDPOINT,
                  params={"C": float(estimator.C)}, metrics={"accuracy": accuracy},
                  description=f"shipyard quickstart candidate: {what}")
    return pkg.save(out, overwrite=True), accuracy


def _answering(registry: Registry) -> str:
    current = registry.deployments.current(ENDPOINT)
    return "?" if current is None else ", ".join(current[1].versions)


def canary(console: Console, registry: Registry, traffic: Traffic, to: str) -> Rollout:
    """Start a canary of ``to`` and print its decisions until it ends (``TIMEOUT_S`` at
    most: then it is aborted and the quickstart fails, showing the last decisions)."""
    rollout = registry.rollouts.start_canary(ENDPOINT, to, PLAN,
                                             reason=f"quickstart: canary of {to}")
    console.print(f"   canary {rollout.id}: {rollout.candidate} against "
                  f"{rollout.stable}, steps "
                  f"{', '.join(f'{s:g}%' for s in PLAN.steps)}, each analysed after "
                  f"{PLAN.interval_s:g}s and {PLAN.min_requests} candidate requests")
    traffic.wait_for(1)  # traffic flows
    shown = 1  # the start decision
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        rollout = registry.rollouts.get(rollout.id)
        for decision in rollout.decisions[shown:]:
            show_decision(console, decision, rollout.created_at)
        shown = len(rollout.decisions)
        if not rollout.running:
            return rollout
        if time.monotonic() > deadline or not traffic.alive:
            last = "; ".join(f"{d.outcome}: {d.reason}" for d in rollout.decisions[-3:])
            registry.rollouts.abort(ENDPOINT, reason="the quickstart gave up waiting")
            raise RuntimeError(f"canary {rollout.id} of {to} did not finish within "
                               f"{TIMEOUT_S:g}s (traffic: {traffic.summary()}); its last "
                               f"decisions: {last}")
        time.sleep(0.2)


_COLOURS = {"advance": "green", "promote": "green", "pass": "green", "fail": "red",
            "abort": "red", "wait": "yellow"}
_WHERE = re.compile(r"^step \d+/\d+ \([\d.]+%\):? ?")  # the controller's prefix


def show_decision(console: Console, decision: RolloutDecision, started: datetime) -> None:
    """The decision in a line (seconds since the canary started, the candidate's share,
    the outcome, why in short), then its analysis's key numbers when it holds one."""
    numbers = decision.numbers
    why = _WHERE.sub("", decision.reason)
    if decision.outcome == "wait":  # the first check that holds it
        why = why.split("; ")[0]
    elif decision.outcome == "fail":  # which checks failed (the numbers say by how much)
        why = why.split("): ")[0] + ")"
    elif decision.outcome == "advance":
        why = f"to {PLAN.steps[decision.step]:g}%: every check passed"
    elif decision.outcome == "promote":
        alias = numbers.get("alias") or {}
        why = (f"all traffic to {numbers.get('version')}" + (
            f", @{alias['alias']} moved to v{alias['after']}" if alias else ""))
    elif decision.outcome == "abort":
        why = f"all traffic back to {numbers.get('version')}"
    seconds = (decision.at - started).total_seconds()
    percent = numbers.get("percent", decision.percent)  # an analysis: the step it read
    share = "" if percent is None else f"{percent:g}%"
    colour = _COLOURS.get(decision.outcome, "white")
    console.print(f"   {seconds:5.1f}s {share:>5} [{colour}]{decision.outcome:<7}[/] {why}",
                  highlight=False)
    said = key_numbers(numbers)
    if said and decision.outcome != "wait":
        console.print(f"                  {said}", highlight=False)


def _checks(numbers: Any) -> dict[str, dict[str, Any]]:
    """The checks of the analysis a decision stores (anywhere in its numbers), by name."""
    if not isinstance(numbers, dict):
        return {}
    checks = numbers.get("checks")
    if isinstance(checks, list):
        return {c["name"]: c.get("numbers") or {} for c in checks
                if isinstance(c, dict) and isinstance(c.get("name"), str)}
    for value in numbers.values():
        found = _checks(value)
        if found:
            return found
    return {}


def key_numbers(numbers: Any) -> str:
    """Requests, error rates, p99s, prediction drift and accuracy, stable / candidate."""
    checks = _checks(numbers)
    parts = []
    traffic, errors = checks.get("traffic", {}), checks.get("error_rate", {})
    if "stable_requests" in traffic:
        parts.append(f"requests {traffic['stable_requests']} / "
                     f"{traffic['candidate_requests']}")
    if errors.get("candidate") is not None:
        parts.append(f"errors {_pct(errors.get('stable'))} / {_pct(errors['candidate'])}")
    latency = checks.get("latency", {})
    if latency.get("candidate_p99") is not None:
        parts.append(f"p99 {_ms(latency.get('stable_p99'))} / "
                     f"{_ms(latency['candidate_p99'])} ms")
    drift = checks.get("prediction_drift", {})
    if drift.get("effect_size") is not None:
        parts.append(f"prediction drift {drift.get('effect_name')} "
                     f"{drift['effect_size']:.3f} (limit {drift.get('threshold', 0):.2g})")
    quality = checks.get("quality", {})
    if quality.get("compared") and quality.get("difference") is not None:
        parts.append(f"{quality.get('metric')} {quality['stable']:.3f} / "
                     f"{quality['candidate']:.3f} ({quality['difference']:+.3f}, "
                     f"{quality['rows_stable']} / {quality['rows_candidate']} labels)")
    return ("stable / candidate: " + ", ".join(parts)) if parts else ""


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


class Deck:
    """The rows the traffic sends, dealt in rounds: each round sends every row ``LABELLED``
    times in a fresh random order, one of those times with its label as feedback. Any
    stretch of traffic then holds the rows (and the labels) in about their shares of the
    pool, whichever version the router picks for each request, so two versions compared
    over an interval, or over two intervals, see the same kind of rows; a fixed cycle
    through the rows does not (a short interval holds the stretch of rows it covered)."""

    def __init__(self, rows: int, seed: int = 0) -> None:
        self._cards = [(row, copy == 0) for row in range(rows) for copy in range(LABELLED)]
        self._rng = random.Random(seed)
        self._dealt: list[tuple[int, bool]] = []
        self._lock = threading.Lock()

    def deal(self) -> tuple[int, bool]:
        """The next (row, whether to send its label)."""
        with self._lock:
            if not self._dealt:
                self._dealt = self._rng.sample(self._cards, len(self._cards))
            return self._dealt.pop()


class Traffic:
    """Threads sending the rows none of the versions trained on (validation and held-out),
    one per request, dealt from a `Deck`, with labels as feedback, until closed; counts the
    answers by version and every failure (there should be none)."""

    def __init__(self, url: str, split: Split) -> None:
        self.url = url
        self.rows = [[record] for x in (split.x_valid, split.x_test)
                     for record in x.to_dict("records")]
        self.labels = [int(v) for y in (split.y_valid, split.y_test) for v in y]
        self.deck = Deck(len(self.rows))
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True)
                         for _ in range(SENDERS)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    def wait_for(self, answers: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while sum(self.versions.values()) < answers and time.monotonic() < deadline:
            time.sleep(0.05)

    def summary(self) -> str:
        with self._lock:
            by = ", ".join(f"{n} by {v}" for v, n in sorted(self.versions.items()))
            total = sum(self.versions.values())
            return f"{total} requests answered ({by}); {len(self.failures)} failed"

    def _send(self) -> None:
        from shipyard.client import Client

        with Client(self.url) as client:
            while not self._stop.is_set():
                row, labelled = self.deck.deal()
                try:
                    answer = client.predict(ENDPOINT, self.rows[row])
                    if labelled:
                        client.feedback(ENDPOINT, answer["request_id"],
                                        labels=[self.labels[row]])
                except Exception as exc:  # counted and said, never lost
                    with self._lock:
                        self.failures.append(str(exc))
                    continue
                with self._lock:
                    self.versions[f"{answer['model']}/{answer['version']}"] += 1
