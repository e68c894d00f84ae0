"""Fixtures of the rollout-controller tests: a registry holding two iris versions, a fake
clock, and a writer of synthetic prediction-log traffic (rows, errors, feedback) for them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from registry.helpers import FEATURES, open_registry
from shipyard.registry import Registry
from shipyard.stores.feedback import FeedbackRecord
from shipyard.stores.predictions import ErrorRecord, PredictionBatch, PredictionLog

T0 = 1_700_000_000.0
ENDPOINT = "iris"
CLASSES = (0, 1, 2)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Behaviour:
    """How one version answers: its share of failed requests (status 500), latency, accuracy
    on labelled rows, or one constant answer."""

    errors: float = 0.0
    latency_ms: float = 10.0
    accuracy: float = 0.9
    constant: int | None = None


class Traffic:
    """Writes synthetic traffic of the endpoint through the real `PredictionLog`."""

    def __init__(self, root: Path, seed: int = 0) -> None:
        self.root = root
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def write(self, version: str, n: int, since: float, until: float, *,
              behaviour: Behaviour | None = None, variant: str = "stable", revision: int = 1,
              labelled: float = 0.0, kind: str = "predictions",
              ids: list[str] | None = None) -> list[str]:
        """``n`` one-row requests of ``version`` spread over [since, until); the ids."""
        how = behaviour or Behaviour()
        if n <= 0:
            return []
        model, number = version.split("/")
        failed = round(n * how.errors)
        answered = n - failed
        ts = np.linspace(since, until, n, endpoint=False) + 0.001
        if ids is None:
            ids = [f"r{self.count + i}" for i in range(n)]
            self.count += n
        log = PredictionLog(self.root)
        truth = self.rng.integers(0, 3, answered)
        right = np.zeros(answered, dtype=bool)  # exactly ``accuracy`` of the rows right
        right[self.rng.permutation(answered)[:round(answered * how.accuracy)]] = True
        labels = np.where(right, truth, (truth + 1) % 3)
        if how.constant is not None:
            labels = np.full(answered, how.constant)
        probabilities = np.full((answered, 3), 0.1)
        probabilities[np.arange(answered), labels] = 0.8
        keys = [f"user-{i}" for i in ids]
        log.append(PredictionBatch(
            request_ids=ids[failed:], row_counts=[1] * answered,
            latency_ms=self.rng.normal(how.latency_ms, how.latency_ms / 10, answered).tolist(),
            routing_keys=keys[failed:], ts=ts[failed:].tolist(), endpoint=ENDPOINT,
            model=model, version=int(number),
            inputs={f: self.rng.normal(3.0, 1.0, answered) for f in FEATURES},
            outputs={"label": labels, "probabilities": probabilities},
            class_labels=CLASSES, variants=[variant] * answered,
            policy_revisions=[revision] * answered, kind=kind))  # type: ignore[arg-type]
        for i in range(failed):
            log.append(ErrorRecord(ts=float(ts[i]), endpoint=ENDPOINT, model=model,
                                   version=int(number), variant=variant,
                                   policy_revision=revision, request_id=ids[i], status=500,
                                   latency_ms=how.latency_ms, routing_key=keys[i]))
        for i in range(round(answered * labelled)):
            log.append(FeedbackRecord(ids[failed + i], float(ts[failed + i]) + 1.0, ENDPOINT,
                                      [int(truth[i])]))
        log.close()
        return ids


@pytest.fixture(scope="session")
def iris_packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """Two iris classifiers (class labels 0, 1, 2): the stable version and the candidate."""
    x, y = load_iris(return_X_y=True, as_frame=True)
    x.columns = FEATURES
    return tuple(shipyard.package(LogisticRegression(C=c, max_iter=1000).fit(x, y), x,
                                  name=ENDPOINT) for c in (1.0, 0.1))  # type: ignore[return-value]


def register_both(registry: Registry, packages: tuple[Any, Any]) -> None:
    for package in packages:
        registry.register(package)


@pytest.fixture
def reg(tmp_path: Path, iris_packages: tuple[Any, Any]) -> Iterator[Registry]:
    """A SQLite registry with iris/1 and iris/2."""
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path,
                             auto_upgrade=True)
    register_both(registry, iris_packages)
    yield registry
    registry.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own (skipped when no server answers)."""
    from registry.conftest import DEFAULT_POSTGRES_URL, PostgresServer

    server = PostgresServer(os.environ.get("SHIPYARD_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    try:
        server.connect()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL is unreachable: {type(exc).__name__}")
    name = server.create(prefix="shipyard_rollouts")
    try:
        yield server.url_for(name)
    finally:
        server.drop(name)
        server.admin.dispose()
