"""Fixtures for the server tests: small packaged models and apps served in-process.

Packages are built once per session (per xdist worker): ``iris`` (tabular, all FP64),
``customers`` (a ColumnTransformer pipeline over int, float and string columns), ``cancer``
(a tensor model: one float32 input of shape [N, 30]), ``gated`` (a custom Python model the
overload tests can hold inside ``predict``) and ``scorer`` (a custom model with two named
outputs and no label).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from starlette.testclient import TestClient

import shipyard
from conftest import column_pipeline, make_customers
from server import custom_models
from server.helpers import Served
from shipyard.server.app import create_app
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings


class Packages(NamedTuple):
    iris: Path
    customers: Path
    cancer: Path
    gated: Path
    scorer: Path
    iris_x: pd.DataFrame
    customers_x: pd.DataFrame
    cancer_x: np.ndarray


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    root = tmp_path_factory.mktemp("packages")

    iris_x, iris_y = load_iris(return_X_y=True, as_frame=True)
    iris = LogisticRegression(max_iter=1000).fit(iris_x, iris_y)
    shipyard.package(iris, iris_x, name="iris").save(root / "iris")

    frame = make_customers(rows=300)
    customers_x = frame.drop(columns="target")
    customers = column_pipeline(OneHotEncoder(handle_unknown="ignore"))
    customers.fit(customers_x, frame["target"])
    shipyard.package(customers, customers_x, name="customers").save(root / "customers")

    cancer_x, cancer_y = load_breast_cancer(return_X_y=True)
    cancer_x = cancer_x.astype(np.float32)
    cancer = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cancer.fit(cancer_x, cancer_y)
    shipyard.package(cancer, cancer_x, name="cancer").save(root / "cancer")

    sample = pd.DataFrame({"x": [1.0, 2.5, -3.0], "hold": [0, 0, 0]})
    gated = shipyard.package("server.custom_models:GatedDoubler", sample, name="gated")
    gated.save(root / "gated")
    two = pd.DataFrame({"a": [1.0, -2.0], "b": [0.5, 0.1]})
    shipyard.package("server.custom_models:ScoreAndFlag", two, name="scorer").save(
        root / "scorer")

    return Packages(root / "iris", root / "customers", root / "cancer", root / "gated",
                    root / "scorer", iris_x, customers_x, cancer_x)


@contextmanager
def serving(home: Path, log_dir: Path, *endpoints: EndpointConfig,
            **options: Any) -> Iterator[Served]:
    """The app's lifespan (models loaded and warmed, log writer started) for the block."""
    config = ServeConfig(endpoints=tuple(endpoints), log_dir=str(log_dir), **options)
    plane = DataPlane(config, Settings.from_env({"SHIPYARD_HOME": str(home)}))
    with TestClient(create_app(plane)) as client:
        yield Served(client, plane, log_dir)


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., Any]:
    """``with serve(EndpointConfig(...), ..., **ServeConfig options) as s:`` runs the app's
    lifespan (models loaded and warmed, log writer started) for the block and stops it after,
    so the prediction log is flushed once the block ends."""
    counter = iter(range(1000))

    @contextmanager
    def run(*endpoints: EndpointConfig, **options: Any) -> Iterator[Served]:
        with serving(tmp_path / "home", tmp_path / f"logs{next(counter)}", *endpoints,
                     **options) as served:
            yield served

    return run


@pytest.fixture(scope="module")
def served_iris(packages: Packages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One app serving ``iris`` (default options) for a whole module, for requests the server
    refuses before any model runs (malformed bodies, wrong envelopes, undecodable tensors):
    they change nothing a later request could see, so the cases share one app rather than
    starting one (and its inference process) each."""
    tmp = tmp_path_factory.mktemp("served-iris")
    with serving(tmp / "home", tmp / "logs",
                 EndpointConfig(name="iris", model=str(packages.iris))) as served:
        yield served


@pytest.fixture
def gate() -> Iterator[None]:
    """Closed gate for the gated model; opened at teardown so held model calls finish."""
    custom_models.GATE.clear()
    custom_models.ENTERED.clear()
    yield
    custom_models.GATE.set()
