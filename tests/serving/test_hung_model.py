"""A hung model harms only its own requests (issue 13, point 9): a batch that runs past its
deadline fails with 504, its inference process is killed and restarted (the endpoint reports
not ready meanwhile), a hot swap completes, and SIGTERM stops the server within seconds.
With ``inference: thread`` the hung call cannot be killed: its requests get 504, later ones
a clear 503 while it holds the model, and the server still stops."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

import shipyard
from serving import hanging_model
from serving.helpers import ROOT, ServerProcess
from shipyard.registry import Registry
from shipyard.server.app import create_app
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings

TIMEOUT_S = 1.5  # the endpoint's request timeout, and so its batch deadline
SAMPLE = pd.DataFrame({"x": [1.0, 2.5, -3.0]})


def body(x: float) -> dict[str, Any]:
    return {"inputs": {"x": [x]}}


@pytest.fixture(scope="module")
def hanging() -> shipyard.Package:
    return shipyard.package("serving.hanging_model:HangsOn666", SAMPLE, name="hang")


def post(base: str, x: float) -> httpx.Response:
    return httpx.post(f"{base}/v1/endpoints/hang/predict", json=body(x), timeout=30)


def in_background(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def test_a_hung_inference_process_is_killed_restarted_swapped_and_stopped(
        tmp_path: Path, hanging: shipyard.Package) -> None:
    home = tmp_path / "home"
    settings = Settings.from_env({"SHIPYARD_HOME": str(home)})
    registry = Registry(settings=settings)
    registry.register(hanging, alias="prod")
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"poll_interval_s": 0.3, "endpoints": [
        {"name": "hang", "model": "models:/hang@prod", "timeout_s": TIMEOUT_S,
         "trust": True}]}))
    paths = os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(ROOT / "tests")])
    server = ServerProcess(["--config", str(config), "--log-dir", str(tmp_path / "logs")],
                           home=home, out=tmp_path / "server.out", env={"PYTHONPATH": paths})
    try:
        server.wait_ready()
        assert post(server.base, 2.0).json()["predictions"] == [4.0]

        # a hung batch: 504 at its deadline; not ready while a new process starts
        started = time.monotonic()
        hung, answer = in_background(lambda: post(server.base, hanging_model.TRIGGER))
        readiness = set()
        while hung.is_alive() or time.monotonic() - started < TIMEOUT_S + 0.5:
            readiness.add(httpx.get(f"{server.base}/v2/health/ready", timeout=10).status_code)
            time.sleep(0.02)
        assert answer[0].status_code == 504, answer[0].text
        recovered = None
        while recovered is None:
            readiness.add(httpx.get(f"{server.base}/v2/health/ready", timeout=10).status_code)
            r = post(server.base, 3.0)
            if r.status_code == 200:
                recovered = time.monotonic() - started
            assert time.monotonic() - started < TIMEOUT_S + 20, server.output()
        assert r.json()["predictions"] == [6.0]
        assert readiness == {200, 503}, readiness  # not ready while it restarted
        assert httpx.get(f"{server.base}/v2/health/ready", timeout=10).status_code == 200

        # a hot swap while the model hangs: it completes, and the new version serves
        hung, answer = in_background(lambda: post(server.base, hanging_model.TRIGGER))
        time.sleep(0.2)
        registry.register(hanging, alias="prod")  # version 2
        deadline = time.monotonic() + TIMEOUT_S + 30
        while post(server.base, 1.0).json().get("version") != 2:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        hung.join(30)
        assert answer[0].status_code == 504

        # SIGTERM while the model hangs: the server stops within seconds
        hung, answer = in_background(lambda: post(server.base, hanging_model.TRIGGER))
        time.sleep(0.3)
        stopping = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(TIMEOUT_S + 10) == 0
        assert time.monotonic() - stopping < TIMEOUT_S + 5
        hung.join(30)
    finally:
        server.stop()
        registry.close()
    output = (tmp_path / "server.out").read_text(errors="replace")
    assert "inference process did not answer batch" in output, output  # said why it killed


@pytest.fixture
def release() -> Iterator[None]:
    hanging_model.RELEASE.clear()
    safety = threading.Timer(20.0, hanging_model.RELEASE.set)  # never hang the suite
    safety.start()
    yield
    hanging_model.RELEASE.set()
    safety.cancel()


def test_a_hung_model_in_a_thread_gets_504_then_clear_503s_and_stops(
        tmp_path: Path, hanging: shipyard.Package, release: None) -> None:
    from starlette.testclient import TestClient

    path = hanging.save(tmp_path / "hang")
    config = ServeConfig(endpoints=(EndpointConfig(
        name="hang", model=str(path), inference="thread", timeout_s=TIMEOUT_S, trust=True),),
        log_dir=str(tmp_path / "logs"))
    plane = DataPlane(config, Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")}))
    client = TestClient(create_app(plane))
    client.__enter__()
    try:
        url = "/v1/endpoints/hang/predict"
        assert client.post(url, json=body(1.0)).json()["predictions"] == [2.0]
        stuck = client.post(url, json=body(hanging_model.TRIGGER))
        assert stuck.status_code == 504, stuck.text
        refused = client.post(url, json=body(1.0))  # at once, not after a timeout
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "stuck" in refused.json()["error"], refused.text
        assert client.get("/v2/health/ready").status_code == 503
        hanging_model.RELEASE.set()  # the call returns at last: the model serves again
        deadline = time.monotonic() + 10
        while client.post(url, json=body(1.0)).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/v2/health/ready").status_code == 200
        hanging_model.RELEASE.clear()
        stuck = client.post(url, json=body(hanging_model.TRIGGER))
        assert stuck.status_code == 504
    finally:
        stopping = time.monotonic()
        client.__exit__(None, None, None)  # shutdown with a call still stuck in its thread
        stopped = time.monotonic() - stopping
    assert stopped < 5, f"shutdown took {stopped:.1f} s"
