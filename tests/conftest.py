"""Shared data for the packaging tests: everything is generated or ships with scikit-learn."""

import os

# Each pytest-xdist worker gets its share of the cores for the numeric libraries' thread pools
# (OpenMP: torch, LightGBM, XGBoost, scikit-learn; OpenBLAS; MKL). With `-n 2` on 2 cores, two
# workers each running pools as wide as the machine oversubscribe it, and OpenMP's spin-waits
# then make model training several times slower (the setup of tests/test_optimize.py: 31 s
# instead of 4). Set before numpy, torch & co. are first imported; the servers and commands
# the tests start inherit it. A value already in the environment wins.
if _workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, (os.cpu_count() or 1) // int(_workers)))
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _share)

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import shipyard
from s3_server import S3Server, apply_env, running_s3_server

CITIES = ["paris", "lyon", "nice", "lille", "brest"]
NUMERIC = ["age", "income", "visits"]
CATEGORICAL = ["city", "plan"]


class Split(NamedTuple):
    x_train: Any
    x_test: Any
    y_train: Any
    y_test: Any


def make_customers(rows: int = 900, seed: int = 0) -> pd.DataFrame:
    """A raw table as clients send it: int, float and string columns, plus a 3-class target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, rows),
        "income": rng.normal(50.0, 15.0, rows).round(2),
        "visits": rng.poisson(3, rows),
        "city": rng.choice(CITIES, rows),
        "plan": rng.choice(["basic", "pro", "team"], rows),
    })
    score = (0.04 * (frame["age"] - 45) + 0.06 * (frame["income"] - 50)
             + frame["city"].map(dict(zip(CITIES, [1.5, -1.0, 0.5, 0.0, -0.5], strict=True)))
             + frame["plan"].map({"basic": -1.0, "pro": 0.5, "team": 1.0})
             + rng.normal(0.0, 0.5, rows))
    frame["target"] = np.digitize(score, [-0.7, 0.7])
    return frame


def column_pipeline(encoder: Any) -> Pipeline:
    """StandardScaler on the numeric columns, ``encoder`` on the string ones, then a classifier."""
    pre = ColumnTransformer([("num", StandardScaler(), NUMERIC), ("cat", encoder, CATEGORICAL)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000))])


@pytest.fixture(scope="session")
def customers() -> Split:
    frame = make_customers()
    x, y = frame.drop(columns="target"), frame["target"]
    return Split(*train_test_split(x, y, test_size=0.3, random_state=0, stratify=y))


@pytest.fixture(scope="session")
def customer_model(customers: Split) -> tuple[Pipeline, shipyard.Package]:
    """The one-hot pipeline fitted on the training rows and packaged (ONNX) with them."""
    model = column_pipeline(OneHotEncoder(handle_unknown="ignore"))
    model.fit(customers.x_train, customers.y_train)
    return model, shipyard.package(model, customers.x_train, name="customers")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (moto's) on 127.0.0.1 for the session (``s3_server.py``)."""
    with running_s3_server(tmp_path_factory.mktemp("s3-server")) as server:
        yield server


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, with this test's environment pointing at it (``AWS_ENDPOINT_URL``,
    credentials, region)."""
    apply_env(monkeypatch, s3_server)
    return s3_server
