"""Traffic policies on a running server (issue 14): the app over httpx's ASGI transport, the
data plane started by hand, a registry in a temporary directory, the endpoint following the
registry's stored policy for its name.

Policy changes are picked up by the watcher without a restart and without a failed request;
every answer comes from a version the policy allowed while the request was in flight, and
says which one in ``X-Model-Version``; sticky keys keep their version; a shadow copy never
changes or fails a primary answer; a blue-green switch needs no load; OIP requests may pin a
loaded version.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import shipyard
from serving.helpers import FEATURES, IrisModels, metric, rows_payload
from shipyard.registry import Registry
from shipyard.routing import BlueGreen, Policy, Shadow, Single, StickyAB, Weighted, route
from shipyard.server.app import create_app
from shipyard.server.forwarded import ForwardedClient
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings
from shipyard.stores.predictions import read_log

URI = "models:/iris@production"
PREDICT = "/v1/endpoints/iris/predict"
MAX_REQUESTS = 50_000  # the traffic's hard bound, whatever happens


@pytest.fixture
def registry(tmp_path: Path, iris: IrisModels) -> Iterator[Registry]:
    settings = Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")})
    reg = Registry(url=f"sqlite:///{tmp_path}/r.db", artifacts=tmp_path / "blobs",
                   settings=settings, actor="tester")
    reg.register(iris.packages[1], alias="production")
    reg.register(iris.packages[2])
    yield reg
    reg.close()


@asynccontextmanager
async def serving(registry: Registry, log_dir: Path, *, poll_interval_s: float = 3600.0,
                  inference: str = "process", timeout_s: float = 10.0,
                  trusted_proxy: str | None = None,
                  retain_previous_s: float = 600.0, joint_inference: bool = True,
                  **endpoint_options: Any,
                  ) -> AsyncIterator[tuple[DataPlane, httpx.AsyncClient]]:
    config = ServeConfig(
        endpoints=(EndpointConfig(name="iris", model=URI, inference=inference,  # type: ignore[arg-type]
                                  trust=True, timeout_s=timeout_s,
                                  joint_inference=joint_inference, **endpoint_options),),
        log_dir=str(log_dir), poll_interval_s=poll_interval_s, flush_interval_s=0.2,
        retain_previous_s=retain_previous_s)
    plane = DataPlane(config, settings=registry.settings, registry=registry)
    app = create_app(plane)
    if trusted_proxy is not None:  # what server/run.py sets up
        app.forwarded = ForwardedClient(trusted_proxy)
    await plane.start()  # what the lifespan does
    try:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                     timeout=60) as client:
            yield plane, client
    finally:
        await plane.close()


def revision(plane: DataPlane) -> int:
    table = plane.endpoints["iris"].table
    assert table is not None
    return table.revision


async def set_policy(registry: Registry, policy: Policy) -> int:
    done = await asyncio.to_thread(registry.deployments.set_policy, "iris", policy,
                                   reason="test")
    return done.revision


async def until_revision(plane: DataPlane, wanted: int, within_s: float) -> float:
    """Seconds until the endpoint serves revision ``wanted`` (fails past ``within_s``)."""
    started = time.monotonic()
    while revision(plane) != wanted:
        assert time.monotonic() - started < within_s, f"revision {wanted} not served"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


@dataclass
class Answer:
    request_id: str
    key: str
    revisions: tuple[int, int]  # the revision served when it was sent, and when answered
    status: int
    header: str | None
    version: int | None
    body: bytes


@dataclass
class Load:
    """Closed-loop clients, each request with a routing key of one of 500 users."""

    client: httpx.AsyncClient
    plane: DataPlane
    x: np.ndarray
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self, w: int) -> None:
        rng = np.random.default_rng(w)
        n = 0
        while not self.stop.is_set() and len(self.answers) < MAX_REQUESTS:
            key, rid = f"user-{rng.integers(500)}", f"w{w}-{n}"
            n += 1
            rows = self.x[rng.choice(len(self.x), size=int(rng.integers(1, 4)))]
            before = revision(self.plane)
            r = await self.client.post(PREDICT, json=rows_payload(rows),
                                       headers={"X-Routing-Key": key, "X-Request-Id": rid})
            version = r.json().get("version") if r.status_code == 200 else None
            self.answers.append(Answer(rid, key, (before, revision(self.plane)), r.status_code,
                                       r.headers.get("x-model-version"), version, r.content))

    async def until(self, n: int) -> None:
        deadline = time.monotonic() + 60
        target = len(self.answers) + n
        while len(self.answers) < target:
            assert time.monotonic() < deadline, f"{n} more answers never came"
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("inference", ["process", "thread"])
def test_policy_changes_under_load_fail_no_request(registry: Registry, iris: IrisModels,
                                                   tmp_path: Path, inference: str) -> None:
    """Single v1 -> weighted 50/50 -> single v2, each picked up by the watcher while six
    clients send without pause: no request fails, and each answer's version is one that a
    policy in force while it was in flight allowed (the weighted one: the key's version)."""
    poll = 0.2
    policies: dict[int, Policy] = {0: Single("iris/1")}

    async def scenario() -> tuple[list[Answer], float, str]:
        async with serving(registry, tmp_path / "logs", poll_interval_s=poll,
                           inference=inference) as (plane, client):
            load = Load(client, plane, iris.x)
            workers = [asyncio.ensure_future(load.worker(w)) for w in range(6)]
            try:
                await load.until(100)
                for policy in (Single("iris/1"), Weighted.canary("iris/1", "iris/2", 50),
                               Single("iris/2")):
                    rev = await set_policy(registry, policy)
                    policies[rev] = policy
                    # a new version loads first (an inference process starts): allow that
                    took = await until_revision(plane, rev, 60.0)
                    await load.until(150)
                # the last change needed no load: it was served within one poll (plus a
                # busy machine's slack for the registry read)
            finally:
                load.stop.set()
                await asyncio.gather(*workers)
            metrics = (await client.get("/metrics")).text
            return load.answers, took, metrics

    answers, took, metrics = asyncio.run(scenario())
    assert took < poll + 1.0, took
    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} failed: {failed[:3]}"
    seen: dict[int, set[int]] = {}
    for a in answers:
        assert a.header == f"iris/{a.version}", a
        first, last = a.revisions
        allowed = {v for r in range(first, last + 1) for v in policies[r].versions}
        assert f"iris/{a.version}" in allowed, (a, allowed)
        if first == last:
            assert f"iris/{a.version}" == route(policies[first], a.key).version, a
            seen.setdefault(first, set()).add(a.version or 0)
    assert seen[2] == {1, 2}  # the 50/50 split served both
    assert seen.get(4, {2}) == {2}
    assert metric(metrics, "shipyard_model_load_failures_total") == 0
    # every row records the variant and the policy revision that routed it
    table = read_log(tmp_path / "logs", "iris", inputs=False)
    logged = {rid: (variant, rev) for rid, variant, rev, row in zip(
        *(table.column(c).to_pylist() for c in ("request_id", "variant", "policy_revision",
                                                 "row")), strict=True) if row == 0}
    assert set(logged) == {a.request_id for a in answers}
    for a in answers:
        first, last = a.revisions
        if first == last:
            want = route(policies[first], a.key).variant if first else ""
            assert logged[a.request_id] == (want, first), a
    assert {v for v, _ in logged.values()} == {"", "stable", "canary"}


def test_sticky_keys_keep_their_version_and_answers_name_it(registry: Registry,
                                                            iris: IrisModels,
                                                            tmp_path: Path) -> None:
    policy = StickyAB("iris/1", "iris/2", 50, salt="exp-1", key="header:X-User-Id")

    async def scenario() -> dict[str, set[str]]:
        got: dict[str, set[str]] = {}
        async with serving(registry, tmp_path / "logs") as (plane, client):
            await set_policy(registry, policy)
            await plane.check_for_new_versions()
            for _ in range(3):
                for user in range(40):
                    r = await client.post(PREDICT, json=rows_payload(iris.x[:2]),
                                          headers={"X-User-Id": f"u{user}"})
                    assert r.status_code == 200, r.text
                    got.setdefault(f"u{user}", set()).add(r.headers["x-model-version"])
            bad = await client.post(PREDICT, json={"inputs": {"nope": [1]}},
                                    headers={"X-User-Id": "u7", "X-Request-Id": "bad-1"})
            assert bad.status_code == 422, bad.text
        return got

    got = asyncio.run(scenario())
    errors = read_log(tmp_path / "logs", "iris", kind="errors").to_pylist()
    assert [(e["request_id"], e["status"], e["variant"], e["policy_revision"],
             e["routing_key"], e["shadow"]) for e in errors] == [
        ("bad-1", 422, route(policy, "u7").variant, 1, "u7", False)]
    for user, versions in got.items():
        assert versions == {route(policy, user).version}, user
    assert {v for vs in got.values() for v in vs} == {"iris/1", "iris/2"}


def test_a_json_key_and_the_client_address_route_requests(registry: Registry,
                                                          iris: IrisModels,
                                                          tmp_path: Path) -> None:
    """A ``json:`` key read from the body (an infer request's ``id`` here) and the client's
    address route as ``route`` says."""
    by_field = StickyAB("iris/1", "iris/2", 50, key="json:id")
    by_client = StickyAB("iris/1", "iris/2", 50, key="client")

    async def scenario() -> tuple[dict[str, str], str]:
        async with serving(registry, tmp_path / "logs", inference="thread") as (plane, client):
            await set_policy(registry, by_field)
            await plane.check_for_new_versions()
            got = {}
            for user in range(30):
                r = await client.post("/v2/models/iris/infer",
                                      json=oip_body(iris.x[:1], f"u{user}"))
                assert r.status_code == 200, r.text
                got[f"u{user}"] = r.headers["x-model-version"]
            await set_policy(registry, by_client)
            await plane.check_for_new_versions()
            r = await client.post(PREDICT, json=rows_payload(iris.x[:1]))
            return got, r.headers["x-model-version"]

    got, from_client = asyncio.run(scenario())
    assert got == {user: route(by_field, user).version for user in got}
    assert len(set(got.values())) == 2
    assert from_client == route(by_client, "10.1.2.3").version


def test_a_client_key_reads_the_address_a_trusted_proxy_forwards(registry: Registry,
                                                                iris: IrisModels,
                                                                tmp_path: Path) -> None:
    """Behind a trusted proxy (the test client's 10.1.2.3) a ``client`` key is the address
    in X-Forwarded-For, so users keep their own variants; an untrusted peer's header is
    ignored (its own address routes it)."""
    by_client = StickyAB("iris/1", "iris/2", 50, key="client")
    users = [f"203.0.113.{i}" for i in range(1, 41)]

    async def scenario(trusted: str) -> dict[str, str]:
        async with serving(registry, tmp_path / f"logs-{trusted}", inference="thread",
                           trusted_proxy=trusted) as (plane, client):
            await set_policy(registry, by_client)
            await plane.check_for_new_versions()
            got = {}
            for user in users:
                r = await client.post(PREDICT, json=rows_payload(iris.x[:1]),
                                      headers={"X-Forwarded-For": user})
                assert r.status_code == 200, r.text
                got[user] = r.headers["x-model-version"]
            return got

    behind = asyncio.run(scenario("10.1.2.3"))
    assert behind == {user: route(by_client, user).version for user in users}
    assert len(set(behind.values())) == 2  # both variants: not everyone on the proxy's one
    untrusted = asyncio.run(scenario("192.0.2.1"))
    assert set(untrusted.values()) == {route(by_client, "10.1.2.3").version}


def test_blue_green_switches_within_one_poll_without_loading(registry: Registry,
                                                            iris: IrisModels,
                                                            tmp_path: Path) -> None:
    poll = 0.2
    blue_green = BlueGreen("iris/1", "iris/2")

    async def scenario() -> None:
        async with serving(registry, tmp_path / "logs", poll_interval_s=poll) as (plane,
                                                                                  client):
            rev = await set_policy(registry, blue_green)
            await until_revision(plane, rev, 60.0)
            table = plane.endpoints["iris"].table
            assert table is not None
            warm = dict(table.deployments)
            r = await client.post(PREDICT, json=rows_payload(iris.x[:1]))
            assert r.headers["x-model-version"] == "iris/1"
            rev = await set_policy(registry, blue_green.switched())
            took = await until_revision(plane, rev, 10.0)
            assert took < poll + 1.0, took
            table = plane.endpoints["iris"].table
            assert table is not None and table.deployments == warm  # nothing loaded
            r = await client.post(PREDICT, json=rows_payload(iris.x[:1]))
            assert r.status_code == 200 and r.headers["x-model-version"] == "iris/2"
            assert r.json()["version"] == 2

    asyncio.run(scenario())


def oip_body(x: np.ndarray, rid: str) -> dict[str, Any]:
    return {"id": rid, "inputs": [{"name": name, "shape": [len(x)], "datatype": "FP64",
                                   "data": x[:, i].tolist()} for i, name in enumerate(FEATURES)]}


@pytest.mark.parametrize("inference", ["process", "thread"])
def test_oip_may_pin_a_loaded_version(registry: Registry, iris: IrisModels, tmp_path: Path,
                                      inference: str) -> None:
    async def scenario() -> None:
        async with serving(registry, tmp_path / "logs", inference=inference) as (plane,
                                                                                 client):
            canary = Weighted.canary("iris/1", "iris/2", 1)
            await set_policy(registry, canary)
            await plane.check_for_new_versions()
            for version in (1, 2):
                r = await client.post(f"/v2/models/iris/versions/{version}/infer",
                                      json=oip_body(iris.x[:3], f"pin-{version}"))
                assert r.status_code == 200, r.text
                assert r.json()["model_version"] == str(version)
                assert r.headers["x-model-version"] == f"iris/{version}"
                out = {o["name"]: o for o in r.json()["outputs"]}["probabilities"]
                assert np.allclose(np.reshape(out["data"], out["shape"]),
                                   iris.proba(version, iris.x[:3]), atol=1e-4)
            r = await client.post("/v2/models/iris/versions/3/infer",
                                  json=oip_body(iris.x[:1], "pin-3"))
            assert r.status_code == 404, r.text
            # unpinned, the policy routes it: a key its 1 % canary leaves on iris/1
            key = next(k for k in map(str, range(100)) if route(canary, k).version == "iris/1")
            r = await client.post("/v2/models/iris/infer", json=oip_body(iris.x[:1], "any"),
                                  headers={"X-Routing-Key": key})
            assert r.status_code == 200 and r.headers["x-model-version"] == "iris/1"

    asyncio.run(scenario())


def shadow_candidates(registry: Registry, iris: IrisModels) -> None:
    """``sleepy/1`` (hangs) and ``broken/1`` (raises): python models on the iris inputs."""
    frame = pd.DataFrame(iris.x[:5], columns=FEATURES)
    for name, cls in (("sleepy", "Sleeps"), ("broken", "Raises")):
        registry.register(shipyard.package(f"serving.shadow_models:{cls}", frame, name=name))


@pytest.mark.parametrize("inference", ["process", "thread"])
def test_a_shadow_never_changes_or_fails_the_primary(registry: Registry, iris: IrisModels,
                                                     tmp_path: Path, inference: str) -> None:
    """The same requests with no shadow, a good shadow (v2), a hung one and a crashing one:
    byte-identical primary answers every time, no primary error, copies counted."""
    shadow_candidates(registry, iris)
    requests = [(f"r{i}", iris.x[50 + i:51 + i + i % 3]) for i in range(40)]

    async def send(client: httpx.AsyncClient) -> list[tuple[int, bytes, str]]:
        out = []
        for rid, rows in requests:
            r = await client.post(PREDICT, json=rows_payload(rows),
                                  headers={"X-Request-Id": rid})
            out.append((r.status_code, r.content, r.headers.get("x-model-version", "")))
        return out

    async def scenario() -> tuple[dict[str, list[tuple[int, bytes, str]]], str, float]:
        answers = {}
        async with serving(registry, tmp_path / "logs", inference=inference,
                           timeout_s=1.5) as (plane, client):
            answers["off"] = await send(client)
            for candidate in ("iris/2", "broken/1", "sleepy/1"):
                await set_policy(registry, Shadow("iris/1", candidate))
                await plane.check_for_new_versions()
                started = time.monotonic()
                answers[candidate] = await send(client)
            slowest = time.monotonic() - started
            await asyncio.sleep(2.0)  # the hung copies end (their deadline) before the close
            metrics = (await client.get("/metrics")).text
        return answers, metrics, slowest

    answers, metrics, slowest = asyncio.run(scenario())
    for candidate in ("iris/2", "broken/1", "sleepy/1"):
        assert answers[candidate] == answers["off"], candidate
    assert all(status == 200 and header == "iris/1" for status, _, header in answers["off"])
    assert slowest < 10.0  # the hung copies did not hold the primary answers back
    n = len(requests)
    assert metric(metrics, "shipyard_shadow_requests_total", outcome="answered") == n
    failed = metric(metrics, "shipyard_shadow_requests_total", outcome="failed")
    dropped = metric(metrics, "shipyard_shadow_requests_total", outcome="dropped")
    assert failed >= n and failed + dropped == 2 * n
    # the good shadow's answers are logged beside the primary's, under the primary's ids
    shadow = read_log(tmp_path / "logs", "iris", kind="shadow", inputs=False)
    rows = [r for r in shadow.to_pylist() if r["row"] == 0]
    assert sorted(r["request_id"] for r in rows) == sorted(rid for rid, _ in requests)
    assert {(r["model"], r["version"], r["variant"]) for r in rows} == {("iris", 2, "shadow")}
    # the failing shadows' copies are error records marked shadow; no primary error
    errors = read_log(tmp_path / "logs", "iris", kind="errors").to_pylist()
    assert errors and all(e["shadow"] and e["variant"] == "shadow" for e in errors)
    assert {e["model"] for e in errors} <= {"broken", "sleepy"}
    assert sum(1 for e in errors if e["model"] == "broken") == n


def test_a_pinned_version_is_the_endpoint_models_not_a_shadows(registry: Registry,
                                                               iris: IrisModels,
                                                               tmp_path: Path) -> None:
    """Beside ``iris/2`` a shadow ``broken/1`` is loaded: ``/versions/1`` asks for iris
    version 1 (not loaded), never for another model that happens to be numbered 1."""
    shadow_candidates(registry, iris)

    async def scenario() -> None:
        async with serving(registry, tmp_path / "logs", inference="thread") as (plane,
                                                                                client):
            await set_policy(registry, Shadow("iris/2", "broken/1"))
            await plane.check_for_new_versions()
            r = await client.post("/v2/models/iris/versions/1/infer",
                                  json=oip_body(iris.x[60:61], "pin-1"))
            assert r.status_code == 404, r.text
            assert "versions" not in r.json()["error"] and "version 2" in r.json()["error"]
            r = await client.get("/v2/models/iris/versions/1/ready")
            assert r.json()["ready"] is False
            assert (await client.get("/v2/models/iris/versions/1")).status_code == 404
            r = await client.post("/v2/models/iris/versions/2/infer",
                                  json=oip_body(iris.x[60:61], "pin-2"))
            assert r.status_code == 200 and r.headers["x-model-version"] == "iris/2"

    asyncio.run(scenario())
