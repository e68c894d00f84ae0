"""``shipyard serve`` with a source that does not resolve stops at once with a clear message;
one that resolves but fails to load keeps serving, not ready, and ``/v2/health/ready`` names
the endpoint and why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from serving.helpers import ROOT, IrisModels, ServerProcess
from shipyard.server.app import create_app
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings


def serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home")}
    env.pop("SHIPYARD_REGISTRY_URL", None)
    env.pop("SHIPYARD_ARTIFACTS", None)
    return subprocess.run([sys.executable, "-m", "shipyard.cli.main", "serve", *args,
                           "--port", "1", "--log-dir", str(tmp_path / "logs")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("source", ["/nonexistent/package", "models:/nope@production",
                                    "models:/nope/3", "models:/nope@Bad!"])
def test_a_source_that_does_not_resolve_stops_serve(tmp_path: Path, source: str) -> None:
    done = serve(tmp_path, source)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot serve" in done.stderr and source in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_every_unresolved_endpoint_is_named(tmp_path: Path, iris: IrisModels) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(f"endpoints:\n  - model: {iris.v1_dir}\n"
                      f"  - name: ghost\n    model: {tmp_path / 'gone'}\n"
                      "  - name: fraud\n    model: models:/fraud@production\n")
    done = serve(tmp_path, "--config", str(config))
    assert done.returncode == 1
    assert "endpoint ghost:" in done.stderr and "endpoint fraud:" in done.stderr
    assert "endpoint iris:" not in done.stderr


def test_a_source_that_fails_to_load_keeps_serving_not_ready(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()  # exists (resolves), holds no package: fails to load
    server = ServerProcess([str(broken), "--log-dir", str(tmp_path / "logs")],
                           home=tmp_path / "home", out=tmp_path / "server.out")
    try:
        for _ in range(300):
            if server.proc.poll() is not None:
                raise AssertionError(server.output())
            try:
                ready = httpx.get(f"{server.base}/v2/health/ready", timeout=2)
            except httpx.HTTPError:
                continue
            if "could not load" in ready.text:
                break
        assert ready.status_code == 503
        reason = ready.json()["not_ready"]["broken"]
        assert reason.startswith("could not load: ") and "shipyard.json" in reason, reason
    finally:
        server.stop()


def test_ready_names_the_endpoint_and_why(tmp_path: Path, iris: IrisModels) -> None:
    config = ServeConfig(endpoints=(EndpointConfig(name="iris", model=str(iris.v1_dir)),
                                    EndpointConfig(name="ghost", model=str(tmp_path / "gone"))),
                         log_dir=str(tmp_path / "logs"), api_keys={"ci": "s3cret"})
    plane = DataPlane(config, Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")}))
    with TestClient(create_app(plane)) as client:
        ready = client.get("/v2/health/ready", headers={"X-API-Key": "s3cret"})
        assert ready.status_code == 503
        body = ready.json()
        assert body["ready"] is False and list(body["not_ready"]) == ["ghost"]
        assert body["not_ready"]["ghost"].startswith("could not load: ")
        assert "gone" in body["not_ready"]["ghost"]
        anonymous = client.get("/v2/health/ready")  # open to probes: the name, not the error
        assert anonymous.status_code == 503
        assert anonymous.json()["not_ready"] == {"ghost": "could not load"}
