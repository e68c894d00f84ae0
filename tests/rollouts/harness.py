"""What the end-to-end rollout tests share: ``shipyard serve`` processes on one registry
(SQLite or PostgreSQL) and one log directory, closed-loop client load with routing keys, and
the timeline of the endpoint's policy revisions that each answer is checked against."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from serving.helpers import ROOT, ServerProcess, rows_payload
from shipyard.registry import Registry, Rollout
from shipyard.routing import Policy, route
from shipyard.settings import Settings
from shipyard.stores.predictions import read_log

ENDPOINT = "iris"
URI = "models:/iris@production"
PREDICT = f"/v1/endpoints/{ENDPOINT}/predict"
MAX_REQUESTS = 200_000  # any load's hard bound, whatever happens


def until(what: Callable[[], Any], within_s: float, message: str | Callable[[], str],
          every_s: float = 0.05) -> Any:
    """``what()``'s first truthy value, polled; fails past ``within_s`` with ``message``
    (a callable: evaluated then)."""
    deadline = time.monotonic() + within_s
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (after {within_s} s)")
        time.sleep(every_s)


class Fleet:
    """``shipyard serve`` processes of one endpoint on one registry and one log directory."""

    def __init__(self, root: Path, registry_url: str | None = None, *,
                 poll_interval_s: float = 0.3,
                 rollout_lease_s: float = 30.0, inference: str = "process",
                 timeout_s: float = 10.0) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir = root / "logs"
        self.poll_interval_s = poll_interval_s
        if registry_url is not None:  # the servers read it from the home's settings file
            (self.home / "config.toml").write_text(
                f'registry_url = "{registry_url}"\nartifacts = "{root / "blobs"}"\n')
        self.settings = Settings.from_env({"SHIPYARD_HOME": str(self.home)})
        self.registry = Registry(settings=self.settings, actor="tester", auto_upgrade=True)
        self.config = root / "serve.yaml"
        self.config.write_text(yaml.safe_dump({
            "poll_interval_s": poll_interval_s, "flush_interval_s": 0.2,
            "rollout_lease_s": rollout_lease_s,
            "endpoints": [{"name": ENDPOINT, "model": URI, "trust": True,
                           "inference": inference, "timeout_s": timeout_s}]}))
        self.servers: dict[str, ServerProcess] = {}

    def start(self, name: str, *, wait: bool = True) -> ServerProcess:
        """A server whose registry actor (in its decisions) is ``name``."""
        paths = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""),
                                            str(ROOT / "tests")) if p)
        server = ServerProcess(["--config", str(self.config), "--log-dir", str(self.log_dir)],
                               home=self.home, out=self.root / f"{name}.out",
                               env={"SHIPYARD_ACTOR": name, "PYTHONPATH": paths})
        self.servers[name] = server
        if wait:
            server.wait_ready()
        return server

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.registry.close()

    def output(self) -> str:
        return "\n".join(f"--- {name}\n{s.output()[-3000:]}" for name, s in self.servers.items())


@dataclass(frozen=True)
class Answer:
    sent: float  # time.time() when sent and when answered
    received: float
    base: str  # the server that answered
    key: str
    request_id: str
    status: int  # 0: no HTTP answer
    header: str | None  # X-Model-Version
    version: str | None  # NAME/V from the body's model and version
    body: bytes


@dataclass
class Load:
    """Closed-loop client threads, each request to one of ``bases`` with a random routing key
    of ``users`` users and 1-3 random iris rows."""

    bases: Sequence[str]
    x: np.ndarray
    users: int = 1000
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, threads: int = 4) -> Load:
        for w in range(threads):
            thread = threading.Thread(target=self._work, args=(w,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _work(self, w: int) -> None:
        rng = np.random.default_rng(w)
        with httpx.Client(timeout=30) as client:
            n = 0
            while not self.stop.is_set() and len(self.answers) < MAX_REQUESTS:
                base = self.bases[int(rng.integers(len(self.bases)))]
                key, rid = f"user-{rng.integers(self.users)}", f"w{w}-{n}"
                n += 1
                rows = self.x[rng.choice(len(self.x), size=int(rng.integers(1, 4)))]
                self.answers.append(post(client, base, rows, key, rid))

    def count(self) -> int:
        return len(self.answers)

    def more(self, n: int, within_s: float = 60.0) -> None:
        """Wait for ``n`` more answers."""
        target = len(self.answers) + n
        until(lambda: len(self.answers) >= target, within_s, f"{n} more answers never came")

    def finish(self) -> list[Answer]:
        self.stop.set()
        for thread in self._threads:
            thread.join(60)
        return list(self.answers)


def post(client: httpx.Client, base: str, rows: np.ndarray, key: str | None,
         rid: str) -> Answer:
    headers = {"X-Request-Id": rid}
    if key is not None:
        headers["X-Routing-Key"] = key
    sent = time.time()
    try:
        r = client.post(f"{base}{PREDICT}", json=rows_payload(rows), headers=headers)
    except httpx.HTTPError:
        return Answer(sent, time.time(), base, key or "", rid, 0, None, None, b"")
    received = time.time()
    version = None
    if r.status_code == 200:
        doc = r.json()
        version = f"{doc.get('model')}/{doc.get('version')}"
    return Answer(sent, received, base, key or "", rid, r.status_code,
                  r.headers.get("x-model-version"), version, r.content)


class Timeline:
    """The endpoint's policy revisions as the registry recorded them, by time."""

    def __init__(self, registry: Registry, endpoint: str = ENDPOINT) -> None:
        history = registry.deployments.history(endpoint)
        self.at = {r.revision: r.at.timestamp() for r in history}
        self.policies: dict[int, Policy] = {r.revision: r.policy for r in history}

    def lag_s(self, revision: int, warm_s: float, load_s: float) -> float:
        """How long after the next revision was set ``revision`` may still route: a poll
        (``warm_s``) when the next one's versions were loaded already, else a load
        (``load_s``: its new versions load and warm before the swap)."""
        following = self.policies.get(revision + 1)
        if following is None:
            return warm_s
        then = self.at.get(revision + 2)  # replaced in turn before a poll: either may load
        if set(following.versions) <= set(self.policies[revision].versions) and (
                then is None or then - self.at[revision + 1] > warm_s):
            return warm_s
        return load_s

    def problems(self, answers: Sequence[Answer], routed: Mapping[str, int], *, warm_s: float,
                 load_s: float) -> list[str]:
        """What is wrong with each answer: not 200, a header that disagrees with the body,
        no log row, a version other than the one its logged policy revision gives its key,
        or a revision not in force then (set after the answer, or replaced more than its
        lag before the request was sent)."""
        out = []
        for a in answers:
            revision = routed.get(a.request_id)
            what = f"{a} (revision {revision})"
            if a.status != 200 or a.header != a.version:
                out.append(f"failed or mislabelled: {what}")
            elif revision is None or revision not in self.policies:
                out.append(f"no log row naming a revision: {what}")
            elif a.version != route(self.policies[revision], a.key).version:
                out.append(f"not the version its policy gives its key: {what}")
            elif self.at[revision] > a.received:
                out.append(f"routed by a revision set after the answer: {what}")
            elif revision + 1 in self.at and self.at[revision + 1] + self.lag_s(
                    revision, warm_s, load_s) < a.sent:
                out.append(f"routed by a revision replaced {a.sent - self.at[revision + 1]:.2f}"
                           f" s before it was sent: {what}")
        return out


def routed_revisions(log_dir: Path) -> dict[str, int]:
    """Request id -> the policy revision that routed it, from the prediction log."""
    table = read_log(log_dir, ENDPOINT, inputs=False)
    return {rid: revision for rid, revision, row in zip(
        *(table.column(c).to_pylist() for c in ("request_id", "policy_revision", "row")),
        strict=True) if row == 0}


def decisions(registry: Registry, rollout_id: int) -> list[tuple[str, int, str]]:
    """(outcome, step, actor) of a rollout's decisions, in order."""
    return [(d.outcome, d.step, d.actor) for d in registry.rollouts.get(rollout_id).decisions]


def reasons(registry: Registry, rollout_id: int) -> str:
    """A rollout's decisions with their reasons, one a line (for failure messages)."""
    return "\n".join(f"{d.at:%H:%M:%S.%f} {d.actor} {d.outcome} step {d.step}: {d.reason}"
                     for d in registry.rollouts.get(rollout_id).decisions)


def finished(registry: Registry, rollout_id: int) -> Rollout | None:
    rollout = registry.rollouts.get(rollout_id)
    return None if rollout.state == "running" else rollout


@contextlib.contextmanager
def running_load(bases: Sequence[str], x: np.ndarray, threads: int = 4,
                 **kw: Any) -> Iterator[Load]:
    load = Load(bases, x, **kw).start(threads)
    try:
        yield load
    finally:
        load.finish()


def wait_serving(fleet: Fleet, base: str, revision: int, x: np.ndarray,
                 within_s: float = 30.0) -> None:
    """Wait until the server at ``base`` routes by policy ``revision`` (or a later one): a
    probe request's log row names the revision that routed it."""
    probes = iter(range(1_000_000))

    def routed() -> bool:
        rid = f"probe-{revision}-{next(probes)}"
        with httpx.Client(timeout=30) as client:
            assert post(client, base, x[:1], rid, rid).status == 200
        # the row is written within a flush or two
        found = until(lambda: _logged(fleet.log_dir, rid), 10.0, f"{rid} never logged")
        return bool(found >= revision)

    until(routed, within_s, f"{base} never served revision {revision}", every_s=0.1)


def _logged(log_dir: Path, rid: str) -> int:
    with contextlib.suppress(Exception):  # nothing logged yet
        return routed_revisions(log_dir).get(rid, 0)
    return 0
