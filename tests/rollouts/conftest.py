"""Fixtures of the end-to-end rollout tests: three close iris classifiers (so a healthy
canary passes the drift check: they differ in regularisation only), and fleets of real
``shipyard serve`` processes on a registry holding them, with the endpoint deployed on v1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from rollouts.harness import ENDPOINT, Fleet
from service.conftest import postgres_url  # noqa: F401  (a fresh database per test)
from serving.helpers import FEATURES

Packages = dict[int, Any]
MakeFleet = Callable[..., Fleet]


@pytest.fixture(scope="session")
def iris_x() -> np.ndarray:
    return np.asarray(load_iris().data)


@pytest.fixture(scope="session")
def packages(iris_x: np.ndarray) -> Packages:
    """iris/1, iris/2, iris/3: nearly the same predictions, different versions."""
    import pandas as pd

    x = pd.DataFrame(iris_x, columns=FEATURES)
    y = load_iris().target
    return {v: shipyard.package(LogisticRegression(C=c, max_iter=2000).fit(x, y), x,
                                name=ENDPOINT)
            for v, c in ((1, 1.0), (2, 0.8), (3, 0.6))}


@pytest.fixture
def make_fleet(tmp_path: Path, packages: Packages) -> Iterator[MakeFleet]:
    """``make_fleet(registry_url=None, **options)``: a fleet (no server started yet) on a
    registry holding iris/1 (alias production, deployed), iris/2 and iris/3."""
    fleets: list[Fleet] = []

    def make(registry_url: str | None = None, **options: Any) -> Fleet:
        fleet = Fleet(tmp_path / f"fleet{len(fleets)}", registry_url, **options)
        fleets.append(fleet)
        for version in sorted(packages):
            fleet.registry.register(packages[version],
                                    alias="production" if version == 1 else None)
        fleet.registry.rollouts.deploy(ENDPOINT, "iris/1", reason="first version")
        return fleet

    yield make
    for fleet in fleets:
        fleet.close()
