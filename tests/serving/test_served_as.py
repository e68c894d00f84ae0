"""A package served by path as the model name and version its endpoint names
(``model_name``, ``model_version``): responses, the prediction log and metrics say
``iris/3``, not the directory's name and version 1. A bad setting is a ConfigError that says
what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serving.helpers import FEATURES, IrisModels, metric, rows_payload, serve_in_process
from shipyard.service.config import ConfigError, EndpointConfig, ServeConfig
from shipyard.stores.predictions import read_log


@pytest.mark.parametrize("inference", ["process", "thread"])
def test_a_path_is_served_as_the_configured_name_and_version(iris: IrisModels, tmp_path: Path,
                                                             inference: str) -> None:
    package = iris.packages[3].save(tmp_path / "models" / "iris-v3")  # any directory name
    config = ServeConfig.from_dict({
        "endpoints": [{"name": "flowers", "model": str(package), "model_name": "iris",
                       "model_version": 3, "inference": inference}],
        "log_dir": str(tmp_path / "logs"), "flush_interval_s": 0.2})
    oip: dict[str, Any] = {"inputs": [
        {"name": f, "shape": [2], "datatype": "FP64", "data": iris.x[:2, i].tolist()}
        for i, f in enumerate(FEATURES)]}
    (simple, infer), metrics = serve_in_process(config, tmp_path, [
        ("/v1/endpoints/flowers/predict", rows_payload(iris.x[:4])),
        ("/v2/models/flowers/infer", oip)])
    assert simple.status_code == 200, simple.text
    assert simple.headers["x-model-version"] == "iris/3"
    assert (simple.json()["model"], simple.json()["version"]) == ("iris", 3)
    assert infer.status_code == 200, infer.text
    assert infer.headers["x-model-version"] == "iris/3"
    assert infer.json()["model_version"] == "3"
    assert metric(metrics, "shipyard_model_load_seconds", endpoint="flowers", model="iris",
                  version="3") > 0
    table = read_log(tmp_path / "logs", "flowers")
    assert table.num_rows == 6
    assert set(zip(table.column("model").to_pylist(), table.column("version").to_pylist(),
                   strict=True)) == {("iris", 3)}


def test_without_them_a_path_is_its_directory_at_version_1() -> None:
    endpoint = EndpointConfig(name="ep", model="/srv/models/iris-3/")
    assert endpoint.served_as(endpoint.model) == ("iris-3", 1)
    named = EndpointConfig(name="ep", model="/srv/models/iris-3", model_version=3)
    assert named.served_as(named.model) == ("iris-3", 3)


@pytest.mark.parametrize(("settings", "says"), [
    ({"model": "models:/iris@production", "model_version": 3},
     "model_name and model_version name what a package path is served as"),
    ({"model": "models:/iris/2", "model_name": "iris"}, "names its own model and version"),
    ({"model_name": "../iris"}, "model_name: invalid model name '../iris'"),
    ({"model_name": ""}, "model_name: model name must be a non-empty string"),
    ({"model_name": 7}, "model_name: model name must be a non-empty string"),
    ({"model_version": 0}, "model_version is a whole number, at least 1, not 0"),
    ({"model_version": "3"}, "model_version is a whole number, at least 1, not '3'"),
    ({"model_version": 2.5}, "model_version is a whole number, at least 1, not 2.5"),
    ({"model_version": True}, "model_version is a whole number, at least 1, not True"),
])
def test_bad_settings_are_config_errors_that_say_why(settings: dict[str, Any],
                                                     says: str) -> None:
    endpoint = {"name": "ep", "model": "/srv/models/iris", **settings}
    with pytest.raises(ConfigError) as error:
        ServeConfig.from_dict({"endpoints": [endpoint]})
    assert str(error.value).startswith("endpoint ep: ")
    assert says in str(error.value)


def test_the_settings_reach_every_worker() -> None:
    """``--workers N`` hands each worker the config as JSON (server/run.py)."""
    config = ServeConfig.from_dict({"endpoints": [
        {"name": "ep", "model": "/srv/models/iris-v3", "model_name": "iris",
         "model_version": 3}]})
    again = ServeConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.endpoints[0].served_as("/srv/models/iris-v3") == ("iris", 3)
