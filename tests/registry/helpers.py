"""Helpers shared by the registry tests and their worker processes (importable, no fixtures)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shipyard.errors import ConflictError
from shipyard.registry import Registry
from shipyard.settings import Settings

MODEL = "iris"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class Packages:
    """Small iris classifiers, packaged once per session, all named ``iris``.

    ``compatible`` takes the same inputs as ``base``; the others break its clients.
    """

    x: Any  # the iris features (a DataFrame)
    model: Any  # the fitted LogisticRegression packaged as ``base``
    base: Any  # shipyard.Package
    base_dir: Path  # ``base`` saved as a package directory
    compatible: Any
    removed_column: Any
    renamed_column: Any
    narrowed_dtype: Any
    relabelled: Any


def backend_name(url: str) -> str:
    return sa.make_url(url).get_backend_name()


def open_registry(url: str, root: Path, *, actor: str = "tester",
                  auto_upgrade: bool | None = None) -> Registry:
    """A registry whose blobs and cache live under ``root`` (never ``~/.shipyard``)."""
    if auto_upgrade is None and backend_name(url) == "postgresql":
        auto_upgrade = True
    return Registry(url, artifacts=root / "blobs", actor=actor,
                    settings=Settings.from_env({"SHIPYARD_HOME": str(root / "home")}),
                    auto_upgrade=auto_upgrade)


def stored_blobs(root: Path) -> dict[str, Path]:
    """Every blob file in the local artifact store under ``root``, by SHA-256."""
    base = root / "blobs" / "sha256"
    if not base.exists():
        return {}
    return {p.name: p for p in base.glob("??/*") if not p.name.startswith(".")}


def with_metadata(pkg: Any, **changes: Any) -> Any:
    """The same package (same files, same blobs) with other metadata (metrics, params...)."""
    from shipyard.runtimes.packager import Package

    meta: Mapping[str, Any] = pkg.manifest.metadata
    manifest = dataclasses.replace(pkg.manifest, metadata={**meta, **changes})
    return Package(manifest, pkg.files)


def race(url: str, root: Path, racers: int, act: Callable[[Registry, int], object],
         actor: str = "racer") -> list[object]:
    """``racers`` threads, each with its own registry connection (actor ``{actor}-{i}``),
    released together to ``act(registry, i)``. Each outcome is what ``act`` returned,
    ``"conflict"`` (a ConflictError) or ``"error: ..."`` (anything else, reported rather than
    lost in a thread)."""
    barrier = threading.Barrier(racers)
    outcomes: list[object] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        reg = open_registry(url, root, actor=f"{actor}-{i}")
        outcome: object
        try:
            barrier.wait(timeout=30)
            try:
                outcome = act(reg, i)
            except ConflictError:
                outcome = "conflict"
        except Exception as exc:
            outcome = f"error: {type(exc).__name__}: {exc}"
        finally:
            reg.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return outcomes
