"""A version that a policy change leaves out of the warm set stays loaded, routed to by
nothing, for ``retain_previous_s``: a policy that needs it again by then (a rollback after a
promote) takes it without a load; past that time, at the next swap, or at shutdown it is
drained and closed (no inference process left behind). The app over httpx's ASGI transport,
the watcher's pass called by hand, loads counted at the deployment builder."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.helpers import IrisModels, metric, rows_payload
from serving.test_routing_serving import PREDICT, serving, set_policy
from shipyard.registry import Registry
from shipyard.routing import Policy, Shadow, Single, Weighted
from shipyard.runtimes.process import InferenceProcess
from shipyard.service.config import ConfigError, ServeConfig
from shipyard.service.dataplane import DataPlane, Deployment
from shipyard.settings import Settings

CONFIG_ERROR = "retain_previous_s must be 0"


@pytest.fixture
def three(tmp_path: Path, iris: IrisModels) -> Iterator[Registry]:
    """A registry holding iris/1 (alias production: what the endpoint serves), 2 and 3."""
    reg = Registry(url=f"sqlite:///{tmp_path}/three.db", artifacts=tmp_path / "blobs",
                   settings=Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")}),
                   actor="tester")
    for version in (1, 2, 3):
        reg.register(iris.packages[version], alias="production" if version == 1 else None)
    yield reg
    reg.close()


def count_builds(plane: DataPlane) -> list[str]:
    """The sources the plane's builder loads from now on, in order."""
    built: list[str] = []
    build = plane.builder.build

    def counted(ep: Any, source: str, **options: Any) -> tuple[Deployment, float]:
        built.append(source)
        return build(ep, source, **options)

    plane.builder.build = counted  # type: ignore[method-assign]
    return built


async def follow(plane: DataPlane, registry: Registry, policy: Policy) -> Deployment:
    """Store ``policy``, run the watcher's pass; the endpoint's primary deployment then."""
    await set_policy(registry, policy)
    await plane.check_for_new_versions()
    current = plane.endpoints["iris"].current
    assert current is not None
    return current


def process(deployment: Deployment) -> InferenceProcess:
    assert deployment.process is not None
    return deployment.process


def stopped(deployment: Deployment) -> bool:
    return process(deployment).proc.poll() is not None


async def retained_gauge(client: httpx.AsyncClient) -> float:
    return metric((await client.get("/metrics")).text, "shipyard_retained_versions",
                  endpoint="iris")


async def answer(client: httpx.AsyncClient, iris: IrisModels) -> str:
    r = await client.post(PREDICT, json=rows_payload(iris.x[:2]))
    assert r.status_code == 200, r.text
    return r.headers["x-model-version"]


def test_a_retained_version_is_reused_without_a_load_and_closed_at_shutdown(
        three: Registry, iris: IrisModels, tmp_path: Path) -> None:
    async def scenario() -> list[Deployment]:
        async with serving(three, tmp_path / "logs") as (plane, client):
            built = count_builds(plane)
            v1 = plane.endpoints["iris"].current
            assert v1 is not None
            for _ in range(5):
                assert await answer(client, iris) == "iris/1"
            await plane.flush_log()
            logged = plane.log_stats().written_rows
            assert logged >= 5
            await follow(plane, three, Weighted.canary("iris/1", "iris/2", 50))
            v2 = await follow(plane, three, Single("iris/2"))  # the promote: v1 leaves
            assert plane.swapper.kept("iris") == [v1] and process(v1).alive
            assert await retained_gauge(client) == 1
            assert await answer(client, iris) == "iris/2"  # v1 is not routed to
            # its process's log counters still count (they never step back)
            assert plane.log_stats().written_rows >= logged
            back = await follow(plane, three, Single("iris/1"))  # the rollback
            assert back is v1 and built == ["models:/iris/2"]  # v1 was not loaded again
            assert await answer(client, iris) == "iris/1"
            assert plane.swapper.kept("iris") == [v2]  # v2 kept in turn
            # only the last replaced table's versions are kept: v2 is closed now
            v3 = await follow(plane, three, Single("iris/3"))
            assert plane.swapper.kept("iris") == [v1]
            await asyncio.gather(*plane.swapper.closing)
            assert stopped(v2) and not stopped(v1)
            return [v1, v2, v3]

    loaded = asyncio.run(scenario())
    assert all(stopped(d) for d in loaded)  # the kept v1 was closed at shutdown too


@pytest.mark.parametrize("retain_s", [0.5, 0.0])
def test_a_retained_version_is_closed_when_its_time_is_up(
        three: Registry, iris: IrisModels, tmp_path: Path, retain_s: float) -> None:
    """Kept ``retain_s`` after the swap that left it out, then drained and closed; a policy
    that needs it later loads it again. 0: closed at once, as without retention."""

    async def scenario() -> None:
        async with serving(three, tmp_path / "logs", retain_previous_s=retain_s) as (
                plane, client):
            built = count_builds(plane)
            v1 = plane.endpoints["iris"].current
            assert v1 is not None
            swapped = time.monotonic()
            await follow(plane, three, Single("iris/2"))
            kept = plane.swapper.kept("iris")
            assert kept == ([v1] if retain_s else [])
            assert await retained_gauge(client) == len(kept)
            while not stopped(v1):
                assert time.monotonic() - swapped < 30.0, "the retained v1 was never closed"
                await asyncio.sleep(0.02)
            assert time.monotonic() - swapped >= retain_s
            assert plane.swapper.kept("iris") == []
            assert await retained_gauge(client) == 0
            again = await follow(plane, three, Single("iris/1"))
            assert again is not v1 and built == ["models:/iris/2", "models:/iris/1"]
            assert await answer(client, iris) == "iris/1"

    asyncio.run(scenario())


def niceness(deployment: Deployment) -> int:
    """The CPU niceness of the deployment's inference process, read from the OS."""
    return os.getpriority(os.PRIO_PROCESS, process(deployment).proc.pid)


def test_a_shadow_candidate_runs_nicer_and_is_loaded_again_to_answer(
        three: Registry, iris: IrisModels, tmp_path: Path) -> None:
    """A shadow's candidate takes copies in a process at a lower CPU priority (the primary
    gets the CPU first); a policy that routes clients to that version loads it again at the
    server's priority, and the niced one is not reused for them."""

    async def scenario() -> None:
        async with serving(three, tmp_path / "logs") as (plane, client):
            built = count_builds(plane)
            v1 = plane.endpoints["iris"].current
            assert v1 is not None
            mine = os.getpriority(os.PRIO_PROCESS, 0)
            await follow(plane, three, Shadow("iris/1", "iris/2"))
            table = plane.endpoints["iris"].routes()
            shadow = table.deployments["iris/2"]
            assert table.primary is v1 and shadow.background and not v1.background
            assert niceness(shadow) > mine and niceness(v1) == mine
            assert await answer(client, iris) == "iris/1"
            promoted = await follow(plane, three, Single("iris/2"))
            assert promoted is not shadow and not promoted.background
            assert niceness(promoted) == mine
            assert await answer(client, iris) == "iris/2"
            # a shadow again: the kept niced candidate is not what answers now
            await follow(plane, three, Shadow("iris/2", "iris/1"))
            table = plane.endpoints["iris"].routes()
            assert table.primary is promoted and table.deployments["iris/1"].background
            assert built == ["models:/iris/2", "models:/iris/2", "models:/iris/1"]

    asyncio.run(scenario())


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan"), True, "10m"])
def test_retain_previous_s_is_checked(value: object) -> None:
    with pytest.raises(ConfigError, match=CONFIG_ERROR):
        ServeConfig.from_dict({"endpoints": [{"model": "/m/iris"}],
                               "retain_previous_s": value})
    assert ServeConfig.from_dict({"endpoints": [{"model": "/m/iris"}]}).retain_previous_s \
        == 600.0
