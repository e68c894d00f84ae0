"""A traffic split's versions answer in one joint inference process (``service/joint.py``):
one frame per batch whatever the split. Answers, the log and the metrics are as with a
process per version: each request answered by its routed version (checked against that
version's own model), each logged row under the version that answered it; a canary's steps
keep the joint process, a change of versions replaces it; killing it loses no answered row.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.helpers import IrisModels, metric, rows_payload
from serving.test_routing_serving import (  # noqa: F401
    PREDICT,
    oip_body,
    registry,
    serving,
    set_policy,
)
from shipyard.registry import Registry
from shipyard.routing import Single, StickyAB, Weighted, route
from shipyard.service.dataplane import DataPlane
from shipyard.stores.predictions import read_log

pytestmark = pytest.mark.usefixtures("registry")
AB = StickyAB("iris/1", "iris/2", 50, salt="joint", key="header:X-User-Id")


def joint_of(plane: DataPlane) -> Any:
    table = plane.endpoints["iris"].table
    assert table is not None
    return table.joint


def test_a_split_answers_from_one_joint_process_logged_per_version(
        registry: Registry, iris: IrisModels, tmp_path: Path) -> None:  # noqa: F811
    rows = iris.x[10:13]

    async def scenario() -> tuple[dict[str, tuple[str, list[float]]], str, DataPlane]:
        got: dict[str, tuple[str, list[float]]] = {}
        async with serving(registry, tmp_path / "logs") as (plane, client):
            assert joint_of(plane) is None  # a single version: no split
            await set_policy(registry, AB)
            await plane.check_for_new_versions()
            joint = joint_of(plane)
            assert joint is not None and joint.refs == ("iris/1", "iris/2")
            assert joint.process.slots == 2 and joint.process.alive

            async def send(user: int, n: int) -> None:
                r = await client.post(PREDICT, json=rows_payload(rows),
                                      headers={"X-User-Id": f"u{user}",
                                               "X-Request-Id": f"r{user}-{n}"})
                assert r.status_code == 200, r.text
                got[f"r{user}-{n}"] = (r.headers["x-model-version"],
                                       [r.json()["probabilities"][0][str(c)]
                                        for c in range(3)])

            async def infer(user: int) -> None:  # an OIP body's own id is what it answers
                r = await client.post("/v2/models/iris/infer",
                                      json=oip_body(rows, f"oip-{user}"),
                                      headers={"X-User-Id": f"u{user}"})
                assert r.status_code == 200, r.text
                assert r.headers["x-request-id"] == r.json()["id"] == f"oip-{user}"
                out = {o["name"]: o for o in r.json()["outputs"]}["probabilities"]
                got[f"oip-{user}"] = (r.headers["x-model-version"], out["data"][:3])

            async def bad(user: int) -> None:  # refused alone, its batch-mates answered
                r = await client.post(PREDICT, json={"inputs": {"nope": [1]}},
                                      headers={"X-User-Id": f"u{user}",
                                               "X-Request-Id": f"bad-{user}"})
                assert r.status_code == 422, r.text

            for n in range(3):
                await asyncio.gather(*(send(user, n) for user in range(40)),
                                     *(infer(user) for user in range(8) if n == 1),
                                     *(bad(user) for user in range(4) if n == 2))
            # the versions' own processes took no routed request: the joint one took them all
            table = plane.endpoints["iris"].routes()
            assert all(d.raw is not None and d.raw.stats.batches == 0
                       for d in table.deployments.values())
            assert joint.batcher.stats.batches > 0
            scrape = (await client.get("/metrics")).text
        return got, scrape, plane

    got, scrape, _ = asyncio.run(scenario())
    for rid, (version, first_row) in got.items():
        user = rid.split("-")[1] if rid.startswith("oip-") else rid[1:].split("-")[0]
        assert version == route(AB, f"u{user}").version, rid
        number = int(version.split("/")[1])  # answered by that version's own model
        np.testing.assert_allclose(first_row, iris.proba(number, rows)[0], rtol=1e-4)
    assert {v for v, _ in got.values()} == {"iris/1", "iris/2"}
    for v in (1, 2):  # each version's batch sizes, as with a process of its own
        assert metric(scrape, "shipyard_batch_size_rows_count", version=str(v)) > 0
    table = read_log(tmp_path / "logs", "iris", inputs=False)
    logged = Counter(zip(table.column("request_id").to_pylist(),
                         table.column("version").to_pylist(),
                         table.column("variant").to_pylist(), strict=True))
    assert len(logged) == len(got) and set(logged.values()) == {len(rows)}
    for (rid, version, variant), _ in logged.items():
        user = rid.split("-")[1] if rid.startswith("oip-") else rid[1:].split("-")[0]
        decision = route(AB, f"u{user}")
        assert (f"iris/{version}", variant) == (decision.version, decision.variant), rid
    errors = read_log(tmp_path / "logs", "iris", kind="errors").to_pylist()
    assert sorted((e["request_id"], e["status"], f"iris/{e['version']}") for e in errors) == [
        (f"bad-{u}", 422, route(AB, f"u{u}").version) for u in range(4)]


def test_canary_steps_keep_the_joint_process_and_a_version_change_replaces_it(
        registry: Registry, iris: IrisModels, tmp_path: Path) -> None:  # noqa: F811
    async def scenario() -> None:
        async with serving(registry, tmp_path / "logs") as (plane, client):
            await set_policy(registry, Weighted.canary("iris/1", "iris/2", 10))
            await plane.check_for_new_versions()
            first = joint_of(plane)
            assert first is not None
            await set_policy(registry, Weighted.canary("iris/1", "iris/2", 50))
            await plane.check_for_new_versions()
            assert joint_of(plane) is first  # same versions: not loaded again
            r = await client.post(PREDICT, json=rows_payload(iris.x[:1]),
                                  headers={"X-Routing-Key": "k"})
            assert r.status_code == 200, r.text
            await set_policy(registry, Single("iris/2"))
            await plane.check_for_new_versions()
            assert joint_of(plane) is None
            await asyncio.gather(*plane.swapper.closing)
            assert first.process.proc.poll() is not None  # stopped once replaced
            r = await client.post(PREDICT, json=rows_payload(iris.x[:1]))
            assert r.status_code == 200 and r.headers["x-model-version"] == "iris/2"

    asyncio.run(scenario())


def test_joint_inference_off_keeps_a_process_per_version(
        registry: Registry, iris: IrisModels, tmp_path: Path) -> None:  # noqa: F811
    async def scenario() -> None:
        async with serving(registry, tmp_path / "logs", joint_inference=False) as (plane,
                                                                                   client):
            await set_policy(registry, AB)
            await plane.check_for_new_versions()
            assert joint_of(plane) is None
            for user in range(20):
                r = await client.post(PREDICT, json=rows_payload(iris.x[:1]),
                                      headers={"X-User-Id": f"u{user}"})
                assert r.headers["x-model-version"] == route(AB, f"u{user}").version
            table = plane.endpoints["iris"].routes()
            assert all(d.raw is not None and d.raw.stats.batches > 0
                       for d in table.deployments.values())

    asyncio.run(scenario())


def test_killing_the_joint_process_loses_no_answered_row(
        registry: Registry, iris: IrisModels, tmp_path: Path) -> None:  # noqa: F811
    answered: dict[str, str] = {}
    ids = itertools.count()

    async def scenario() -> float:
        async with serving(registry, tmp_path / "logs") as (plane, client):
            await set_policy(registry, AB)
            await plane.check_for_new_versions()
            joint = joint_of(plane)
            stop = asyncio.Event()

            async def user(u: int) -> None:
                while not stop.is_set():
                    rid = f"r{u}-{next(ids)}"
                    r = await client.post(PREDICT, json=rows_payload(iris.x[u:u + 1]),
                                          headers={"X-User-Id": f"u{u}",
                                                   "X-Request-Id": rid})
                    if r.status_code == 200:
                        answered[rid] = r.headers["x-model-version"]
                    else:
                        assert r.status_code == 503, r.text  # the batch the kill cut

            users = [asyncio.ensure_future(user(u)) for u in range(6)]
            try:
                for _ in range(2):
                    await asyncio.sleep(0.6)
                    pid = joint.process.proc.pid
                    os.kill(pid, signal.SIGKILL)
                    while joint.process.proc.pid == pid or not joint.process.alive:
                        await asyncio.sleep(0.02)
                await asyncio.sleep(0.5)
            finally:
                stop.set()
                await asyncio.gather(*users)
            assert joint.process.restarts == 2
            await plane.flush_log()
            await plane.swapper.release()
        return plane.log_stats().dropped_rows

    dropped = asyncio.run(scenario())
    table = read_log(tmp_path / "logs", "iris", inputs=False)
    rows = Counter(zip(table.column("request_id").to_pylist(),
                       table.column("version").to_pylist(), strict=True))
    assert len(answered) > 50 and max(rows.values()) == 1
    # every answered request logged once, under the version that answered it
    assert {rid: f"iris/{v}" for rid, v in rows} == answered
    assert dropped == 0
    assert not list((tmp_path / "logs").rglob("*.spool"))
