"""``shipyard serve``'s Ray options: parsed into Ray Serve's deployment options, and refused
(not ignored) where they do not apply. No Ray is started here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.helpers import ray_or_skip
from shipyard.cli.main import app
from shipyard.errors import ShipyardError
from shipyard.server.ray_serve import Scaling, application

runner = CliRunner()


def test_replicas_and_autoscale_become_ray_serve_options() -> None:
    assert Scaling.parse(None, None).options() == {"num_replicas": 1}
    assert Scaling.parse(3, None).options() == {"num_replicas": 3}
    assert Scaling.parse(None, "0,4,16").options() == {"autoscaling_config": {
        "min_replicas": 0, "max_replicas": 4, "initial_replicas": 1,
        "target_ongoing_requests": 16.0}}


@pytest.mark.parametrize(("replicas", "autoscale", "problem"), [
    (0, None, "--replicas must be at least 1"),
    (2, "1,2,8", "not both"),
    (None, "1,4", "MIN,MAX,TARGET"),
    (None, "1,4,8,9", "three numbers"),
    (None, "4,1,8", "MIN <= MAX"),
    (None, "1,2,0", "TARGET"),
])
def test_bad_scaling_is_refused(replicas: int | None, autoscale: str | None,
                                problem: str) -> None:
    with pytest.raises(ShipyardError, match=problem):
        Scaling.parse(replicas, autoscale)


@pytest.mark.parametrize(("args", "problem"), [
    (["--replicas", "2"], "need --engine ray"),
    (["--ray-address", "auto"], "need --engine ray"),
    (["--engine", "ray", "--workers", "2"], "--workers is for --engine local"),
    (["--engine", "spark"], "--engine is local or ray"),
    (["--ray-http", "direct"], "need --engine ray"),
    (["--engine", "ray", "--ray-http", "ws"], "--ray-http is auto, proxy or direct"),
    (["--engine", "ray", "--ray-http", "direct", "--autoscale", "1,2,8"], "not --autoscale"),
])
def test_serve_refuses_options_of_the_other_engine(args: list[str], problem: str,
                                                   tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", str(tmp_path / "pkg"), *args])
    assert result.exit_code != 0
    assert problem in " ".join(f"{result.exception} {result.output}".split())


def test_the_application_is_one_deployment_named_after_its_endpoint() -> None:
    ray_or_skip()
    from shipyard.service.config import EndpointConfig, ServeConfig

    config = ServeConfig(endpoints=(EndpointConfig(name="iris", model="models:/iris@prod"),))
    built = application(config, Scaling(autoscale=(1, 3, 8)))
    deployment = built._bound_deployment
    assert deployment.name == "iris"
    assert deployment._deployment_config.max_ongoing_requests >= 64
    assert deployment._deployment_config.autoscaling_config.max_replicas == 3
