"""What ``shipyard serve`` serves: endpoints and their options, from arguments or YAML.

A ``monitor:`` section (top level for every endpoint, or inside an endpoint to override it
key by key) says how the scheduled monitor watches the prediction log: window length and
stride, reference, alert rules and where alerts go.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from math import inf
from pathlib import Path
from typing import Any, Literal

from shipyard.defences import OutputPolicy
from shipyard.errors import ShipyardError
from shipyard.names import SAFE_NAME_RULE, is_safe_name
from shipyard.packaging import check_name
from shipyard.registry import is_model_uri
from shipyard.service.defence_config import (
    DefenceConfigError,
    RateLimits,
    check_store,
    output_policy,
)


class ConfigError(ShipyardError):
    """The serve configuration is invalid."""


@dataclass(frozen=True)
class EndpointConfig:
    """One served endpoint. ``model`` is a package path or a ``models:/`` URI; an alias or
    ``@latest`` URI is watched, and a new version is swapped in when it moves.

    A package path is served as ``model_name``/``model_version`` (default: the directory's
    name, version 1): what responses, metrics, the prediction log and policies call it. A
    ``models:/`` URI names its own model and version, so these are refused with one."""

    name: str
    model: str
    model_name: str | None = None
    model_version: int | None = None
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_queue: int = 2048
    concurrency: int = 1
    timeout_s: float = 10.0
    # how long one batch may run in the model (None: timeout_s, when every request of the
    # batch has timed out anyway); past it the batch's requests get 504 and a hung
    # inference process is killed and restarted
    batch_timeout_s: float | None = None
    unknown_categories: Literal["pass", "reject"] = "pass"
    log_sample_rate: float = 1.0
    # the package may run its own code: unpickle its model, import the classes it names
    trust: bool = False
    runtime: str | None = None
    # "process": the model runs in a child process of its own, driven from the event loop
    # (no GIL shared with the HTTP side); "thread": in a thread of the server process
    inference: Literal["process", "thread"] = "process"
    # under a weighted or sticky split, the versions it routes to also load together in one
    # inference process fed by one batcher (``service/joint.py``): one frame per batch
    # whatever the split, for one more copy of each version's model in memory
    joint_inference: bool = True
    monitor: MonitorConfig | None = None  # None: the serve config's global monitor section
    # what answers show (defences against model extraction; the log keeps the true outputs):
    # the label only, probabilities rounded to ``round`` decimals, noise that keeps the label
    labels_only: bool = False
    round: int | None = None
    noise: float = 0.0
    # this endpoint's rate limits, over the serve config's (service/defence_config.py)
    rate_limits: RateLimits | None = None

    @property
    def output_policy(self) -> OutputPolicy:
        return output_policy(self.labels_only, self.round, self.noise)

    @property
    def batch_deadline_s(self) -> float:
        """How long one batch may run (``batch_timeout_s``, else ``timeout_s``)."""
        return self.timeout_s if self.batch_timeout_s is None else self.batch_timeout_s

    def served_as(self, path: str) -> tuple[str, int]:
        """The model name and version the package at ``path`` is served as."""
        return self.model_name or Path(path).name, self.model_version or 1

    def __post_init__(self) -> None:
        if not is_safe_name(self.name):
            raise ConfigError(f"invalid endpoint name {self.name!r}: use {SAFE_NAME_RULE}")
        self._check_served_as()
        if self.max_batch_size < 1 or self.max_queue < 1 or self.concurrency < 1:
            raise ConfigError(f"endpoint {self.name}: max_batch_size, max_queue and "
                              "concurrency must be at least 1")
        if self.max_wait_ms < 0 or self.timeout_s <= 0:
            raise ConfigError(f"endpoint {self.name}: max_wait_ms >= 0 and timeout_s > 0")
        if self.batch_timeout_s is not None and not self.batch_timeout_s > 0:
            raise ConfigError(f"endpoint {self.name}: batch_timeout_s must be positive")
        if not 0.0 <= self.log_sample_rate <= 1.0:
            raise ConfigError(f"endpoint {self.name}: log_sample_rate must be in [0, 1]")
        if self.unknown_categories not in ("pass", "reject"):
            raise ConfigError(f"endpoint {self.name}: unknown_categories is pass or reject")
        if not isinstance(self.trust, bool):  # YAML "false" (a string) must not trust
            raise ConfigError(f"endpoint {self.name}: trust is true or false, not "
                              f"{self.trust!r}")
        if not isinstance(self.joint_inference, bool):
            raise ConfigError(f"endpoint {self.name}: joint_inference is true or false, not "
                              f"{self.joint_inference!r}")
        if self.inference not in ("process", "thread"):
            raise ConfigError(f"endpoint {self.name}: inference is process or thread, "
                              f"not {self.inference!r}")
        try:
            object.__setattr__(self, "rate_limits", RateLimits.parse(self.rate_limits))
            self.output_policy  # noqa: B018 - checked here, at load time
        except DefenceConfigError as exc:
            raise ConfigError(f"endpoint {self.name}: {exc}") from exc

    def _check_served_as(self) -> None:
        if self.model_name is None and self.model_version is None:
            return
        if is_model_uri(self.model):
            raise ConfigError(f"endpoint {self.name}: model_name and model_version name what "
                              f"a package path is served as; {self.model} names its own model "
                              "and version (remove them)")
        if self.model_name is not None:
            try:
                check_name(self.model_name)
            except ShipyardError as exc:
                raise ConfigError(f"endpoint {self.name}: model_name: {exc}") from exc
        version = self.model_version
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                    or version < 1):
            raise ConfigError(f"endpoint {self.name}: model_version is a whole number, at "
                              f"least 1, not {version!r}")


OPEN_ROUTES = ("metrics", "openapi", "docs", "ui")


@dataclass(frozen=True)
class ServeConfig:
    endpoints: tuple[EndpointConfig, ...]
    log_dir: str | None = None  # default: $SHIPYARD_HOME/logs
    flush_interval_s: float = 1.0
    max_body_bytes: int = 8 * 1024 * 1024
    poll_interval_s: float = 5.0
    # never in a repr (a log line or a traceback): key name -> secret
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    # the admin API (/v1/deployments): key name -> secret, never in a repr either
    admin_api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    monitor: MonitorConfig | None = None  # for every endpoint without its own section
    # feedback is taken for requests answered within this many seconds (see service.feedback)
    feedback_horizon_s: float = 86400.0
    idle_timeout_s: float = 5.0  # a connection without a request is closed after this
    read_timeout_s: float = 30.0  # a request (headers and body) must arrive whole within
    # run the rollout controller (canary steps, A/B verdicts, shadow comparisons) when an
    # endpoint serves from the registry; with several servers, one holds each rollout's lease
    rollout_controller: bool = True
    # a dead holder's rollouts wait this long for another server's controller, which ticks
    # every poll interval (at most a third of this)
    rollout_lease_s: float = 30.0
    # a version a policy change leaves out stays loaded (not routed to) this long, so that
    # a rollback or switch back within it needs no load; 0: closed at once
    retain_previous_s: float = 600.0
    # /metrics exports per-feature drift and missing rates for this many features per
    # endpoint (those with the largest values): bounded series however wide the model
    metrics_top_features: int = 20
    # signed packages (packaging/signing.py): a folder of trusted public keys (*.pub); with
    # require_signed every version must carry a signature by one of them to load; None:
    # from the settings (SHIPYARD_TRUSTED_KEYS, SHIPYARD_REQUIRE_SIGNED)
    trusted_keys: str | None = None
    require_signed: bool | None = None
    # API keys from the registry too (``shipyard keys create``), read every poll interval
    registry_keys: bool = True
    # routes that stay open when keys exist (health routes always are): any of metrics,
    # openapi, docs, ui
    open_routes: tuple[str, ...] = ()
    # rate limits of every endpoint (an endpoint's own override them), kept in memory, or in
    # the Redis ``rate_limit_store`` shared by every server (service/defence_config.py)
    rate_limits: RateLimits | None = None
    rate_limit_store: str | None = field(default=None, repr=False)  # may hold a password
    rate_limit_prefix: str = "shipyard:rl:"
    rate_limit_on_store_error: Literal["open", "closed"] = "open"
    # the key of the endpoints' output noise (a file holding a secret); None: a random one
    # per server process
    output_secret_file: str | None = None

    def __post_init__(self) -> None:
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate endpoint names: {names}")
        try:
            object.__setattr__(self, "rate_limits", RateLimits.parse(self.rate_limits))
            check_store(self.rate_limit_store, self.rate_limit_on_store_error,
                        self.rate_limit_prefix)
        except DefenceConfigError as exc:
            raise ConfigError(str(exc)) from exc
        if self.output_secret_file is not None and not (
                isinstance(self.output_secret_file, str) and self.output_secret_file):
            raise ConfigError("output_secret_file is the path of a file holding a secret")
        if self.flush_interval_s <= 0 or self.poll_interval_s <= 0 or self.max_body_bytes < 1 \
                or not self.feedback_horizon_s > 0 \
                or not self.idle_timeout_s > 0 or not self.read_timeout_s > 0:
            raise ConfigError("flush_interval_s, poll_interval_s, max_body_bytes, "
                              "feedback_horizon_s, idle_timeout_s and read_timeout_s must be "
                              "positive")
        for what, keys in (("api_keys", self.api_keys),
                           ("admin_api_keys", self.admin_api_keys)):
            if not isinstance(keys, Mapping) or not all(
                    isinstance(name, str) and name and isinstance(secret, str) and secret
                    for name, secret in keys.items()):
                # an empty secret would match a request that sends no key at all
                raise ConfigError(f"{what} maps key names to non-empty secret strings")
        if not isinstance(self.registry_keys, bool):
            raise ConfigError(f"registry_keys is true or false, not {self.registry_keys!r}")
        if isinstance(self.open_routes, str) or not isinstance(self.open_routes, Sequence) \
                or not set(self.open_routes) <= set(OPEN_ROUTES):
            raise ConfigError(f"open_routes is a list of {', '.join(OPEN_ROUTES)}, not "
                              f"{self.open_routes!r}")
        object.__setattr__(self, "open_routes", tuple(self.open_routes))
        if self.require_signed is not None and not isinstance(self.require_signed, bool):
            raise ConfigError(f"require_signed is true or false, not {self.require_signed!r}")
        if self.trusted_keys is not None and not isinstance(self.trusted_keys, str):
            raise ConfigError(f"trusted_keys is a folder of public keys (*.pub), not "
                              f"{self.trusted_keys!r}")
        if not isinstance(self.rollout_controller, bool):  # YAML "false" is a string
            raise ConfigError(f"rollout_controller is true or false, not "
                              f"{self.rollout_controller!r}")
        if isinstance(self.rollout_lease_s, bool) or not isinstance(
                self.rollout_lease_s, int | float) or not self.rollout_lease_s > 0:
            raise ConfigError(f"rollout_lease_s must be positive, not {self.rollout_lease_s!r}")
        if isinstance(self.retain_previous_s, bool) or not isinstance(
                self.retain_previous_s, int | float) or not 0 <= self.retain_previous_s < inf:
            raise ConfigError(f"retain_previous_s must be 0 (close at once) or a positive "
                              f"number of seconds, not {self.retain_previous_s!r}")
        if isinstance(self.metrics_top_features, bool) or not isinstance(
                self.metrics_top_features, int) or self.metrics_top_features < 0:
            raise ConfigError(f"metrics_top_features must be a whole number of features (0: "
                              f"none), not {self.metrics_top_features!r}")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["endpoints"] = [_endpoint_dict(e) for e in self.endpoints]
        out["api_keys"] = dict(self.api_keys)
        out["admin_api_keys"] = dict(self.admin_api_keys)
        out["rate_limits"] = None if self.rate_limits is None else self.rate_limits.to_dict()
        if self.monitor is None:
            del out["monitor"]
        else:
            out["monitor"] = self.monitor.to_dict()
        return out

    def monitor_for(self, endpoint: str) -> MonitorConfig | None:
        """The monitor settings of ``endpoint`` (its own section, else the global one), or
        None when it is not monitored on a schedule."""
        config = next((e.monitor for e in self.endpoints if e.name == endpoint), None)
        config = config or self.monitor
        return config if config is not None and config.enabled else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServeConfig:
        if not isinstance(data, Mapping):
            raise ConfigError("the serve config must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown serve settings {sorted(unknown)}; known: {sorted(known)}")
        raw = data.get("endpoints") or []
        if not isinstance(raw, Sequence) or not raw:
            raise ConfigError("the serve config needs at least one endpoint")
        shared = data.get("monitor")
        if shared is not None and not isinstance(shared, Mapping):
            raise ConfigError(f"monitor must be a mapping of settings, got {shared!r}")
        endpoints = tuple(_endpoint(e, shared) for e in raw)
        rest = {k: v for k, v in data.items() if k not in ("endpoints", "monitor")}
        if shared is not None:
            rest["monitor"] = MonitorConfig.from_dict(shared)
        try:
            return cls(endpoints=endpoints, **rest)
        except TypeError as exc:
            raise ConfigError(f"invalid serve config: {exc}") from exc

    @classmethod
    def from_file(cls, path: Path) -> ServeConfig:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read serve config {path}: {exc}") from exc
        return cls.from_dict(data or {})

    def trusting_all(self) -> ServeConfig:
        """Every endpoint with ``trust`` (``shipyard serve --trust``)."""
        return replace(self, endpoints=tuple(replace(e, trust=True) for e in self.endpoints))

    def with_models(self, models: Sequence[str]) -> ServeConfig:
        """Add one endpoint per model argument (named after the model)."""
        extra = tuple(EndpointConfig(name=default_endpoint_name(m), model=m) for m in models)
        return replace(self, endpoints=self.endpoints + extra)


def _endpoint_dict(endpoint: EndpointConfig) -> dict[str, Any]:
    out = {f.name: getattr(endpoint, f.name) for f in fields(endpoint)}
    out["rate_limits"] = None if endpoint.rate_limits is None else \
        endpoint.rate_limits.to_dict()
    if endpoint.monitor is None:
        del out["monitor"]
    else:
        out["monitor"] = endpoint.monitor.to_dict()
    return out


def _endpoint(data: Any, shared: Mapping[str, Any] | None = None) -> EndpointConfig:
    if not isinstance(data, Mapping) or "model" not in data:
        raise ConfigError(f"each endpoint needs at least a model: got {data!r}")
    known = {f.name for f in fields(EndpointConfig)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown endpoint settings {sorted(unknown)}; known: {sorted(known)}")
    values = dict(data)
    values.setdefault("name", default_endpoint_name(str(values["model"])))
    own = values.get("monitor")
    if own is not None:
        if not isinstance(own, Mapping):
            raise ConfigError(f"endpoint {values['name']}: monitor must be a mapping of "
                              f"settings, got {own!r}")
        values["monitor"] = MonitorConfig.from_dict({**(shared or {}), **own},
                                                    where=f"endpoint {values['name']}: ")
    try:
        return EndpointConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"invalid endpoint {data!r}: {exc}") from exc


def default_endpoint_name(model: str) -> str:
    """``models:/fraud@production`` -> ``fraud``; ``/pkgs/iris`` -> ``iris``."""
    if model.startswith("models:/"):
        body = model[len("models:/"):]
        return re.split(r"[@/]", body, maxsplit=1)[0]
    return Path(model.rstrip("/")).name or "model"


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
