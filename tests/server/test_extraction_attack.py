"""Acceptance: a simulated model-extraction attack against a simulated normal client,
through a real ``shipyard serve`` with API keys in serve.yaml writing a real prediction log,
then ``shipyard monitor run``: the two attacking keys (one sending distinct inputs drawn
uniformly over the feature ranges, one bisecting between differently-labelled points to find
the decision boundary) are flagged, their alert rules fire and ``/metrics`` shows their
scores; the normal client (iris rows resampled with small noise) is not flagged."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import shipyard
from server.helpers import LiveServer, live_server, metric, metric_samples
from shipyard.cli.main import app
from shipyard.stores.predictions import NothingLoggedError, read_log

KEYS = {"shop": "shop-secret-4f1c", "scraper": "scraper-secret-9a2e",
        "prober": "prober-secret-77d0", "tiny": "tiny-secret-0b3a"}
RULES = ["extraction_score > 0.8", "extraction_score(shop) > 0.8",
         "extraction_score(scraper) > 0.8", "extraction_score(prober) > 0.8"]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, np.ndarray]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    path = tmp_path_factory.mktemp("pkg") / "iris"
    shipyard.package(model, x, name="iris").save(path)
    return path, x, y.to_numpy()


@pytest.fixture(scope="module")
def server(iris, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    tmp = tmp_path_factory.mktemp("attack")
    config = tmp / "serve.yaml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "log_dir": str(tmp / "serve-logs"),  # where live_server's --log-dir points
        "flush_interval_s": 0.2, "api_keys": KEYS, "monitor": {"rules": RULES},
        "endpoints": [{"name": "iris", "model": str(iris[0])}]}))
    with live_server(tmp, args=["--config", str(config)]) as live:
        yield live, config


def predict(client: httpx.Client, key: str, rows: np.ndarray, columns: list[str]) -> Any:
    response = client.post("/v1/endpoints/iris/predict",
                           json={"inputs": {c: rows[:, i].tolist()
                                            for i, c in enumerate(columns)}},
                           headers={"Authorization": f"Bearer {KEYS[key]}"})
    assert response.status_code == 200, response.text
    return response.json()


def normal_client(client: httpx.Client, x: pd.DataFrame, rng: np.random.Generator) -> int:
    """Iris rows resampled, with noise of 2% of each feature's spread: 300 rows."""
    data = x.to_numpy()
    noise = 0.02 * data.std(axis=0)
    for _ in range(30):
        rows = data[rng.integers(0, len(data), 10)] + rng.normal(0.0, noise, (10, 4))
        predict(client, "shop", rows, list(x.columns))
    return 300


def uniform_scraper(client: httpx.Client, x: pd.DataFrame, rng: np.random.Generator) -> int:
    """Distinct rows drawn uniformly over each feature's [min, max]: 600 rows."""
    low, high = x.min().to_numpy(), x.max().to_numpy()
    for _ in range(60):
        predict(client, "scraper", rng.uniform(low, high, (10, 4)), list(x.columns))
    return 600


def boundary_prober(client: httpx.Client, x: pd.DataFrame, y: np.ndarray,
                    rng: np.random.Generator) -> int:
    """Bisection between 20 pairs of differently-labelled iris rows, 15 rounds (all pairs'
    midpoints in one request per round): 300 rows."""
    data = x.to_numpy()
    a = data[rng.choice(np.flatnonzero(y == 1), 20)]
    b = data[rng.choice(np.flatnonzero(y == 2), 20)]
    labels_a = np.array(predict(client, "prober", a, list(x.columns))["predictions"])
    for _ in range(15):
        middle = (a + b) / 2.0
        labels = np.array(predict(client, "prober", middle, list(x.columns))["predictions"])
        same = labels == labels_a
        a = np.where(same[:, None], middle, a)
        b = np.where(same[:, None], b, middle)
    return 20 + 15 * 20


def logged(root: Path, rows: int, limit_s: float = 30.0) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            table = read_log(root, "iris")
            if table.num_rows >= rows:
                return table
        except NothingLoggedError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the log never reached {rows} rows")


def test_the_attacking_keys_are_flagged_and_the_normal_client_is_not(server, iris) -> None:
    live, config = server
    _, x, y = iris
    rng = np.random.default_rng(17)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        sent = normal_client(client, x, rng)
        sent += uniform_scraper(client, x, rng)
        sent += boundary_prober(client, x, y, rng)
        for _ in range(3):  # a key too small to judge
            predict(client, "tiny", rng.uniform(x.min(), x.max(), (5, 4)), list(x.columns))
        sent += 15
        unauthorised = client.post("/v1/endpoints/iris/predict",
                                   json={"inputs": {c: [1.0] for c in x.columns}})
        assert unauthorised.status_code == 401

    table = logged(live.log_dir, sent)
    assert table.num_rows == sent
    names = table["api_key"].to_pylist()
    assert {n: names.count(n) for n in set(names)} == {"shop": 300, "scraper": 600,
                                                       "prober": 320, "tiny": 15}
    assert not any(secret in str(table.to_pylist()) for secret in KEYS.values())

    result = CliRunner().invoke(app, ["monitor", "run", "iris", "--config", str(config),
                                      "--rows", "5000", "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)
    print(json.dumps(run["windows"][0]["extraction"], indent=1))  # the figures, with -s
    (record,) = run["windows"]
    extraction = record["extraction"]
    keys = extraction["keys"]
    assert set(keys) == {"shop", "scraper", "prober"}
    assert extraction["unscored"] == {"tiny": 15}
    assert extraction["flagged"] == ["prober", "scraper"]
    assert keys["shop"]["score"] < 0.5 and not keys["shop"]["flagged"]
    assert keys["scraper"]["score"] >= extraction["threshold"] == 0.8
    assert keys["scraper"]["parts"]["uniformity"] >= 0.8
    assert keys["prober"]["score"] >= 0.8 and keys["prober"]["parts"]["boundary"] >= 0.8
    metrics = record["metrics"]
    assert metrics["extraction_score"] == max(k["score"] for k in keys.values())
    assert metrics["extraction_flagged_keys"] == 2
    fired = {event["rule"] for event in run["alerts"] if event["state"] == "firing"}
    assert fired == {"extraction_score > 0.8", "extraction_score(scraper) > 0.8",
                     "extraction_score(prober) > 0.8"}

    shown = CliRunner().invoke(app, ["monitor", "status", "iris", "--config", str(config)],
                               env={"COLUMNS": "160"})
    assert shown.exit_code == 0, shown.output
    assert "model extraction by API key (2 flagged" in shown.output
    assert "not scored (under 100 rows): tiny (15)" in shown.output

    scrape = httpx.get(f"{live.url}/metrics",
                       headers={"Authorization": f"Bearer {KEYS['shop']}"}).text
    samples = metric_samples(scrape)
    for key in ("shop", "scraper", "prober"):
        assert metric(samples, "shipyard_extraction_score", endpoint="iris",
                      key=key) == keys[key]["score"]
    assert metric(samples, "shipyard_extraction_part", endpoint="iris", key="prober",
                  part="boundary") == keys["prober"]["parts"]["boundary"]
    assert metric(samples, "shipyard_alerts_firing", endpoint="iris",
                  rule="extraction_score(scraper) > 0.8") == 1.0
    assert metric(samples, "shipyard_alerts_firing", endpoint="iris",
                  rule="extraction_score(shop) > 0.8") == 0.0
