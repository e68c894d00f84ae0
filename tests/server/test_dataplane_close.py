"""``DataPlane.close()`` flushes the prediction log even if stopping a deployment raises
(issue 13, point 8)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.conftest import Packages
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings
from shipyard.stores.predictions import read_log


def test_close_flushes_the_log_when_a_deployment_fails_to_stop(packages: Packages,
                                                               tmp_path: Path) -> None:
    config = ServeConfig(endpoints=(
        EndpointConfig(name="broken", model=str(packages.iris), inference="thread"),
        EndpointConfig(name="iris", model=str(packages.iris), inference="thread")),
        log_dir=str(tmp_path / "logs"), flush_interval_s=3600)  # only close() flushes
    plane = DataPlane(config, Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")}))

    async def run() -> None:
        await plane.start()
        for name in ("broken", "iris"):
            ep = plane.endpoint(name)
            columns = ep.deployment().model.prepare(packages.iris_x.head(3))  # type: ignore[attr-defined]
            await plane.predict(ep, columns, request_id=f"{name}-1")
        broken = plane.endpoint("broken").deployment()

        async def fail() -> None:
            raise RuntimeError("cannot release the model")

        broken.close = fail  # type: ignore[method-assign]
        await plane.close()

    asyncio.run(run())
    for name in ("broken", "iris"):
        assert read_log(tmp_path / "logs", name).column("request_id").to_pylist() == \
            [f"{name}-1"] * 3
