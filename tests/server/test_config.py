"""``ServeConfig``: what ``shipyard serve`` reads from YAML and hands to worker processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from shipyard.server import run
from shipyard.service.config import (
    ConfigError,
    EndpointConfig,
    ServeConfig,
    default_endpoint_name,
)


def test_round_trip_through_json_is_lossless() -> None:
    """Workers rebuild the config from ``to_dict()`` sent as JSON: nothing may change."""
    config = ServeConfig(
        endpoints=(EndpointConfig(name="a", model="/pkgs/a", max_queue=3, timeout_s=0.5,
                                  unknown_categories="reject", log_sample_rate=0.25,
                                  runtime="onnx"),
                   EndpointConfig(name="b", model="models:/b@production", trust=True)),
        log_dir="/var/log/shipyard", flush_interval_s=2.0, max_body_bytes=1000,
        poll_interval_s=7.0, api_keys={"ci": "s3cret"}, admin_api_keys={"ops": "adm1n"})
    assert ServeConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert "s3cret" not in repr(config) and "adm1n" not in repr(config)


def test_from_file_fills_names_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("endpoints:\n"
                    "  - model: models:/fraud@production\n"
                    "    max_batch_size: 16\n"
                    "  - name: iris-v2\n"
                    "    model: /pkgs/iris/\n"
                    "api_keys:\n"
                    "  ci: s3cret\n"
                    "max_body_bytes: 2048\n")
    config = ServeConfig.from_file(path)
    assert [(e.name, e.model, e.max_batch_size) for e in config.endpoints] == [
        ("fraud", "models:/fraud@production", 16), ("iris-v2", "/pkgs/iris/", 32)]
    assert config.api_keys == {"ci": "s3cret"} and config.max_body_bytes == 2048
    more = config.with_models(["/pkgs/cancer"])
    assert [e.name for e in more.endpoints] == ["fraud", "iris-v2", "cancer"]


@pytest.mark.parametrize(("model", "name"), [
    ("models:/fraud@production", "fraud"), ("models:/fraud/3", "fraud"),
    ("models:/fraud@latest", "fraud"), ("/pkgs/iris", "iris"), ("/pkgs/iris/", "iris"),
    ("iris-pkg", "iris-pkg"),
])
def test_default_endpoint_name(model: str, name: str) -> None:
    assert default_endpoint_name(model) == name


@pytest.mark.parametrize(("data", "message"), [
    ([1], "must be a mapping"),
    ({}, "at least one endpoint"),
    ({"endpoints": []}, "at least one endpoint"),
    ({"endpoints": [{"name": "a"}]}, "needs at least a model"),
    ({"endpoints": [{"model": "x", "bogus": 1}]}, "unknown endpoint settings ['bogus']"),
    ({"endpoints": [{"model": "x"}], "nope": 1}, "unknown serve settings ['nope']"),
    ({"endpoints": [{"model": "x"}, {"model": "x"}]}, "duplicate endpoint names"),
    ({"endpoints": [{"model": "x", "name": "bad name"}]}, "invalid endpoint name"),
    ({"endpoints": [{"model": "x", "max_queue": 0}]}, "must be at least 1"),
    ({"endpoints": [{"model": "x", "timeout_s": 0}]}, "timeout_s > 0"),
    ({"endpoints": [{"model": "x", "log_sample_rate": 1.5}]}, "log_sample_rate"),
    ({"endpoints": [{"model": "x", "unknown_categories": "drop"}]}, "pass or reject"),
    ({"endpoints": [{"model": "x", "timeout_s": "fast"}]}, "invalid endpoint"),
    ({"endpoints": [{"model": "x"}], "max_body_bytes": 0}, "must be positive"),
    ({"endpoints": [{"model": "x"}], "api_keys": ["s3cret"]}, "api_keys"),
    ({"endpoints": [{"model": "x"}], "api_keys": {"ci": ""}}, "non-empty secret"),
    ({"endpoints": [{"model": "x"}], "api_keys": {"ci": 12345}}, "non-empty secret"),
    ({"endpoints": [{"model": "x"}], "admin_api_keys": {"ops": ""}}, "admin_api_keys"),
    ({"endpoints": [{"model": "x"}], "admin_api_keys": "adm1n"}, "admin_api_keys"),
])
def test_invalid_configs_are_config_errors(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        ServeConfig.from_dict(data)
    assert message in str(error.value)


def test_app_from_env_builds_the_configured_app(packages, tmp_path, monkeypatch) -> None:
    """A ``--workers`` worker reads the config from the private file the environment names,
    then drops the variable (nothing it starts needs it)."""
    config = ServeConfig(endpoints=(EndpointConfig(name="iris", model=str(packages.iris)),),
                         log_dir=str(tmp_path / "logs"), api_keys={"ci": "s3cret"})
    monkeypatch.setenv(run.CONFIG_FILE_ENV, str(run.write_private_config(config, tmp_path)))
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    app = run.app_from_env()
    assert run.CONFIG_FILE_ENV not in os.environ
    plane = app.state.plane
    assert plane.config == config
    assert list(plane.endpoints) == ["iris"]
    plane.executor.shutdown()
