"""A tensor package's reference rows (``reference_rows.npz``): inputs the profile cannot hold.

``profile.bin`` keeps a uniform sample of a table's rows, but leaves out tensor inputs (one
row is a vector or an image, not a value). So a package whose signature is a tensor also
ships a sample of its reference rows (the held-out rows when given, else the packaging
sample) and their target, as a NumPy ``.npz`` of plain numeric arrays: read back with
``allow_pickle=False``, so nothing in it is ever unpickled. Its path is listed in the
manifest (hash-checked like every file) and named in ``metadata["reference"]["rows_file"]``.
``shipyard optimize`` calibrates and checks accuracy on these rows.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import PackageError
from shipyard.packaging import Manifest, Signature
from shipyard.packaging.integrity import safe_relpath
from shipyard.types import Array, Columns

ROWS_FILE = "reference_rows.npz"
MAX_ROWS = 2000  # as many as the profile's row sample
MAX_BYTES = 16 << 20  # ... unless the rows are large (images): then fewer, up to 16 MiB
TARGET_KEY = "__target__"
_STORABLE = "biuf"  # bool, integers, floats: no object arrays (those would need pickle)


def rows_file(columns: Columns | None, target: Any, sig: Signature) -> bytes | None:
    """The ``.npz`` bytes for a tensor signature's reference rows (None for a table, whose
    rows the profile holds, or when an input is not numeric). Up to ``MAX_ROWS`` rows,
    drawn uniformly with a fixed seed, in their original order."""
    if sig.kind != "tensor" or not columns:
        return None
    if any(np.asarray(arr).dtype.kind not in _STORABLE for arr in columns.values()):
        return None
    rows = len(next(iter(columns.values())))
    row_bytes = sum(np.asarray(arr)[:1].nbytes for arr in columns.values())
    pick = _pick(rows, max(1, min(MAX_ROWS, MAX_BYTES // max(row_bytes, 1))))
    arrays = {name: np.ascontiguousarray(np.asarray(arr)[pick]) for name, arr in columns.items()}
    truth = _target(target, rows)
    if truth is not None:
        arrays[TARGET_KEY] = truth[pick]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def read_rows(package_dir: Path, manifest: Manifest) -> tuple[Columns, Array | None] | None:
    """The package's stored reference rows and target (None if it stores none). The file
    must be listed in the manifest: whoever calls this verified the package's files."""
    reference = manifest.metadata.get("reference") or {}
    name = reference.get("rows_file") if isinstance(reference, dict) else None
    if name is None:
        return None
    rel = safe_relpath(str(name))
    if rel not in {f.path for f in manifest.files}:
        raise PackageError(f"the reference rows file {rel!r} is not listed in the manifest")
    try:
        with np.load(package_dir / rel, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise PackageError(f"cannot read the reference rows {rel}: {exc}") from exc
    target = arrays.pop(TARGET_KEY, None)
    return arrays, target


def _pick(rows: int, limit: int) -> Array:
    if rows <= limit:
        return np.arange(rows)
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(rows, size=limit, replace=False))


def _target(target: Any, rows: int) -> Array | None:
    if target is None:
        return None
    to_numpy = getattr(target, "to_numpy", None)
    arr = np.asarray(to_numpy() if callable(to_numpy) else target)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if len(arr) != rows or arr.dtype.kind not in _STORABLE + "U":
        return None
    return arr
