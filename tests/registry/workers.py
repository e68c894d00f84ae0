"""Worker processes for the concurrency tests (spawned: they must be importable functions).

Each worker opens its own registry, waits at the barrier so that all of them start writing at
once, then does its share. Failures are written to ``errors/<worker>.txt`` for the test.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from registry.helpers import MODEL, open_registry


def _report(root: str, worker: int) -> None:
    errors = Path(root) / "errors"
    errors.mkdir(exist_ok=True)
    (errors / f"{worker}.txt").write_text(traceback.format_exc())


def register_many(url: str, root: str, worker: int, package_dir: str, count: int,
                  barrier: Any) -> None:
    try:
        reg = open_registry(url, Path(root), actor=f"worker-{worker}")
        try:
            barrier.wait(timeout=60)
            for _ in range(count):
                reg.register(package_dir)
        finally:
            reg.close()
    except BaseException:
        _report(root, worker)
        raise


def move_alias(url: str, root: str, worker: int, versions: list[int], moves: int,
               barrier: Any) -> None:
    try:
        reg = open_registry(url, Path(root), actor=f"mover-{worker}")
        try:
            barrier.wait(timeout=60)
            for j in range(moves):
                reg.set_alias(MODEL, "production", versions[(worker + j) % len(versions)])
        finally:
            reg.close()
    except BaseException:
        _report(root, worker)
        raise
