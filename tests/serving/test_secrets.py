"""Secrets in the serve config (API keys, webhook headers) never reach a child process, an
``on_alert`` command or the server's output.

Real ``shipyard serve --config`` processes: the environment of the server, of its inference
process and of every ``--workers`` worker is read from ``/proc/PID/environ``, an ``on_alert``
command writes the environment it got to a file, and the server's output is searched.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from serving.helpers import IrisModels, ServerProcess, children, cmdline, rows_payload

API_KEY = "sk-live-6f1d0c1e9a7b4b02a3"  # the serve config's secret
HOOK_SECRET = "hook-token-0b5e77c2"  # a webhook header's secret, in the same config
ENV_SECRET = "aws-secret-9c4d1f"  # a credential in the server's own environment
DUMP_ENV = ("import json, os, sys; from pathlib import Path; "
            "Path(sys.argv[1]).write_text(json.dumps(dict(os.environ)))")

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(),
                                reason="reads /proc/PID/environ")


def environ(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b"\n").decode(
        errors="replace")


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def inference_processes(pid: int) -> list[int]:
    return [p for p in descendants(pid) if "shipyard.runtimes.raw_child" in cmdline(p)
            or "shipyard.runtimes.worker" in cmdline(p)]


def write_config(tmp_path: Path, iris: IrisModels, **extra: Any) -> Path:
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "log_dir": str(tmp_path / "logs"), "flush_interval_s": 0.05,
        "api_keys": {"ci": API_KEY},
        "endpoints": [{"name": "iris", "model": str(iris.v1_dir)}], **extra}))
    return config


def test_no_secret_in_the_inference_process_an_alert_command_or_the_log(
        tmp_path: Path, iris: IrisModels) -> None:
    dumped = tmp_path / "on_alert_env.json"
    config = write_config(tmp_path, iris, monitor={
        "every": "1s", "last": 40, "min_rows": 20, "rules": ["drift_share > 0.3"],
        "on_alert": [sys.executable, "-c", DUMP_ENV, str(dumped)]})
    server = ServerProcess(["--config", str(config)], home=tmp_path / "home",
                           out=tmp_path / "server.out", env={"AWS_SECRET_ACCESS_KEY": ENV_SECRET})
    try:
        server.wait_ready()
        auth = {"Authorization": f"Bearer {API_KEY}"}
        assert httpx.post(f"{server.base}/v1/endpoints/iris/predict",
                          json=rows_payload(iris.x[:2]), timeout=10).status_code == 401
        for start in range(0, 40, 10):  # drifted rows: the monitor's rule fires
            response = httpx.post(f"{server.base}/v1/endpoints/iris/predict", headers=auth,
                                  json=rows_payload(iris.x[start:start + 10] * 1.6), timeout=10)
            assert response.status_code == 200, response.text

        assert API_KEY not in environ(server.pid)  # nothing for a child to inherit
        children_ = inference_processes(server.pid)
        assert children_, f"no inference process under {server.pid}: {descendants(server.pid)}"
        for pid in children_:
            assert API_KEY not in environ(pid)

        deadline = time.monotonic() + 20
        while not dumped.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dumped.exists(), f"the on_alert command never ran:\n{server.output()}"
        seen = json.loads(dumped.read_text())
        assert seen["SHIPYARD_ALERT_ENDPOINT"] == "iris"
        assert seen["SHIPYARD_ALERT_STATE"] == "firing"
        assert seen["PATH"] == os.environ["PATH"]  # what a command needs to run at all
        text = json.dumps(seen)
        assert API_KEY not in text and ENV_SECRET not in text
        assert "AWS_SECRET_ACCESS_KEY" not in seen
        server.signal(signal.SIGTERM)
        assert server.wait() == 0, server.output()
    finally:
        server.stop()
    output = server.out.read_text(errors="replace")
    assert "alert firing on iris" in output  # the log did say what happened
    assert API_KEY not in output


def test_workers_read_the_config_from_a_private_file_and_leak_nothing(
        tmp_path: Path, iris: IrisModels) -> None:
    config = write_config(tmp_path, iris, monitor={
        "enabled": False, "webhooks": [{"url": "http://127.0.0.1:9/hook",
                                        "headers": {"Authorization": HOOK_SECRET}}]})
    server = ServerProcess(["--config", str(config), "--workers", "2"],
                           home=tmp_path / "home", out=tmp_path / "server.out")
    try:
        server.wait_ready()
        auth = {"X-API-Key": API_KEY}
        for _ in range(4):
            response = httpx.post(f"{server.base}/v1/endpoints/iris/predict", headers=auth,
                                  json=rows_payload(iris.x[:3]), timeout=10)
            assert response.status_code == 200, response.text
        assert httpx.get(f"{server.base}/v1/endpoints", timeout=10).status_code == 401

        # /proc/PID/environ is a process's environment as it started: a worker's names
        # the file (the supervisor set it before starting them)
        worker = dict(line.split("=", 1) for line in environ(children(server.pid)[0])
                      .splitlines() if "=" in line)
        private = Path(worker["SHIPYARD_SERVE_CONFIG_FILE"])
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
        processes = [server.pid, *descendants(server.pid)]
        assert len(inference_processes(server.pid)) >= 2  # one per worker
        for pid in processes:
            env = environ(pid)
            assert API_KEY not in env and HOOK_SECRET not in env, cmdline(pid)
        for pid in inference_processes(server.pid):  # workers dropped it once they read it
            assert "SHIPYARD_SERVE_CONFIG_FILE" not in environ(pid), cmdline(pid)
        server.signal(signal.SIGTERM)
        assert server.wait() == 0, server.output()
    finally:
        server.stop()
    assert not private.parent.exists()  # removed with the server
    output = server.out.read_text(errors="replace")
    assert API_KEY not in output and HOOK_SECRET not in output


@pytest.mark.parametrize("workers", [1, 3])
def test_serve_puts_no_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path, workers: int) -> None:
    """What ``serve`` hands uvicorn: never the config in ``os.environ`` (every process the
    server starts inherits it); with workers, a private file that is removed after."""
    import uvicorn

    from shipyard.server import run
    from shipyard.service.config import EndpointConfig, ServeConfig

    config = ServeConfig(endpoints=(EndpointConfig(name="iris", model="/pkgs/iris"),),
                         api_keys={"ci": API_KEY})
    seen: dict[str, Any] = {}

    def fake_run(app: Any, **options: Any) -> None:
        seen.update(env=dict(os.environ), app=app, options=options)
        if workers > 1:
            private = Path(os.environ[run.CONFIG_FILE_ENV])
            seen.update(private=private, mode=stat.S_IMODE(private.stat().st_mode),
                        config=json.loads(private.read_text()))

    monkeypatch.setattr(uvicorn, "run", fake_run)
    run.serve(config, workers=workers)
    assert API_KEY not in json.dumps(seen["env"])
    assert API_KEY not in repr(config)  # nor in a log line or traceback that shows it
    if workers > 1:
        assert seen["app"] == "shipyard.server.run:app_from_env"
        assert seen["mode"] == 0o600 and seen["config"]["api_keys"] == {"ci": API_KEY}
        assert not seen["private"].parent.exists()
        assert run.CONFIG_FILE_ENV not in os.environ and run.METRICS_ENV not in os.environ
    else:
        assert not isinstance(seen["app"], str)  # the factory itself: nothing to read back


def test_on_alert_commands_get_an_allowlisted_environment(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from shipyard.monitoring.alerts import AlertEvaluator
    from shipyard.service.alerting import COMMAND_ENVIRONMENT, AlertNotifier

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    monkeypatch.setenv("SHIPYARD_REGISTRY_URL", f"postgresql://u:{ENV_SECRET}@db/x")
    monkeypatch.setenv("RETRAIN_QUEUE", "gpu-small")  # passed on because it is named
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    event = AlertEvaluator(["drift_share > 0.3"], endpoint="iris").evaluate(
        {"drift_share": 0.5}, datetime(2024, 5, 1, tzinfo=UTC))[0]
    dumped = tmp_path / "env.json"
    with AlertNotifier(on_alert=[sys.executable, "-c", DUMP_ENV, str(dumped)],
                       command_env=["RETRAIN_QUEUE"]) as notifier:
        assert notifier.deliver([event]).commands_run == 1
    seen = json.loads(dumped.read_text())
    assert ENV_SECRET not in json.dumps(seen)
    assert seen["RETRAIN_QUEUE"] == "gpu-small" and seen["LC_ALL"] == "C.UTF-8"
    assert seen["SHIPYARD_ALERT_ENDPOINT"] == "iris"
    allowed = {*COMMAND_ENVIRONMENT, "RETRAIN_QUEUE", "LC_ALL", "LC_CTYPE"}
    extra = {k for k in seen if not k.startswith("SHIPYARD_ALERT_") and k not in allowed}
    assert extra <= {"PWD", "SHLVL", "_"}, extra  # what a starting program may add itself


def test_on_alert_env_is_read_from_the_monitor_section() -> None:
    from shipyard.service.config import ConfigError, MonitorConfig

    config = MonitorConfig.from_dict({"on_alert": "retrain", "on_alert_env": ["QUEUE"]})
    assert config.on_alert_env == ("QUEUE",)
    assert MonitorConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="on_alert_env"):
        MonitorConfig.from_dict({"on_alert_env": "QUEUE"})
