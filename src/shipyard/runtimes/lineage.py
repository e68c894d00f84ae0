"""What a package records about where it came from: the data fingerprint and the code version."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from shipyard.types import Columns


def data_fingerprint(columns: Columns, uri: str | None = None) -> dict[str, Any]:
    """SHA-256 over every column's name, dtype and values, plus rows, columns and the URI."""
    digest = hashlib.sha256()
    rows = 0
    for name in sorted(columns):
        arr = columns[name]
        rows = len(arr)
        digest.update(f"{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        if arr.dtype.kind == "O":
            digest.update("\x1f".join(map(repr, arr.ravel().tolist())).encode())
        else:
            digest.update(arr.tobytes())
    return {"sha256": digest.hexdigest(), "rows": rows, "columns": sorted(columns), "uri": uri}


def code_version(cwd: Path | None = None) -> dict[str, Any] | None:
    """The git commit and dirty flag of the work tree we run in, or None outside git."""
    where = str(cwd or Path.cwd())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"git_commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
