"""The registry's artifact store on a real S3 server (moto's, on 127.0.0.1): register a
package, fetch it, and serve a ``models:/`` endpoint whose files come from the bucket."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

import shipyard
from s3_server import S3Server
from shipyard.registry import Registry
from shipyard.server.app import create_app
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, LogisticRegression, shipyard.Package]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    return x, model, shipyard.package(model, x, name="iris")


def test_register_fetch_and_serve_from_s3(s3_env: S3Server, tmp_path: Path,
                                          iris: tuple[pd.DataFrame, LogisticRegression,
                                                      shipyard.Package]) -> None:
    x, model, package = iris
    bucket = s3_env.bucket()
    settings = Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")})
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}",
                        artifacts=f"s3://{bucket}/team/artifacts", actor="tester",
                        settings=settings)
    try:
        registry.register(package, alias="production")

        # every file of the package is one object under the prefix, named by its SHA-256
        shas = sorted({f.sha256 for f in package.manifest.files})
        assert s3_env.keys(bucket) == [f"team/artifacts/sha256/{s[:2]}/{s}" for s in shas]

        fetched = registry.fetch("iris@production", tmp_path / "fetched")
        np.testing.assert_array_equal(shipyard.load(fetched).predict(x).predictions,
                                      model.predict(x))

        plane = DataPlane(ServeConfig(endpoints=(EndpointConfig(
            name="iris", model="models:/iris@production"),),
            log_dir=str(tmp_path / "logs"), rollout_controller=False), settings,
            registry=registry)
        rows = x.head(7)
        with TestClient(create_app(plane)) as client:
            answer = client.post("/v1/endpoints/iris/predict", json={
                "inputs": {name: rows[name].tolist() for name in rows.columns}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == model.predict(rows).tolist()
    finally:
        registry.close()
