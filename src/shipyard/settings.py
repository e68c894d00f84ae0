"""Settings read once from the environment and passed down; nothing else reads os.environ."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Build with `Settings.from_env()`; pass the object down."""

    home: Path
    ort_intra_op_threads: int
    ort_inter_op_threads: int
    device: str  # "cpu" or "auto" (use an accelerator's execution provider when present)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("SHIPYARD_HOME", "~/.shipyard")).expanduser()
        return cls(
            home=home,
            ort_intra_op_threads=int(env.get("SHIPYARD_ORT_THREADS", _default_threads())),
            ort_inter_op_threads=int(env.get("SHIPYARD_ORT_INTER_OP_THREADS", 1)),
            device=env.get("SHIPYARD_DEVICE", "auto"),
        )
