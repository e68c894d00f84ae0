"""Request bodies for a load test from a package's reference rows: a table's from the
profile's row sample, a tensor's from ``reference_rows.npz`` (realistic rows, not one
repeated example)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.runtimes.model import VerifiedPackage


def reference_bodies(model: str, *, batch: int = 1, limit: int = 2000) -> list[bytes]:
    """Request bodies of ``batch`` rows each from ``model``'s reference sample (a package
    directory or a ``models:/`` URI, fetched from the registry)."""
    from pathlib import Path

    from shipyard.errors import ShipyardError
    from shipyard.registry import Registry, is_model_uri
    from shipyard.runtimes.model import describe

    path = Path(model)
    if is_model_uri(model):
        with Registry() as registry:
            path = registry.fetch(model)
    package = describe(path, model_files=False)
    rows = _tensor_rows(package) or _table_rows(package)
    if rows is None:
        raise ShipyardError(f"{model} has no reference rows to send (package it with a "
                            "sample, or use a newer package)")
    rows = rows[:limit]
    if not rows:
        raise ShipyardError(f"{model}'s reference sample is empty")
    return [json.dumps({"instances": [rows[(i + j) % len(rows)] for j in range(batch)]})
            .encode() for i in range(0, len(rows), batch)]


def _table_rows(package: VerifiedPackage) -> list[Any] | None:
    """A table's rows from the profile's row sample, as ``{column: value}`` objects."""
    profile = package.reference_profile()
    names = [spec.name for spec in package.signature.inputs]
    if profile is None or not all(n in profile.sample for n in names):
        return None
    columns = {n: list(profile.sample[n]) for n in names}
    return [{n: _plain(columns[n][i]) for n in names}
            for i in range(len(columns[names[0]]))]


def _tensor_rows(package: VerifiedPackage) -> list[Any] | None:
    """A tensor package's stored reference rows (``reference_rows.npz``): one input's rows
    as plain lists, several inputs' as ``{input: list}`` objects."""
    from shipyard.runtimes.reference_rows import read_rows

    stored = read_rows(package.path, package.manifest)
    if stored is None:
        return None
    columns = {spec.name: stored[0][spec.name] for spec in package.signature.inputs
               if spec.name in stored[0]}
    if not columns or len(columns) != len(package.signature.inputs):
        return None
    count = len(next(iter(columns.values())))
    if len(columns) == 1:
        (only,) = columns.values()
        return list(only.tolist())
    return [{n: arr[i].tolist() for n, arr in columns.items()} for i in range(count)]


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    return None if isinstance(value, float) and value != value else value
