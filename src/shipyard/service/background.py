"""What a data plane runs beside its requests: the watcher (endpoints follow their stored
policy or source; the running rollouts' steps are read for ``/metrics``), the monitor's
schedule and the rollout controller. Each is started only when the config needs it; the
monitor and the controller run in threads of their own, never on the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.registry import Registry, is_model_uri
from shipyard.service.config import ServeConfig
from shipyard.service.rollout_metrics import RolloutStep
from shipyard.service.routes import Endpoint
from shipyard.service.swapping import Swapper, watched
from shipyard.settings import Settings

if TYPE_CHECKING:
    from shipyard.service.monitor_scheduler import MonitorScheduler
    from shipyard.service.rollout_controller import RolloutController

log = logging.getLogger("shipyard.serve")


class Background:
    """The watcher, the monitor's schedule and the rollout controller of one data plane."""

    def __init__(self, config: ServeConfig, settings: Settings, endpoints: Mapping[str, Endpoint],
                 swapper: Swapper, registry: Callable[[], Registry], log_root: Path | str) -> None:
        self.config = config
        self.settings = settings
        self.endpoints = endpoints
        self.swapper = swapper
        self.registry = registry
        self.log_root = log_root
        self.rollout_steps: dict[str, RolloutStep] = {}  # by the watcher, from the registry
        self.monitor: MonitorScheduler | None = None
        self.controller: RolloutController | None = None
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start what the config needs (on the event loop, once the endpoints loaded)."""
        if any(watched(ep) for ep in self.endpoints.values()):
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        self.start_monitor()
        self.start_controller()

    def start_monitor(self) -> None:
        """Run the endpoints' ``monitor:`` sections on their schedule, in a thread of their
        own; imported only when a monitor is configured."""
        if not any(self.config.monitor_for(e.name) for e in self.config.endpoints):
            return
        from shipyard.service.monitor_scheduler import MonitorScheduler

        self.monitor = MonitorScheduler.from_config(self.config, self.settings)
        if self.monitor is not None:
            self.monitor.start()

    def start_controller(self) -> None:
        """Run the rollout controller (a daemon thread) when an endpoint serves from the
        registry and the config does not turn it off."""
        if not self.config.rollout_controller or not any(
                is_model_uri(e.model) for e in self.config.endpoints):
            return
        from shipyard.service.rollout_controller import RolloutController, default_holder

        self.controller = RolloutController(self.registry(), self.log_root,
                                            holder=default_holder(),
                                            lease_ttl_s=self.config.rollout_lease_s)
        # every poll interval (SPEC14 §6), within the lease's renewal bound
        self.controller.start(min(self.config.poll_interval_s,
                                  self.controller.lease_ttl_s / 3))

    async def stop(self) -> None:
        """Stop the watcher, then the controller (it releases its leases) and the monitor
        (it may finish a window in progress), off the event loop."""
        if self._watcher is not None:
            self._watcher.cancel()
        loop = asyncio.get_running_loop()
        if self.controller is not None:
            await loop.run_in_executor(None, self.controller.stop)
        if self.monitor is not None:
            await loop.run_in_executor(None, self.monitor.stop)
            # release its references (DataSketches objects) now, not at interpreter exit,
            # where nanobind reports every still-live sketch as a leak on stderr
            self.monitor = None

    async def check(self) -> None:
        """One pass of the watcher: endpoints follow their policy or source; the running
        rollouts' steps are read for ``/metrics``."""
        await self.swapper.check()
        loop = asyncio.get_running_loop()
        self.rollout_steps = await loop.run_in_executor(None, self._read_rollout_steps)

    def _read_rollout_steps(self) -> dict[str, RolloutStep]:
        try:
            running = self.registry().rollouts.running()
        except Exception as exc:  # an unreachable registry must not stop the watcher
            log.warning("cannot read the running rollouts: %s", exc)
            return self.rollout_steps
        return {r.endpoint: RolloutStep(r.kind, r.step) for r in running
                if r.endpoint in self.endpoints and watched(self.endpoints[r.endpoint])}

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            await self.check()
