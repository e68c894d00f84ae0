"""Settings read once (environment, then ``$SHIPYARD_HOME/config.toml``) and passed down.

Nothing else in shipyard reads ``os.environ``.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError

# setting name -> environment variable; the config file uses the setting name as its key
ENV_VARS = {
    "registry_url": "SHIPYARD_REGISTRY_URL",
    "artifacts": "SHIPYARD_ARTIFACTS",
    "actor": "SHIPYARD_ACTOR",
    "ort_intra_op_threads": "SHIPYARD_ORT_THREADS",
    "ort_inter_op_threads": "SHIPYARD_ORT_INTER_OP_THREADS",
    "device": "SHIPYARD_DEVICE",
    "trusted_keys": "SHIPYARD_TRUSTED_KEYS",
    "require_signed": "SHIPYARD_REQUIRE_SIGNED",
    "require_evaluation": "SHIPYARD_REQUIRE_EVALUATION",
}


def without_password(url: str) -> str:
    """``url`` for messages and logs: a password in it (``user:PASSWORD@host``) becomes
    ``***``. Works on URLs no parser accepts too, which are the ones error messages show."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{host}"


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Build with ``Settings.from_env()``; pass the object down."""

    home: Path
    registry_url: str = field(repr=False)  # a database URL may hold a password
    artifacts: str = field(repr=False)  # so may a store URL
    actor: str
    ort_intra_op_threads: int
    ort_inter_op_threads: int
    device: str  # "cpu" or "auto" (use an accelerator's execution provider when present)
    # a folder of trusted public keys (*.pub): a package signed by one is trusted; with
    # require_signed, the registry and the server refuse every other package
    trusted_keys: str | None = None
    require_signed: bool = False
    # every alias move, deploy and rollout start (but shadows) needs a version whose newest
    # gated evaluation passed, or an audited override (registry/evaluations.py)
    require_evaluation: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("SHIPYARD_HOME", "~/.shipyard")).expanduser()
        values: dict[str, Any] = {
            "registry_url": f"sqlite:///{home / 'registry.db'}",
            "artifacts": str(home / "artifacts"),
            "actor": _os_user(),
            "ort_intra_op_threads": _default_threads(),
            "ort_inter_op_threads": 1,
            "device": "auto",
        }
        values.update(_config_file(home / "config.toml"))
        values.update({k: env[v] for k, v in ENV_VARS.items() if v in env})
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(
                home=home, registry_url=str(values["registry_url"]),
                artifacts=str(values["artifacts"]), actor=str(values["actor"]),
                ort_intra_op_threads=int(values["ort_intra_op_threads"]),
                ort_inter_op_threads=int(values["ort_inter_op_threads"]),
                device=str(values["device"]),
                trusted_keys=str(values["trusted_keys"]) if values.get("trusted_keys") else None,
                require_signed=_flag(values.get("require_signed", False)),
                require_evaluation=_flag(values.get("require_evaluation", False)),
            )
        except (TypeError, ValueError) as exc:
            raise ShipyardError(f"invalid setting: {exc}") from exc


    def to_env(self) -> dict[str, str]:
        """These settings as environment variables: a child process's ``from_env()`` then
        reads the same settings back."""
        env = {"SHIPYARD_HOME": str(self.home)}
        env.update({var: str(getattr(self, name)) for name, var in ENV_VARS.items()
                    if getattr(self, name) is not None and getattr(self, name) is not False})
        return env


def _flag(value: object) -> bool:
    """A yes/no setting: a TOML boolean, or 1/0, true/false, yes/no from the environment."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ShipyardError(f"{path} is not valid TOML: {exc}") from exc
    unknown = set(data) - set(ENV_VARS)
    if unknown:
        raise ShipyardError(f"{path}: unknown settings {sorted(unknown)}; known: "
                            f"{sorted(ENV_VARS)}")
    return data
