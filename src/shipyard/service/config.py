"""What ``shipyard serve`` serves: endpoints and their options, from arguments or YAML."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from shipyard.errors import ShipyardError

_ENDPOINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ConfigError(ShipyardError):
    """The serve configuration is invalid."""


@dataclass(frozen=True)
class EndpointConfig:
    """One served endpoint. ``model`` is a package path or a ``models:/`` URI; an alias or
    ``@latest`` URI is watched, and a new version is swapped in when it moves."""

    name: str
    model: str
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_queue: int = 2048
    concurrency: int = 1
    timeout_s: float = 10.0
    unknown_categories: Literal["pass", "reject"] = "pass"
    log_sample_rate: float = 1.0
    trust: bool = False
    runtime: str | None = None

    def __post_init__(self) -> None:
        if not _ENDPOINT.match(self.name):
            raise ConfigError(f"invalid endpoint name {self.name!r}")
        if self.max_batch_size < 1 or self.max_queue < 1 or self.concurrency < 1:
            raise ConfigError(f"endpoint {self.name}: max_batch_size, max_queue and "
                              "concurrency must be at least 1")
        if self.max_wait_ms < 0 or self.timeout_s <= 0:
            raise ConfigError(f"endpoint {self.name}: max_wait_ms >= 0 and timeout_s > 0")
        if not 0.0 <= self.log_sample_rate <= 1.0:
            raise ConfigError(f"endpoint {self.name}: log_sample_rate must be in [0, 1]")
        if self.unknown_categories not in ("pass", "reject"):
            raise ConfigError(f"endpoint {self.name}: unknown_categories is pass or reject")


@dataclass(frozen=True)
class ServeConfig:
    endpoints: tuple[EndpointConfig, ...]
    log_dir: str | None = None  # default: $SHIPYARD_HOME/logs
    flush_interval_s: float = 1.0
    max_body_bytes: int = 8 * 1024 * 1024
    poll_interval_s: float = 5.0
    api_keys: Mapping[str, str] = field(default_factory=dict)  # key name -> secret

    def __post_init__(self) -> None:
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate endpoint names: {names}")
        if self.flush_interval_s <= 0 or self.poll_interval_s <= 0 or self.max_body_bytes < 1:
            raise ConfigError("flush_interval_s, poll_interval_s and max_body_bytes must be "
                              "positive")
        if not isinstance(self.api_keys, Mapping) or not all(
                isinstance(name, str) and isinstance(secret, str) and secret
                for name, secret in self.api_keys.items()):
            # an empty secret would match a request that sends no key at all
            raise ConfigError("api_keys maps key names to non-empty secret strings")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["endpoints"] = [{f.name: getattr(e, f.name) for f in fields(e)}
                            for e in self.endpoints]
        out["api_keys"] = dict(self.api_keys)
        return out

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
        endpoints = tuple(_endpoint(e) for e in raw)
        rest = {k: v for k, v in data.items() if k != "endpoints"}
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

    def with_models(self, models: Sequence[str]) -> ServeConfig:
        """Add one endpoint per model argument (named after the model)."""
        extra = tuple(EndpointConfig(name=default_endpoint_name(m), model=m) for m in models)
        return replace(self, endpoints=self.endpoints + extra)


def _endpoint(data: Any) -> EndpointConfig:
    if not isinstance(data, Mapping) or "model" not in data:
        raise ConfigError(f"each endpoint needs at least a model: got {data!r}")
    known = {f.name for f in fields(EndpointConfig)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown endpoint settings {sorted(unknown)}; known: {sorted(known)}")
    values = dict(data)
    values.setdefault("name", default_endpoint_name(str(values["model"])))
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
