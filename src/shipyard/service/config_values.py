"""The serve configuration's leaves: ``ConfigError`` and durations (``30s``, ``15m``, ``1h``),
shared by ``config.py`` (endpoints, serving) and ``monitor_config.py`` (the monitor section)."""

from __future__ import annotations

import re

from shipyard.errors import ShipyardError


class ConfigError(ShipyardError):
    """The serve configuration is invalid."""


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
           "w": 604800.0}


def parse_duration(value: str | float, what: str = "duration") -> float:
    """Seconds in ``"30s"``, ``"15m"``, ``"1h"``, ``"1d"`` (a bare number is seconds)."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a duration like 30s, 15m, 1h or 1d, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).strip().lower())
        if match is None:
            raise ConfigError(f"{what} must be a duration like 30s, 15m, 1h or 1d, "
                              f"got {value!r}")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"{what} must be positive, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 3600 -> ``1h``, 90 -> ``90s``."""
    for unit in ("w", "d", "h", "m", "s"):
        count = seconds / _UNIT_S[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{seconds:g}s"
