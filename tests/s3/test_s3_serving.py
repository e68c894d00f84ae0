"""A server whose prediction log is on S3 (moto's server on 127.0.0.1): its own rows go
straight to the bucket; its inference processes, which never get the credentials, write to a
local outbox that the server uploads."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

import shipyard
from s3_server import S3Server
from shipyard.server.app import create_app
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings
from shipyard.stores.predictions import read_log


@pytest.fixture(scope="module")
def iris_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    path = tmp_path_factory.mktemp("packages") / "iris"
    shipyard.package(LogisticRegression(max_iter=1000).fit(x, y), x, name="iris").save(path)
    return path, x


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_a_server_logs_to_s3_and_its_children_never_see_the_secret(
        s3_env: S3Server, tmp_path: Path, iris_package: tuple[Path, pd.DataFrame]) -> None:
    package, x = iris_package
    bucket = s3_env.bucket()
    url = f"s3://{bucket}/prod/logs"
    home = tmp_path / "home"
    plane = DataPlane(ServeConfig(endpoints=(EndpointConfig(name="iris", model=str(package)),),
                                  log_dir=url, flush_interval_s=0.2),
                      Settings.from_env({"SHIPYARD_HOME": str(home)}))
    ids = []
    with TestClient(create_app(plane)) as client:
        (deployment,) = plane.endpoints["iris"].routes().deployments.values()
        assert deployment.process is not None  # inference in a child process
        child = _environ(deployment.process.proc.pid)
        assert not any(name.startswith("AWS_") for name in child)
        assert s3_env.secret_key not in "\0".join(child.values())

        for start in range(0, 30, 10):
            rows = x.iloc[start:start + 10]
            answer = client.post("/v1/endpoints/iris/predict",
                                 json={"instances": rows.to_dict("records")})
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["request_id"])
        labelled = client.post("/v1/endpoints/iris/feedback",
                               json={"request_id": ids[0], "labels": [0] * 10})
        assert labelled.status_code == 200, labelled.text

    predictions = read_log(url, "iris")
    assert sorted(set(predictions["request_id"].to_pylist())) == sorted(ids)
    assert predictions.num_rows == 30
    assert read_log(url, "iris", kind="feedback")["request_id"].to_pylist() == [ids[0]] * 10

    keys = s3_env.keys(bucket)
    assert {k.split("/")[2] for k in keys} == {"predictions", "feedback"}
    assert all(k.startswith("prod/logs/") and k.endswith(".parquet") for k in keys)
    # the outbox is empty once the server stopped: every segment was uploaded
    outbox = list(home.glob("remote-logs/*/outbox"))
    assert len(outbox) == 1 and not list(outbox[0].rglob("*.parquet"))

    # another server on the same log (nothing in its memory) finds answered ids on S3
    again = DataPlane(ServeConfig(endpoints=(EndpointConfig(name="iris", model=str(package)),),
                                  log_dir=url, flush_interval_s=0.2),
                      Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home2")}))
    with TestClient(create_app(again)) as client:
        found = client.post("/v1/endpoints/iris/feedback",
                            json={"request_id": ids[1], "labels": [1] * 10})
        assert found.status_code == 200, found.text
        forged = client.post("/v1/endpoints/iris/feedback",
                             json={"request_id": "never-answered", "label": 0})
        assert forged.status_code == 404
    labels = read_log(url, "iris", kind="feedback")["request_id"].to_pylist()
    assert labels == [ids[0]] * 10 + [ids[1]] * 10


def test_a_killed_inference_process_loses_no_row_of_a_log_on_s3(
        s3_env: S3Server, tmp_path: Path, iris_package: tuple[Path, pd.DataFrame]) -> None:
    """Its spool (local) is replayed into the outbox, and the server uploads that too."""
    package, x = iris_package
    bucket = s3_env.bucket()
    url = f"s3://{bucket}/logs"
    plane = DataPlane(ServeConfig(endpoints=(EndpointConfig(name="iris", model=str(package)),),
                                  log_dir=url, flush_interval_s=30.0),  # nothing flushed
                      Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")}))
    answered = []
    with TestClient(create_app(plane)) as client:
        def predict(n: int) -> None:
            answer = client.post("/v1/endpoints/iris/predict", headers={"X-Request-Id": f"r{n}"},
                                 json={"instances": x.iloc[n:n + 1].to_dict("records")})
            assert answer.status_code == 200, answer.text
            answered.append(f"r{n}")

        for n in range(5):
            predict(n)
        (deployment,) = plane.endpoints["iris"].routes().deployments.values()
        process = deployment.process
        assert process is not None
        first = process.proc.pid
        process.proc.kill()
        deadline = time.monotonic() + 60
        while not (process.alive and process.proc.pid != first):  # the watcher restarts it
            assert time.monotonic() < deadline, "no new inference process"
            time.sleep(0.05)
        for n in range(5, 8):
            predict(n)
    logged = read_log(url, "iris")["request_id"].to_pylist()
    assert sorted(logged) == sorted(answered)  # each exactly once
    assert plane.log_stats().dropped_rows == 0
