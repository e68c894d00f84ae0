"""What ``shipyard monitor`` and ``shipyard report`` read from their options: an endpoint's
monitor settings, model source and log directory (from a serve config, ``--log-dir`` and
``--reference``), and a moment given as an ISO time or a duration ago."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.service.config import MonitorConfig


def monitor_settings(endpoint: str | None, config: Path | None, log_dir: str | None,
              reference: str | None) -> tuple[MonitorConfig, str | None, str | Path]:
    """The endpoint's monitor settings, model source and log directory."""
    from dataclasses import replace

    from shipyard.service.config import MonitorConfig, ServeConfig
    from shipyard.settings import Settings
    from shipyard.stores.log_location import log_root

    monitor, source, root = MonitorConfig(), None, None
    if config is not None:
        serve = ServeConfig.from_file(config)
        root = log_root(serve.log_dir) if serve.log_dir else None
        match = next((e for e in serve.endpoints if e.name == endpoint), None)
        if match is not None:
            monitor = match.monitor or serve.monitor or monitor
            source = match.model
        elif endpoint is not None:
            raise ShipyardError(f"{config} has no endpoint {endpoint!r}; it has "
                                f"{[e.name for e in serve.endpoints]}")
    if reference is not None:
        monitor = replace(monitor, reference=reference)
    if log_dir is not None:
        root = log_root(log_dir)
    return monitor, source, root or Settings.from_env().home / "logs"


def moment(text: str | None, option: str) -> float | None:
    """Seconds since the epoch of an ISO time (local when it names no zone) or of a
    duration ago (``2h``: two hours before now)."""
    if text is None:
        return None
    from shipyard.service.config import ConfigError, parse_duration

    try:
        return time.time() - parse_duration(text)
    except ConfigError:
        pass
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text)
        # a naive time at the calendar's edge (0001-01-01) has no local zone: ValueError
        return (moment if moment.tzinfo else moment.astimezone()).timestamp()
    except (ValueError, OverflowError):
        raise ShipyardError(f"{option} takes an ISO 8601 time (2024-05-01T12:00) or a "
                            f"duration ago (2h, 7d), got {text!r}") from None
