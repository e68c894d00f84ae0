"""SHA-256 of every package file, and verification against the manifest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.errors import ManifestError, MissingFileError, TamperedFileError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """One file of a package: its path relative to the package root, size and SHA-256."""

    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        try:
            entry = cls(safe_relpath(str(data["path"])), int(data["size"]), str(data["sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"malformed file entry {data!r}: {exc}") from exc
        if len(entry.sha256) != 64:
            raise ManifestError(f"file entry {entry.path!r}: sha256 must be 64 hex digits")
        return entry


def safe_relpath(path: str) -> str:
    """``path`` if it stays inside the package root; ManifestError otherwise."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise ManifestError(f"package file path {path!r} must be relative and stay inside "
                            "the package")
    return str(pure)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(root: Path, paths: Iterable[str]) -> tuple[FileEntry, ...]:
    """File entries for ``paths`` (relative to ``root``), sorted by path."""
    entries = []
    for rel in sorted(set(paths)):
        full = root / safe_relpath(rel)
        entries.append(FileEntry(rel, full.stat().st_size, sha256_file(full)))
    return tuple(entries)


def verify_files(root: Path, entries: Iterable[FileEntry]) -> None:
    """Raise MissingFileError or TamperedFileError naming the first bad file."""
    for entry in entries:
        full = root / entry.path
        if not full.is_file():
            raise MissingFileError(entry.path)
        if full.stat().st_size != entry.size:
            raise TamperedFileError(entry.path, entry.sha256, sha256_file(full))
        actual = sha256_file(full)
        if actual != entry.sha256:
            raise TamperedFileError(entry.path, entry.sha256, actual)
