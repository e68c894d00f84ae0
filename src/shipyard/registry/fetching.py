"""A registered version's files as a package directory, safe with many processes.

``shipyard serve --workers N`` starts N processes that fetch the same version into the same
cache directory at once. So a cache directory is published once, whole, by an atomic
rename that fails if another process published it first (the loser uses the winner's
copy), and a directory someone may be loading is never deleted: a damaged cached copy is
renamed aside, not removed. A ``dest`` the caller names is never replaced: fetching into
one that holds anything but this package is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConflictError, IntegrityError, ManifestError, RegistryError
from shipyard.packaging import MANIFEST_FILE, Manifest, verify_files
from shipyard.packaging.signing import SIGNATURE_FILE
from shipyard.stores import ArtifactStore
from shipyard.stores.directories import move_aside, publish_directory, staged_directory

log = logging.getLogger(__name__)


def fetch_package(artifacts: ArtifactStore, manifest: Manifest, target: Path, *,
                  shared: bool, signature: Mapping[str, Any] | None = None) -> Path:
    """``target`` holding exactly the package of ``manifest``: reused when it already does,
    else fetched from ``artifacts``. ``shared``: ``target`` is a cache directory that other
    processes fetch into and load from; else it is the caller's ``dest``. ``signature``: the
    version's stored signature; the package then gets the exact manifest bytes it signs
    (a blob) and its ``signature.json``, so a server can verify it."""
    manifest_json = manifest.to_json()
    expected = _Expected(
        hashlib.sha256(manifest_json.encode()).hexdigest() if signature is None
        else str(signature["manifest_sha256"]),
        None if signature is None else _signature_text(signature["record"]))
    if _holds(target, manifest, expected):
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not shared:
            raise _refusal(target, manifest, expected)
        aside = move_aside(target, "damaged")  # a cached copy whose files no longer match
        if aside is not None:
            log.warning("cached package %s does not match its manifest: moved aside to %s "
                        "and fetched again", target, aside)
    with staged_directory(target.parent, prefix=".fetch-") as staging:
        for entry in manifest.files:
            artifacts.fetch(entry.sha256, staging / entry.path)
        if expected.signature is None:
            (staging / MANIFEST_FILE).write_text(manifest_json, encoding="utf-8")
        else:
            artifacts.fetch(expected.manifest_sha256, staging / MANIFEST_FILE)
            (staging / SIGNATURE_FILE).write_text(expected.signature, encoding="utf-8")
    if publish_directory(staging, target) or _holds(target, manifest, expected):
        return target  # published here, or another process published the same files first
    if shared:
        raise RegistryError(f"another process published a copy of {manifest.name} at "
                            f"{target} that does not match its manifest; fetch again")
    raise _refusal(target, manifest, expected)


@dataclass(frozen=True)
class _Expected:
    manifest_sha256: str  # of the manifest file's bytes
    signature: str | None  # signature.json's text, for a signed version


def _signature_text(record: Mapping[str, Any]) -> str:
    return json.dumps(dict(record), indent=2) + "\n"


def _holds(target: Path, manifest: Manifest, expected: _Expected) -> bool:
    """Whether ``target`` is this package with every file matching its hash."""
    try:
        if hashlib.sha256((target / MANIFEST_FILE).read_bytes()).hexdigest() \
                != expected.manifest_sha256:
            return False
        signed = target / SIGNATURE_FILE
        if expected.signature is None:
            if signed.exists():
                return False
        elif signed.read_text(encoding="utf-8") != expected.signature:
            return False
        verify_files(target, manifest.files)
    except (OSError, IntegrityError):
        return False
    return True


def _refusal(target: Path, manifest: Manifest, expected: _Expected) -> RegistryError:
    existing = target / MANIFEST_FILE
    if not existing.is_file():
        return RegistryError(f"refusing to fetch into {target}: it exists and is not a "
                             "shipyard package; choose an empty or new directory")
    try:
        other = Manifest.read(target)
    except (OSError, ManifestError):
        what = "a package whose manifest cannot be read"
    else:
        same = hashlib.sha256(existing.read_bytes()).hexdigest() == expected.manifest_sha256
        what = (f"a damaged copy of {manifest.name} (files do not match its manifest)"
                if same else f"a different package ({other.name!r}, other files)")
    return ConflictError(f"refusing to fetch {manifest.name} into {target}: it holds {what}, "
                         "which shipyard never deletes; remove it yourself or choose an "
                         "empty or new directory")
