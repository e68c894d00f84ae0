"""Where the dashboard's numbers come from: only what already exists, no store of its own.

- the monitor's stored windows and alert state (``MonitorHistory``), read as ``/metrics``
  reads them (``monitor_metrics.newest_analysed`` over ``MonitorHistory.recent``), so a
  figure on a page equals the one Prometheus scrapes; a file is parsed again only when its
  size or mtime changed;
- the registry: deployments, traffic shares and running rollouts as the admin API answers
  them (``service.deployment_status``), versions, aliases, lineage, audit;
- the prediction log's ``errors`` rows (failed answers per window);
- when ``shipyard serve`` mounts the dashboard, its data plane: endpoint health, signatures,
  predict and feedback.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError
from shipyard.names import check_endpoint_name
from shipyard.service.monitor_history import MonitorHistory
from shipyard.service.monitor_metrics import alert_rules, newest_analysed
from shipyard.stores.log_location import log_root
from shipyard.ui.log_rows import LogRows, error_counts

if TYPE_CHECKING:
    from shipyard.registry import Registry
    from shipyard.service.config import ServeConfig
    from shipyard.service.dataplane import DataPlane
    from shipyard.service.monitor import Monitor
    from shipyard.settings import Settings

# the history tail read for the newest window, doubled while it holds no analysed one (up
# to the 1 MiB that ``/metrics`` reads): a window's line is a few KiB
FIRST_TAIL, LAST_TAIL = 32 << 10, 1 << 20


@dataclass(frozen=True)
class Newest:
    """What the overview shows of an endpoint's monitor: its newest analysed window (the one
    ``/metrics`` exports) and its alert rules with those firing."""

    record: dict[str, Any] | None
    rules: list[str]
    firing: set[str]
    events: list[dict[str, Any]]


class DashboardSource:
    """The data of one dashboard: ``log_dir`` (prediction log and monitor results), a
    registry opened on first use, and the data plane when a model server mounts it."""

    def __init__(self, log_dir: str | Path, *, registry: Callable[[], Registry] | None = None,
                 plane: DataPlane | None = None, settings: Settings | None = None) -> None:
        self.log_dir = log_root(log_dir)
        self.settings = settings if plane is None else plane.settings
        self.home = None if self.settings is None else self.settings.home
        self.plane = plane
        self._registry_factory = registry
        self._registry: Registry | None = None
        self._lock = threading.Lock()
        self._histories: dict[str, MonitorHistory] = {}
        self._newest: dict[str, tuple[Any, Newest]] = {}
        self._errors: dict[tuple[str, str], dict[str, int]] = {}
        self.log_rows = LogRows(self.log_dir)

    # -- what exists ---------------------------------------------------------------------------

    @property
    def registry(self) -> Registry | None:
        if self.plane is not None:
            return self.plane.registry
        if self._registry is None and self._registry_factory is not None:
            with self._lock:
                if self._registry is None:
                    self._registry = self._registry_factory()
        return self._registry

    @property
    def config(self) -> ServeConfig | None:
        return None if self.plane is None else self.plane.config

    def endpoints(self) -> list[str]:
        """The served endpoints; without a server, every endpoint with monitor results or a
        deployment in the registry."""
        if self.plane is not None:
            return list(self.plane.endpoints)
        names = set()
        folder = MonitorHistory(self.log_dir, "any", home=self.home).folder.parent
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if entry.is_dir() and entry.name.startswith("endpoint="):
                    names.add(entry.name.removeprefix("endpoint="))
        try:
            registry = self.registry
            if registry is not None:
                names.update(registry.deployments.endpoints())
        except ShipyardError:  # the overview says so; the monitored endpoints still show
            pass
        return sorted(names)

    def check(self, endpoint: str) -> str:
        """``endpoint`` when this dashboard knows it, else a `NotFoundError`."""
        from shipyard.errors import NotFoundError

        check_endpoint_name(endpoint)
        if endpoint not in self.endpoints():
            raise NotFoundError(f"no endpoint {endpoint!r}")
        return endpoint

    def history(self, endpoint: str) -> MonitorHistory:
        found = self._histories.get(endpoint)
        if found is None:
            found = self._histories[endpoint] = MonitorHistory(self.log_dir, endpoint,
                                                               home=self.home)
        return found

    def newest(self, endpoint: str) -> Newest:
        """The newest analysed window and the alert state, re-read only when a file changed."""
        history = self.history(endpoint)
        seen = history.stamp()
        cached = self._newest.get(endpoint)
        if cached is not None and cached[0] == seen:
            return cached[1]
        tail = FIRST_TAIL
        record = newest_analysed(history.recent(tail))
        while record is None and tail < LAST_TAIL and history.path.exists() \
                and history.path.stat().st_size > tail:
            tail *= 2
            record = newest_analysed(history.recent(tail))
        try:
            state = history.load_state() or {}
        except ShipyardError:
            state = {}
        rules, firing = alert_rules(state)
        events = [e for e in state.get("events") or () if isinstance(e, dict)]
        found = Newest(record, rules, firing, events)
        self._newest[endpoint] = (seen, found)
        return found

    def monitor(self, endpoint: str) -> Monitor:
        """The endpoint's monitor as configured (a served endpoint's ``monitor:`` section and
        model source), for periods computed on demand (the feature page)."""
        from shipyard.service.monitor import Monitor

        config = self.config
        settings = self.settings
        if config is not None:
            match = next((e for e in config.endpoints if e.name == endpoint), None)
            return Monitor(endpoint, self.log_dir, config.monitor_for(endpoint),
                           model_source=None if match is None else match.model,
                           settings=settings)
        return Monitor(endpoint, self.log_dir, settings=settings)

    # -- failed answers ------------------------------------------------------------------------

    def errors(self, endpoint: str, window: Mapping[str, Any]) -> dict[str, int]:
        """Server errors (status >= 500, as the Prometheus rules count them; not shadow
        copies) in ``window`` (a record's
        ``window``) per version (``"N"``); a complete window's count is kept."""
        key = (endpoint, f"{window.get('start_ts')}/{window.get('end_ts')}")
        cached = self._errors.get(key)
        if cached is not None:
            return cached
        counts = self.errors_between(endpoint, float(window["start_ts"]),
                                     float(window["end_ts"]))
        if window.get("complete"):
            self._errors[key] = counts
        return counts

    def errors_between(self, endpoint: str, since: float, until: float) -> dict[str, int]:
        """Server errors per version logged in ``[since, until)``."""
        return error_counts(self.log_rows.errors(endpoint, since, until))

    def close(self) -> None:
        if self._registry is not None and self.plane is None:
            self._registry.close()

