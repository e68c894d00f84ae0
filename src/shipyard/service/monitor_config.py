"""The ``monitor:`` section of a serve configuration: how the scheduled monitor watches an
endpoint's prediction log (window length and stride, reference, alert rules and where alerts
go, slice columns). Rules and webhooks are parsed when the configuration loads, so a typo
fails ``shipyard serve`` at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.service.config_values import ConfigError, format_duration, parse_duration


@dataclass(frozen=True)
class MonitorConfig:
    """How the monitor watches an endpoint. Durations are seconds here; YAML may spell them
    ``15m`` or ``1h``.

    Time windows are ``window`` long and end on multiples of ``every`` (epoch-aligned, so a
    window has the same bounds on every run and every worker); ``window`` defaults to
    ``every`` (tumbling windows). ``last`` replaces time windows by the newest N rows.
    """

    enabled: bool = True
    every: float = 900.0
    window: float | None = None
    last: int | None = None
    reference: str | None = None  # dataset or profile file, package dir or models:/ URI
    rules: tuple[str | Mapping[str, Any], ...] = ()  # "drift_share > 0.3 for 2 windows"
    webhooks: tuple[str | Mapping[str, Any], ...] = ()  # URL or {url, headers?, name?}
    on_alert: str | tuple[str, ...] | None = None  # command (argv or a string, no shell)
    # server environment variables the command gets beside the safe ones (alerting.py)
    on_alert_env: tuple[str, ...] = ()
    min_rows: int = 30
    methods: Mapping[str, str] = field(default_factory=dict)  # column -> drift method
    # performance per slice of these columns (monitoring/slicing.py, slice_metrics.py)
    slices: tuple[str, ...] = ()
    slice_bins: int = 4  # a numeric slice column: bins between its reference quantiles
    slice_min_labelled: int = 30  # fewer labelled rows: reported, never alarmed on

    def __post_init__(self) -> None:
        self.check()
        _check_alerting(self)

    @property
    def window_s(self) -> float:
        return self.every if self.window is None else self.window

    def check(self) -> None:
        """Raise ConfigError for the first invalid setting."""
        if not isinstance(self.enabled, bool):
            raise ConfigError("monitor.enabled must be true or false")
        for name in ("every", "window"):
            value = getattr(self, name)
            if (value is not None or name == "every") and (isinstance(value, bool) or not
                                                          isinstance(value, (int, float))
                                                          or not value > 0):
                raise ConfigError(f"monitor.{name} must be a positive duration")
        if self.window is not None and self.window < self.every:
            raise ConfigError(f"monitor.window ({format_duration(self.window)}) must "
                              f"be at least monitor.every ({format_duration(self.every)}): "
                              "windows would leave rows out")
        if self.last is not None and (isinstance(self.last, bool) or not isinstance(
                self.last, int) or self.last < 1):
            raise ConfigError("monitor.last must be a positive number of rows")
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) or \
                self.min_rows < 1:
            raise ConfigError("monitor.min_rows must be a positive number of rows")
        if self.reference is not None and not (isinstance(self.reference, str)
                                               and self.reference):
            raise ConfigError("monitor.reference must be a path or models:/ URI")
        if self.on_alert is not None and not (
                (isinstance(self.on_alert, str) and self.on_alert.strip())
                or (isinstance(self.on_alert, tuple) and self.on_alert
                    and all(isinstance(a, str) for a in self.on_alert))):
            raise ConfigError("monitor.on_alert must be a command line or a list of "
                              "arguments")
        if not isinstance(self.on_alert_env, tuple) or not all(
                isinstance(n, str) and n for n in self.on_alert_env):
            raise ConfigError("monitor.on_alert_env must be a list of environment variable "
                              "names")
        for name in ("rules", "webhooks"):
            if not all(isinstance(v, (str, Mapping)) and v for v in getattr(self, name)):
                raise ConfigError(f"monitor.{name} must be a list of strings or mappings")
        if not isinstance(self.methods, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.methods.items()):
            raise ConfigError("monitor.methods maps column names to drift methods")
        _check_slices(self)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["rules"] = [r if isinstance(r, str) else dict(r) for r in self.rules]
        out["webhooks"] = [w if isinstance(w, str) else dict(w) for w in self.webhooks]
        if isinstance(self.on_alert, tuple):
            out["on_alert"] = list(self.on_alert)
        out["on_alert_env"] = list(self.on_alert_env)
        out["methods"] = dict(self.methods)
        out["slices"] = list(self.slices)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "") -> MonitorConfig:
        """Parse a YAML ``monitor:`` mapping; every problem is a ConfigError naming the key."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{where}unknown monitor settings {sorted(unknown)}; known: "
                              f"{sorted(known)}")
        values = {k: v for k, v in data.items() if not (k == "every" and v is None)}
        for name in ("every", "window"):
            if values.get(name) is not None:
                values[name] = parse_duration(values[name], f"{where}monitor.{name}")
        for name in ("rules", "webhooks"):
            raw = values.get(name)
            if raw is None:
                values[name] = ()
            elif isinstance(raw, (str, Mapping)):
                values[name] = (raw,)
            elif isinstance(raw, Sequence):
                values[name] = tuple(raw)
            else:
                raise ConfigError(f"{where}monitor.{name} must be a list")
        if isinstance(values.get("on_alert"), list):
            values["on_alert"] = tuple(values["on_alert"])
        if isinstance(values.get("on_alert_env"), list):
            values["on_alert_env"] = tuple(values["on_alert_env"])
        if values.get("methods") is None:
            values["methods"] = {}
        values["slices"] = slice_columns(values.get("slices"), f"{where}monitor.slices")
        try:
            config = cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from exc
        except TypeError as exc:
            raise ConfigError(f"{where}invalid monitor section: {exc}") from exc
        return config


def slice_columns(value: Any, what: str = "monitor.slices") -> tuple[str, ...]:
    """Slice columns from YAML or a command line: a list, or one text of comma-separated
    names (``cut,color``)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not all(isinstance(c, str) for c in items):
        raise ConfigError(f"{what} must be a list of column names, e.g. [cut, color]")
    names = tuple(c.strip() for c in items)
    if not all(names):
        raise ConfigError(f"{what} names an empty column: {value!r}")
    return names


def _check_slices(config: MonitorConfig) -> None:
    if not isinstance(config.slices, tuple) or not all(
            isinstance(c, str) and c for c in config.slices):
        raise ConfigError("monitor.slices must be a list of column names, e.g. [cut, color]")
    if len(set(config.slices)) != len(config.slices):
        raise ConfigError(f"monitor.slices names a column twice: {list(config.slices)}")
    for name in ("slice_bins", "slice_min_labelled"):
        value = getattr(config, name)
        low = 2 if name == "slice_bins" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"monitor.{name} must be a whole number >= {low}, not "
                              f"{value!r}")


def _check_alerting(config: MonitorConfig) -> None:
    """Rules and webhooks are parsed here, at load time, so a typo fails ``shipyard serve``
    at once rather than the first monitor run an hour later."""
    if not config.rules and not config.webhooks:
        return  # the parsers' imports (scipy, httpx) are not worth it for nothing
    from shipyard.monitoring.alert_metrics import check_metric_names, check_slice_columns
    from shipyard.monitoring.alerts import parse_rules
    from shipyard.service.alerting import WebhookTarget

    try:
        rules = parse_rules(config.rules)
        check_metric_names(rules)
        check_slice_columns(rules, config.slices)
    except ShipyardError as exc:
        raise ConfigError(f"monitor.rules: {exc}") from exc
    for item in config.webhooks:
        try:
            WebhookTarget.from_config(item)
        except ShipyardError as exc:
            raise ConfigError(f"monitor.webhooks: {exc}") from exc
