"""An endpoint's output policy holds under a traffic split too, where the split's versions
answer from one joint inference process: answers rounded (or labels only), the log true."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from serving.helpers import IrisModels, rows_payload
from serving.test_routing_serving import (  # noqa: F401
    PREDICT,
    registry,
    serving,
    set_policy,
)
from shipyard.registry import Registry
from shipyard.routing import StickyAB
from shipyard.stores.predictions import read_log

pytestmark = pytest.mark.usefixtures("registry")
AB = StickyAB("iris/1", "iris/2", 50, salt="defence", key="header:X-User-Id")


def test_a_split_answered_by_its_joint_process_follows_the_output_policy(
        registry: Registry, iris: IrisModels, tmp_path: Path) -> None:  # noqa: F811
    rows = iris.x[40:60]

    async def scenario() -> list[tuple[int, list[dict[str, float]]]]:
        answers = []
        async with serving(registry, tmp_path / "logs", round=2) as (plane, client):
            await set_policy(registry, AB)
            await plane.check_for_new_versions()
            table = plane.endpoints["iris"].table
            assert table is not None and table.joint is not None
            for user in range(6):
                r = await client.post(PREDICT, json=rows_payload(rows),
                                      headers={"X-User-Id": f"user{user}"})
                assert r.status_code == 200, r.text
                answers.append((r.json()["version"], r.json()["probabilities"]))
        return answers

    answers = asyncio.run(scenario())
    assert len({version for version, _ in answers}) == 2  # both versions answered
    for version, probabilities in answers:
        shown = np.array([[row[str(c)] for c in range(3)] for row in probabilities])
        assert np.allclose(shown, np.round(iris.proba(version, rows), 2), atol=1e-12), version
        assert np.array_equal(shown, np.round(shown, 2))
    logged = read_log(tmp_path / "logs", "iris").to_pylist()
    proba = np.array([[r[f"output.proba.{c}"] for c in range(3)] for r in logged])
    assert len(proba) == 120 and not np.array_equal(proba, np.round(proba, 2))
