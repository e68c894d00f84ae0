"""What ``shipyard serve`` serves: endpoints and their options, from arguments or YAML.

A ``monitor:`` section (top level for every endpoint, or inside an endpoint to override it
key by key) says how the scheduled monitor watches the prediction log: ``MonitorConfig``
(``monitor_config.py``). ``ConfigError`` and durations are ``config_values.py``; every name
is importable from here too.
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
from shipyard.service.config_values import ConfigError, format_duration, parse_duration
from shipyard.service.defence_config import (
    DefenceConfigError,
    RateLimits,
    check_store,
    output_policy,
)
from shipyard.service.monitor_config import MonitorConfig, slice_columns

__all__ = ["OPEN_ROUTES", "ConfigError", "EndpointConfig", "MonitorConfig", "ServeConfig",
           "default_endpoint_name", "format_duration", "parse_duration", "slice_columns"]


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
