"""The image's install and start, run: ``install/install.sh`` (the Dockerfile's RUN) in a
clean virtual environment, then ``app/entrypoint.sh`` (its CMD) on 127.0.0.1, answering
predictions equal to the package's with the API keys of a Secret-like directory. Slow (a
pip install: minutes without a warm pip cache; needs the package index or that cache). A
real ``docker build`` and ``docker run`` where a Docker daemon answers."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import numpy as np
import pytest

import shipyard
from export.conftest import Zoo
from shipyard.export import export_docker, resolve
from shipyard.registry import Registry
from shipyard.routing import Weighted
from shipyard.stores.predictions import read_log

pytestmark = pytest.mark.slow
INSTALL_S = 900  # a cold pip cache downloads onnxruntime, scipy, pyarrow, ...
READY_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_steps(dockerfile: Path) -> tuple[str, str, dict[str, str]]:
    """The Dockerfile's install RUN line, its CMD, and where it copies each context folder:
    what this test runs outside Docker."""
    lines = re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines()
    copies = dict(line.split()[1:3] for line in lines if line.startswith("COPY "))
    install = next(line for line in lines if line.startswith("RUN ") and "install.sh" in line)
    cmd = next(line for line in lines if line.startswith("CMD "))
    return install, cmd, copies


@contextlib.contextmanager
def started(app_dir: Path, env: Mapping[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(["sh", str(app_dir / "entrypoint.sh")],
                                env={**env, "SHIPYARD_HOST": "127.0.0.1",
                                     "SHIPYARD_PORT": str(port)},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_S
            while True:
                assert proc.poll() is None, f"server exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"not ready:\n{log.read_text()}"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200:
                        break
                time.sleep(0.2)  # polling a child process's port: nothing to await
            yield base
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def test_install_and_start_in_a_clean_venv(registry: Registry, zoo: Zoo,
                                           tmp_path: Path) -> None:
    registry.deployments.set_policy("img", Weighted.canary("iris/3", "iris/1", 20),
                                    reason="test")
    ctx = tmp_path / "ctx"
    export_docker(resolve("img", registry=registry), ctx)
    install, cmd, copies = run_steps(ctx / "Dockerfile")
    # the image runs the context's two scripts, the ones run here
    assert f"sh {copies['install/']}install.sh " in install
    assert f"{copies['app/']}entrypoint.sh" in cmd
    venv = tmp_path / "venv"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": sys.executable,
           **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "XDG_CACHE"))}}
    done = subprocess.run(["sh", str(ctx / "install" / "install.sh"), str(venv)], env=env,
                          capture_output=True, text=True, timeout=INSTALL_S, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # clean: the venv does not see this interpreter's packages
    probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import sys, shipyard; print(sys.prefix, shipyard.__file__)"],
                           env=env, capture_output=True, text=True, check=True)
    assert str(venv) in probe.stdout and "/src/shipyard" not in probe.stdout
    keys = tmp_path / "api-keys"  # what a mounted Secret looks like
    keys.mkdir()
    (keys / "client").write_text("s3cret-value\n")
    (keys / "..data").mkdir()
    server_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                  "SHIPYARD_HOME": str(tmp_path / "home"), "SHIPYARD_VENV": str(venv),
                  "SHIPYARD_ORT_THREADS": "1", "SHIPYARD_API_KEYS_DIR": str(keys)}
    x = zoo.x.iloc[:5]
    expected = shipyard.load(zoo.packages[3]).predict(x)
    body = {"inputs": [{"name": c, "shape": [len(x)], "datatype": "FP64",
                        "data": x[c].tolist()} for c in x.columns]}
    with started(ctx / "app", server_env, tmp_path / "server.log") as base:
        assert httpx.get(f"{base}/v2/health/live").status_code == 200
        url = f"{base}/v2/models/img/infer"
        assert httpx.post(url, json=body).status_code == 401
        answer = httpx.post(url, json=body, headers={"Authorization": "Bearer s3cret-value"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-model-version"] == "iris/3"  # the registry's name/version
        outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
        # the stable version of the canary (iris/3) answers, as the package does in-process
        assert outputs.keys() == expected.outputs.keys()
        for name, column in expected.outputs.items():
            np.testing.assert_allclose(np.asarray(outputs[name]).reshape(column.shape),
                                       column, rtol=1e-6)
        assert httpx.get(f"{base}/metrics").status_code == 200
    assert "s3cret-value" not in (tmp_path / "server.log").read_text()
    logged = read_log(tmp_path / "home" / "logs", "img")  # written when the server stopped
    assert set(zip(logged.column("model").to_pylist(), logged.column("version").to_pylist(),
                   strict=True)) == {("iris", 3)}


def docker_daemon() -> str | None:
    """None when a Docker daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=30, check=False)
    return None if info.returncode == 0 else \
        f"no Docker daemon: docker info said {info.stderr.strip()[:200]!r}"


def test_docker_build_and_run(zoo: Zoo, tmp_path: Path) -> None:
    why = docker_daemon()
    if why is not None:
        if os.environ.get("CI") == "true" and os.environ.get("SHIPYARD_REQUIRE_DOCKER"):
            pytest.fail(why)
        pytest.skip(why)
    ctx = tmp_path / "ctx"
    plan = resolve(str(zoo.packages[1]), endpoint="iris")
    export_docker(plan, ctx)
    tag = f"shipyard-test-{os.getpid()}:{plan.primary.version}"
    subprocess.run(["docker", "build", "-t", tag, str(ctx)], check=True, timeout=1200)
    port = free_port()
    name = f"shipyard-test-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "-p",
                    f"127.0.0.1:{port}:8080", tag], check=True, timeout=60)
    try:
        user = subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True,
                              text=True, check=True, timeout=30).stdout.strip()
        assert user == "10001"
        deadline = time.monotonic() + READY_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                    break
            assert time.monotonic() < deadline, "container not ready"
            time.sleep(0.5)
        x = zoo.x.iloc[:3]
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/endpoints/iris/predict",
                            json={"inputs": {c: x[c].tolist() for c in x.columns}})
        assert answer.status_code == 200, answer.text
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
