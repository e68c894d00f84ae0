"""A tabular classifier package and input tables with known bad rows, for the batch tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

import shipyard
from conftest import column_pipeline, make_customers

# row -> what is wrong with it, and the reason validation gives for that row alone
BAD_ROWS = {
    3: ("age", np.nan, "age: 1 missing value(s) (null/NaN), but this input is not nullable"),
    250: ("visits", 2.5, "visits: expected int64, got non-integer numbers"),
    777: ("city", None, "city: 1 missing value(s) (null/NaN), but this input is not nullable"),
    1999: ("age", np.nan, "age: 1 missing value(s) (null/NaN), but this input is not nullable"),
}


@pytest.fixture(autouse=True)
def _process_settings_stay_in_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """``shipyard predict`` run in-process sets its libraries' settings in the environment
    (cli/predict.py); undone after each test, so no later one inherits them."""
    for name in ("MIMALLOC_PURGE_DELAY", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = make_customers(600)
    x, y = frame.drop(columns="target"), frame["target"]
    model = column_pipeline(OneHotEncoder(handle_unknown="ignore")).fit(x, y)
    path = tmp_path_factory.mktemp("pkg") / "customers"
    shipyard.package(model, x, name="customers").save(path)
    return path


def customers_with_ids(rows: int, seed: int = 1) -> pd.DataFrame:
    data = make_customers(rows, seed=seed).drop(columns="target")
    data.insert(0, "id", np.arange(rows) + 1000)
    return data


def with_bad_rows(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with the rows of BAD_ROWS spoiled (visits becomes a float column)."""
    assert max(BAD_ROWS) < len(data)
    data = data.astype({"visits": "float64", "age": "float64"}).copy()
    for row, (column, value, _) in BAD_ROWS.items():
        data.loc[row, column] = value
    return data


def expected(package: Path, data: pd.DataFrame, passthrough: list[str]) -> pd.DataFrame:
    """What ``shipyard.load(...).predict`` gives on ``data``, as the batch output lays it
    out: the passthrough columns, then ``prediction`` and ``proba_<class>``."""
    model = shipyard.load(package)
    features = data[[c.name for c in model.signature.inputs]]
    out = model.predict(features).to_pandas()
    out.index = data.index
    return pd.concat([data[passthrough], out], axis=1).reset_index(drop=True)


@pytest.fixture(scope="session")
def tensor_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A model packaged from a numpy matrix (a tensor input of shape (-1, 6)), as the bench
    model is, and rows for it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    path = tmp_path_factory.mktemp("tensor") / "tensor"
    shipyard.package(LogisticRegression().fit(x, y), x, name="tensor").save(path)
    return path, rng.normal(size=(3000, 6))


@pytest.fixture(scope="session")
def ray_session() -> Any:
    """One local Ray (2 CPUs) for the session's Ray tests. Missing Ray fails under CI=true."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("Ray is not installed; CI installs the [ray] extra")
        pytest.skip("Ray is not installed (pip install 'shipyard-ml[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
