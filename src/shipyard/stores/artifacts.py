"""Content-addressed blobs: a file is stored once under its SHA-256, whoever registers it.

Layout: ``ROOT/sha256/ab/abcdef…``. Local directories by default; any fsspec URL
(``s3://bucket/prefix``, ``memory://x``) with the ``[s3]`` extra.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shipyard.errors import ArtifactStoreError
from shipyard.packaging.integrity import sha256_file
from shipyard.settings import without_password

_CHUNK = 1 << 20


def _check_sha(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ArtifactStoreError(f"not a SHA-256 hex digest: {sha256!r}")
    return sha256


class ArtifactStore:
    """Blobs in a local directory. Writes are atomic (temp file + rename), so readers never
    see half a blob; ``put`` of a blob that exists costs one hash and no copy."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / _check_sha(sha256)

    def put_file(self, source: Path, sha256: str | None = None) -> str:
        """Store ``source``; returns its SHA-256 (verified against ``sha256`` when given)."""
        digest = sha256 or sha256_file(source)
        dest = self._path(digest)
        if dest.exists():
            try:  # re-used: young again, so ``gc`` keeps it while its registration commits
                os.utime(dest)
                return digest
            except FileNotFoundError:  # ``gc`` took it just now: store it again
                pass
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                hasher = hashlib.sha256()
                while chunk := src.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != digest:
                raise ArtifactStoreError(f"{source} changed while it was stored (SHA-256 "
                                         f"{hasher.hexdigest()[:12]}… != {digest[:12]}…)")
            Path(tmp).replace(dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def has(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def fetch(self, sha256: str, dest: Path) -> None:
        """Copy a blob to ``dest``. A copy, not a hard link: editing a fetched file must never
        change the stored blob that other versions share."""
        src = self._path(sha256)
        if not src.exists():
            raise ArtifactStoreError(f"blob {sha256[:12]}… is missing from "
                                     f"{without_password(self.url)}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)

    def blobs(self) -> Iterator[tuple[str, float, int]]:
        """Every stored blob as (sha256, modified time, size)."""
        base = self.root / "sha256"
        if not base.exists():
            return
        for path in base.glob("??/*"):
            if not path.name.startswith("."):
                stat = path.stat()
                yield path.name, stat.st_mtime, stat.st_size

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def delete_if_older(self, sha256: str, cutoff: float) -> bool:
        """Delete the blob unless it was stored or re-used (``put_file``) after ``cutoff``
        (a Unix time); True if deleted. Race-free against ``put_file``: the blob is first
        renamed away, so a ``put_file`` from then on stores it again, and one that re-used
        it just before shows in its modified time, which the rename keeps: then it is put
        back."""
        path = self._path(sha256)
        aside = path.with_name(f".deleting-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            if path.stat().st_mtime > cutoff:
                return False
            path.rename(aside)
        except FileNotFoundError:
            return False
        if aside.stat().st_mtime > cutoff:  # re-used between the check and the rename
            aside.replace(path)  # same bytes as any copy stored meanwhile: either may win
            return False
        aside.unlink()
        return True


class FsspecArtifactStore(ArtifactStore):
    """Blobs on any fsspec filesystem (S3-compatible storage with ``s3fs``)."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        try:
            import fsspec
        except ImportError as exc:
            raise ArtifactStoreError("remote artifact stores need fsspec: pip install "
                                     "'shipyard-ml[s3]'") from exc
        self.url = url.rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = Path(self.base)

    def _key(self, sha256: str) -> str:
        return f"{self.base}/sha256/{sha256[:2]}/{_check_sha(sha256)}"

    def put_file(self, source: Path, sha256: str | None = None) -> str:
        digest = sha256 or sha256_file(source)
        key = self._key(digest)
        if self.fs.exists(key):
            try:  # re-used: young again, so ``gc`` keeps it while its registration commits
                self.fs.touch(key, truncate=False)
                return digest
            except (NotImplementedError, ValueError, OSError):
                pass  # object stores cannot touch: upload it again, which refreshes it
        # write under a temporary key and move, so a crash never leaves half a blob
        tmp = f"{key}.incoming-{os.getpid()}-{time.monotonic_ns()}"
        self.fs.put_file(str(source), tmp)
        self.fs.mv(tmp, key)
        return digest

    def has(self, sha256: str) -> bool:
        return bool(self.fs.exists(self._key(sha256)))

    def fetch(self, sha256: str, dest: Path) -> None:
        key = self._key(sha256)
        if not self.fs.exists(key):
            raise ArtifactStoreError(f"blob {sha256[:12]}… is missing from "
                                     f"{without_password(self.url)}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.fs.get_file(key, str(dest))

    def blobs(self) -> Iterator[tuple[str, float, int]]:
        prefix = f"{self.base}/sha256"
        if not self.fs.exists(prefix):
            return
        for info in self.fs.find(prefix, detail=True).values():
            name = str(info["name"]).rsplit("/", 1)[-1]
            if ".incoming-" in name:
                continue
            yield name, _stamp(info), int(info.get("size", 0))

    def delete(self, sha256: str) -> None:
        key = self._key(sha256)
        if self.fs.exists(key):
            self.fs.rm(key)

    def delete_if_older(self, sha256: str, cutoff: float) -> bool:
        """As the local store's, but object stores cannot rename atomically: the modified
        time is checked again just before the delete, which narrows the window with a
        concurrent re-use to that of one request."""
        key = self._key(sha256)
        try:
            stamp = _stamp(self.fs.info(key))
        except FileNotFoundError:
            return False
        if stamp > cutoff:
            return False
        self.fs.rm(key)
        return True


def _stamp(info: dict[str, Any]) -> float:
    """An fsspec entry's modified time as a Unix time."""
    modified = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    return modified.timestamp() if hasattr(modified, "timestamp") else float(modified)


def open_artifact_store(location: str | Path) -> ArtifactStore:
    """A local store for paths and ``file://`` URLs; fsspec for any other URL."""
    text = str(location)
    if "://" not in text:
        return ArtifactStore(Path(text).expanduser())
    if text.startswith("file://"):
        return ArtifactStore(Path(text[len("file://"):]))
    return FsspecArtifactStore(text)
