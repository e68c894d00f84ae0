"""A registry with three iris versions (same inputs, different C), under a SHIPYARD_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard.registry import Registry
from shipyard.settings import Settings

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class Zoo:
    home: Path  # SHIPYARD_HOME of the registry
    x: pd.DataFrame
    packages: dict[int, Path]  # version -> the package directory it was registered from


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    root = tmp_path_factory.mktemp("export-zoo")
    data = load_iris(as_frame=True)
    x = data.data.set_axis(FEATURES, axis=1)
    packages = {}
    with Registry(settings=Settings.from_env({"SHIPYARD_HOME": str(root / "home")})) as reg:
        for version, c in ((1, 1.0), (2, 0.01), (3, 0.1)):
            model = LogisticRegression(C=c, max_iter=2000).fit(x, data.target)
            path = shipyard.package(model, x, name="iris").save(root / f"iris-{version}")
            assert reg.register(path).version == version
            packages[version] = path
        reg.set_alias("iris", "production", 3)
    return Zoo(root / "home", x, packages)


@pytest.fixture
def registry(zoo: Zoo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """The zoo's registry, also what the CLI opens (SHIPYARD_HOME); policies set by a test
    are its own: every endpoint name a test uses is unique."""
    monkeypatch.setenv("SHIPYARD_HOME", str(zoo.home))
    for var in ("SHIPYARD_REGISTRY_URL", "SHIPYARD_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    with Registry(settings=Settings.from_env({"SHIPYARD_HOME": str(zoo.home)})) as reg:
        yield reg
