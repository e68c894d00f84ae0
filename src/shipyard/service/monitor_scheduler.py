"""Runs the monitors of a server's endpoints as their windows close, in one thread.

    scheduler = MonitorScheduler.from_config(serve_config, settings)   # None: nothing to do
    scheduler.start()   # in the server's startup, after the prediction log writer starts
    scheduler.stop()    # in its shutdown: returns once the thread has finished

Monitoring never runs on the event loop: it reads Parquet and runs statistics for up to
seconds, so it gets its own daemon thread. A window ending at T is monitored at
``T + settle_s``, once the log writer has flushed its last rows (settle defaults to two
flush intervals plus a second). Each run takes the endpoint's file lock without waiting,
so with ``--workers N`` only one worker monitors a window and the others skip it. A failing
run is logged and retried at the next due time; ``stop()`` interrupts the wait at once and
a run in progress between two windows.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

from shipyard.service.config import ServeConfig
from shipyard.service.monitor import Monitor, MonitorRun
from shipyard.service.monitor_rules import check_serve_rules
from shipyard.settings import Settings
from shipyard.stores.log_location import is_remote
from shipyard.stores.predictions import NothingLoggedError

log = logging.getLogger(__name__)
MAX_SLEEP_S = 60.0  # re-check the clock at least this often (suspend, clock changes)


class MonitorScheduler:
    """Calls ``Monitor.run`` for each monitor when its next window is due."""

    def __init__(self, monitors: Sequence[Monitor], *, settle_s: float = 3.0,
                 catch_up: int = 96, clock: Callable[[], float] = time.time) -> None:
        self.monitors = tuple(monitors)
        self.settle_s = settle_s
        self.catch_up = catch_up  # most windows one run computes after a long pause
        self.clock = clock
        self.runs = 0
        self.failures = 0
        self._due = {m.endpoint: 0.0 for m in self.monitors}  # 0: run at start
        self._stop = threading.Event()
        self._waiting: set[str] = set()  # endpoints told "nothing logged yet" (said once)
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: ServeConfig, settings: Settings | None = None,
                    ) -> MonitorScheduler | None:
        """One monitor per endpoint with a ``monitor:`` section; None when there are none."""
        settings = settings or Settings.from_env()
        check_serve_rules(config, settings)  # before serving, not at the first window
        log_dir = config.log_dir or settings.home / "logs"  # a directory or a URL
        monitors = []
        for endpoint in config.endpoints:
            monitor = config.monitor_for(endpoint.name)
            if monitor is not None:
                monitors.append(Monitor(endpoint.name, log_dir, monitor,
                                        model_source=endpoint.model, settings=settings))
        if not monitors:
            return None
        # segments of inference processes reach a log on an object store one upload later
        flushes = 3 if is_remote(log_dir) else 2
        return cls(monitors, settle_s=flushes * config.flush_interval_s + 1.0)

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="shipyard-monitor",
                                        daemon=True)
        self._thread.start()
        log.info("monitoring %s", ", ".join(m.endpoint for m in self.monitors))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the window being computed, if any; wait at most ``timeout`` seconds."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the monitor thread is still finishing a window; not waiting")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_due(self) -> list[MonitorRun]:
        """Run every monitor that is due now (the thread's body; tests call it directly)."""
        runs = []
        for monitor in self.monitors:
            if self._stop.is_set():
                break
            now = self.clock()
            if now < self._due[monitor.endpoint]:
                continue
            self._due[monitor.endpoint] = self._next_due(monitor, now)
            try:
                run = monitor.run(partial=False, wait=False, max_windows=self.catch_up,
                                  should_stop=self._stop.is_set)
            except NothingLoggedError:  # no traffic yet: normal on a fresh server
                if monitor.endpoint not in self._waiting:
                    self._waiting.add(monitor.endpoint)
                    log.info("monitor %s: nothing logged yet; waiting for traffic",
                             monitor.endpoint)
                continue
            except Exception:  # a bad window, a missing reference: log, retry next time
                self.failures += 1
                log.exception("monitor %s: run failed; retrying at the next window",
                              monitor.endpoint)
                continue
            self.runs += 1
            runs.append(run)
            if run.records:
                log.info("monitor %s: %d window(s), %d stored, %d alert event(s)",
                         monitor.endpoint, len(run.records), run.stored, len(run.events))
        return runs

    def _next_due(self, monitor: Monitor, now: float) -> float:
        every = monitor.config.every
        if monitor.config.last is not None:
            return now + every
        return (math.floor((now - self.settle_s) / every) + 1) * every + self.settle_s

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # never let the thread die
                log.exception("monitor scheduler: unexpected error")
            wait = min(self._due.values(), default=math.inf) - self.clock()
            self._stop.wait(min(MAX_SLEEP_S, max(0.05, wait)))
