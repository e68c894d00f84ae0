"""A registered version's files as a package directory, safe with many processes.

``shipyard serve --workers N`` starts N processes that fetch the same version into the same
cache directory at once. So a cache directory is published once, whole, by an atomic
rename that fails if another process published it first (the loser uses the winner's
copy), and a directory someone may be loading is never deleted: a damaged cached copy is
renamed aside, not removed. A ``dest`` the caller names is never replaced: fetching into
one that holds anything but this package is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

from shipyard.errors import ConflictError, IntegrityError, ManifestError, RegistryError
from shipyard.packaging import MANIFEST_FILE, Manifest, verify_files
from shipyard.stores import ArtifactStore
from shipyard.stores.directories import move_aside, publish_directory, staged_directory

log = logging.getLogger(__name__)


def fetch_package(artifacts: ArtifactStore, manifest: Manifest, target: Path, *,
                  shared: bool) -> Path:
    """``target`` holding exactly the package of ``manifest``: reused when it already does,
    else fetched from ``artifacts``. ``shared``: ``target`` is a cache directory that other
    processes fetch into and load from; else it is the caller's ``dest``."""
    manifest_json = manifest.to_json()
    if _holds(target, manifest, manifest_json):
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not shared:
            raise _refusal(target, manifest, manifest_json)
        aside = move_aside(target, "damaged")  # a cached copy whose files no longer match
        if aside is not None:
            log.warning("cached package %s does not match its manifest: moved aside to %s "
                        "and fetched again", target, aside)
    with staged_directory(target.parent, prefix=".fetch-") as staging:
        for entry in manifest.files:
            artifacts.fetch(entry.sha256, staging / entry.path)
        (staging / MANIFEST_FILE).write_text(manifest_json, encoding="utf-8")
    if publish_directory(staging, target) or _holds(target, manifest, manifest_json):
        return target  # published here, or another process published the same files first
    if shared:
        raise RegistryError(f"another process published a copy of {manifest.name} at "
                            f"{target} that does not match its manifest; fetch again")
    raise _refusal(target, manifest, manifest_json)


def _holds(target: Path, manifest: Manifest, manifest_json: str) -> bool:
    """Whether ``target`` is this package with every file matching its hash."""
    existing = target / MANIFEST_FILE
    try:
        if existing.read_text(encoding="utf-8") != manifest_json:
            return False
        verify_files(target, manifest.files)
    except (OSError, IntegrityError):
        return False
    return True


def _refusal(target: Path, manifest: Manifest, manifest_json: str) -> RegistryError:
    existing = target / MANIFEST_FILE
    if not existing.is_file():
        return RegistryError(f"refusing to fetch into {target}: it exists and is not a "
                             "shipyard package; choose an empty or new directory")
    try:
        other = Manifest.read(target)
    except (OSError, ManifestError):
        what = "a package whose manifest cannot be read"
    else:
        same = existing.read_text(encoding="utf-8") == manifest_json
        what = (f"a damaged copy of {manifest.name} (files do not match its manifest)"
                if same else f"a different package ({other.name!r}, other files)")
    return ConflictError(f"refusing to fetch {manifest.name} into {target}: it holds {what}, "
                         "which shipyard never deletes; remove it yourself or choose an "
                         "empty or new directory")
