"""Serving never runs code a package names unless the endpoint is trusted: ``shipyard serve
--trust`` (every endpoint) or ``trust: true`` on an endpoint in serve.yaml.

The untrusted package is the issue's: a python runtime whose ``model_class`` is
``subprocess:run`` with ``touch TARGET`` as its arguments (hand-written, hashes correct)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from server.helpers import endpoint
from serving.helpers import ServerProcess
from shipyard.cli.main import app
from shipyard.errors import InferenceProcessError
from shipyard.runtimes.process import InferenceProcess
from shipyard.service.config import ConfigError, ServeConfig
from shipyard.settings import Settings
from untrusted_packages import command_package

TESTS = Path(__file__).resolve().parents[1]
SCORER_BODY = {"inputs": {"a": [1.0, -5.0], "b": [2.0, 1.0]}}


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "ran"


@pytest.fixture
def evil(tmp_path: Path, target: Path) -> Path:
    return command_package(tmp_path / "evil", target)


@pytest.mark.parametrize("inference", ["process", "thread"])
def test_an_untrusted_endpoint_never_runs_the_named_command(
        serve: Callable[..., Any], evil: Path, target: Path, inference: str) -> None:
    with serve(endpoint("evil", evil, inference=inference)) as s:
        ep = s.plane.endpoints["evil"]
        assert ep.current is None
        assert ep.last_error is not None and "UntrustedCodeError" in ep.last_error
        assert "subprocess:run" in ep.last_error and "--trust" in ep.last_error
        assert s.client.get("/v2/health/ready").status_code == 503
        listed = s.client.get("/v1/endpoints").json()["endpoints"]
        assert [(e["ready"], "trust" in e["last_error"]) for e in listed] == [(False, True)]
    assert not target.exists()


def test_the_inference_process_refuses_it_too(evil: Path, target: Path,
                                              tmp_path: Path) -> None:
    settings = Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")})
    with pytest.raises(InferenceProcessError, match=r"UntrustedCodeError.*--trust"):
        InferenceProcess(evil, trust=False, runtime=None, settings=settings)
    assert not target.exists()


def test_serve_yaml_trusts_per_endpoint(serve: Callable[..., Any], packages: Any,
                                        tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump({"endpoints": [
        {"name": "trusted", "model": str(packages.scorer), "trust": True},
        {"name": "untrusted", "model": str(packages.scorer)}]}))
    config = ServeConfig.from_file(path)
    assert [e.trust for e in config.endpoints] == [True, False]
    with serve(*config.endpoints) as s:
        answer = s.client.post("/v1/endpoints/trusted/predict", json=SCORER_BODY)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [3.0, -4.0]
        untrusted = s.plane.endpoints["untrusted"]
        assert untrusted.current is None
        assert untrusted.last_error is not None and "trust" in untrusted.last_error


@pytest.mark.parametrize("value", ["false", "yes", 1])
def test_trust_in_serve_yaml_is_a_boolean(value: Any) -> None:
    with pytest.raises(ConfigError, match="trust is true or false"):
        ServeConfig.from_dict({"endpoints": [{"model": "/pkgs/a", "trust": value}]})


def test_serve_trust_flag_trusts_every_endpoint(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    import shipyard.server.run

    seen: list[ServeConfig] = []
    monkeypatch.setattr(shipyard.server.run, "serve",
                        lambda cfg, **_: seen.append(cfg))
    for name in "ab":  # serve refuses a path that does not exist before it starts
        (tmp_path / name).mkdir()
    b = str(tmp_path / "b")
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"endpoints": [{"name": "a",
                                                     "model": str(tmp_path / "a")}]}))
    runner = CliRunner()
    for args in (["serve", b], ["serve", "--trust", b],
                 ["serve", "--config", str(config), b, "--trust"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert [[(e.name, e.trust) for e in cfg.endpoints] for cfg in seen] == [
        [("b", False)], [("b", True)], [("a", True), ("b", True)]]


def _endpoints(server: ServerProcess, names: set[str], limit_s: float = 60.0) -> dict[str, Any]:
    """The server's endpoint list once every endpoint in ``names`` is loaded or failed."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, server.output()
        try:
            listed = httpx.get(f"{server.base}/v1/endpoints", timeout=2).json()["endpoints"]
        except httpx.HTTPError:
            listed = []
        done = {e["name"]: e for e in listed if e["ready"] or e["last_error"]}
        if set(done) >= names:
            return done
        time.sleep(0.1)
    raise AssertionError(f"endpoints {names} not settled after {limit_s}s:\n{server.output()}")


def test_registered_package_served_live_runs_nothing_without_trust(
        packages: Any, evil: Path, target: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's path: ``models register`` then ``shipyard serve``, a real server whose
    inference processes load the models; then ``--trust`` serves the custom class."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    for var in ("SHIPYARD_REGISTRY_URL", "SHIPYARD_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    registered = CliRunner().invoke(app, ["models", "register", str(evil)])
    assert registered.exit_code == 0, registered.output
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    models = ["models:/evil@latest", str(packages.scorer)]
    for trust in (False, True):
        server = ServerProcess([*models, *(["--trust"] if trust else [])], home=home,
                               out=tmp_path / f"serve-{trust}.txt", env=env)
        try:
            listed = _endpoints(server, {"evil", "scorer"})
            answer = httpx.post(f"{server.base}/v1/endpoints/scorer/predict",
                                json=SCORER_BODY, timeout=10)
        finally:
            server.stop()
        assert not listed["evil"]["ready"]
        if trust:
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == [3.0, -4.0]
            assert target.exists()  # the control: trusted, the command did run
        else:
            assert "UntrustedCodeError" in listed["evil"]["last_error"], listed
            assert "trust" in listed["scorer"]["last_error"], listed
            assert answer.status_code != 200
            assert not target.exists()


def test_a_named_import_answers_like_an_untrusted_pickle() -> None:
    from shipyard.errors import UntrustedCodeError, UntrustedPickleError
    from shipyard.protocol.http_errors import error_parts

    assert error_parts(UntrustedCodeError("python runtime model_class 'a:B'"))[0] == \
        error_parts(UntrustedPickleError("model.joblib"))[0]
