"""The serve config's defence settings: rate limits (server-wide, per endpoint, per key) and
an endpoint's output policy (labels only, rounding, noise). Parsed here, at load time, so a
typo fails ``shipyard serve`` at once; ``service/config.py`` holds them.

    rate_limits:
      per_key: {rate: 100, burst: 200}       # each key (or anonymous client) on an endpoint
      per_endpoint: {rate: 1000, burst: 2000} # everyone on an endpoint together
      keys: {partner: {rate: 500, burst: 1000}}  # a key's own per-key rate
    rate_limit_store: redis://127.0.0.1:6379/0   # shared by every server; else in memory
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.defences import OutputPolicy, OutputPolicyError, Rate, RateError
from shipyard.errors import ShipyardError

STORE_ERRORS = ("open", "closed")


class DefenceConfigError(ShipyardError):
    """Raised by the parsers below; ``service/config.py`` turns it into a ConfigError."""


def parse_rate(value: Any, where: str) -> Rate:
    """``{rate: R, burst: B}`` (burst defaults to one second's worth, at least 1) or a bare
    number of requests a second."""
    if isinstance(value, Rate):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = {"rate": value}
    if not isinstance(value, Mapping) or "rate" not in value \
            or set(value) - {"rate", "burst"}:
        raise DefenceConfigError(f"{where} must be {{rate: REQUESTS_PER_SECOND, burst: N}}, "
                                 f"not {value!r}")
    rate = value["rate"]
    burst = value.get("burst")
    if burst is None and isinstance(rate, int | float) and not isinstance(rate, bool) \
            and 0 < rate < math.inf:
        burst = max(1, math.ceil(rate))
    try:
        return Rate(rate, burst)  # type: ignore[arg-type]  # Rate checks it
    except RateError as exc:
        raise DefenceConfigError(f"{where}: {exc}") from exc


def _rate_dict(rate: Rate | None) -> dict[str, Any] | None:
    return None if rate is None else {"rate": rate.rate, "burst": rate.burst}


@dataclass(frozen=True)
class RateLimits:
    """``per_key``: each API key's bucket on an endpoint (a request without a key: its
    client address's); ``per_endpoint``: one bucket for the endpoint; ``keys``: key name ->
    that key's own per-key rate (the hook for keys with their own limits)."""

    per_key: Rate | None = None
    per_endpoint: Rate | None = None
    keys: Mapping[str, Rate] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.per_key is not None or self.per_endpoint is not None or bool(self.keys)

    def over(self, shared: RateLimits | None) -> RateLimits:
        """These limits with ``shared`` (the server-wide ones) filling what they leave out."""
        if shared is None:
            return self
        return RateLimits(self.per_key or shared.per_key,
                          self.per_endpoint or shared.per_endpoint,
                          {**shared.keys, **self.keys})

    def key_rate(self, name: str | None) -> Rate | None:
        """The per-key rate of the key ``name`` (None: anonymous)."""
        if name is not None:
            own = self.keys.get(name)
            if own is not None:
                return own
        return self.per_key

    def to_dict(self) -> dict[str, Any]:
        return {"per_key": _rate_dict(self.per_key),
                "per_endpoint": _rate_dict(self.per_endpoint),
                "keys": {k: _rate_dict(v) for k, v in self.keys.items()}}

    @classmethod
    def parse(cls, data: Any, where: str = "rate_limits") -> RateLimits | None:
        if data is None or isinstance(data, RateLimits):
            return data
        if not isinstance(data, Mapping):
            raise DefenceConfigError(f"{where} must be a mapping (per_key, per_endpoint, "
                                     f"keys), not {data!r}")
        unknown = set(data) - {"per_key", "per_endpoint", "keys"}
        if unknown:
            raise DefenceConfigError(f"unknown {where} settings {sorted(unknown)}; known: "
                                     "['keys', 'per_endpoint', 'per_key']")
        keys = data.get("keys") or {}
        if not isinstance(keys, Mapping) or not all(isinstance(k, str) and k for k in keys):
            raise DefenceConfigError(f"{where}.keys maps key names to rates")
        return cls(
            None if data.get("per_key") is None else parse_rate(data["per_key"],
                                                                f"{where}.per_key"),
            None if data.get("per_endpoint") is None else parse_rate(
                data["per_endpoint"], f"{where}.per_endpoint"),
            {k: parse_rate(v, f"{where}.keys.{k}") for k, v in keys.items()})


def check_store(url: Any, on_error: Any, prefix: Any) -> None:
    """The shared store settings: a ``redis://`` / ``rediss://`` / ``unix://`` URL or None,
    ``open`` or ``closed`` when it fails, a non-empty key prefix."""
    if url is not None and not (isinstance(url, str) and url.split("://", 1)[0] in (
            "redis", "rediss", "unix") and "://" in url):
        raise DefenceConfigError("rate_limit_store is a redis://HOST:PORT/DB URL (or "
                                 "rediss://, unix://)")
    if on_error not in STORE_ERRORS:
        raise DefenceConfigError(f"rate_limit_on_store_error is open (let requests through) "
                                 f"or closed (refuse them with 503), not {on_error!r}")
    if not isinstance(prefix, str) or not prefix:
        raise DefenceConfigError("rate_limit_prefix must be a non-empty string")


def output_policy(labels_only: Any, round_to: Any, noise: Any) -> OutputPolicy:
    """An endpoint's ``labels_only``, ``round`` and ``noise`` as one policy."""
    try:
        return OutputPolicy(labels_only, round_to, 0.0 if noise is None else noise)
    except OutputPolicyError as exc:
        raise DefenceConfigError(str(exc)) from exc


def read_secret(path: str | None) -> bytes:
    """The output-noise key: the file's bytes (surrounding whitespace dropped; at least 16),
    else a random one for this process."""
    if path is None:
        return secrets.token_bytes(32)
    try:
        secret = Path(path).expanduser().read_bytes().strip()
    except OSError as exc:
        raise DefenceConfigError(f"cannot read output_secret_file {path}: {exc}") from exc
    if len(secret) < 16:
        raise DefenceConfigError(f"output_secret_file {path} holds fewer than 16 bytes")
    return secret
