"""The package cache under several processes (``serve --workers N``), ``gc`` against an
in-flight registration, and ``fetch`` into a directory that holds something else."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import shipyard
from registry.helpers import Packages, open_registry, stored_blobs
from shipyard.errors import ConflictError
from shipyard.registry import Registry
from shipyard.stores import ArtifactStore

WORKERS = 6


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_workers_fetching_one_version_at_once_share_one_published_copy(
        backend: str, reg: Registry, pkgs: Packages, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every worker misses the cache and stages its copy at the same moment (a barrier in
    the blob copy); each then loads what ``fetch`` returned while the others publish. One
    copy wins; nobody's directory is replaced or deleted under it."""
    reg.register(pkgs.base_dir)
    barrier = threading.Barrier(WORKERS, timeout=30)
    copy_blob = ArtifactStore.fetch
    waited: set[int] = set()

    def fetch_together(self: ArtifactStore, sha256: str, dest: Path) -> None:
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()  # every worker has checked the cache and is staging
        copy_blob(self, sha256, dest)

    monkeypatch.setattr(ArtifactStore, "fetch", fetch_together)
    seen: list[tuple[Path, int]] = []
    failures: list[BaseException] = []

    def worker(i: int) -> None:
        registry = open_registry(backend, tmp_path, actor=f"worker-{i}")
        try:
            path = registry.fetch("iris/1")
            inode = path.stat().st_ino
            seen.append((path, inode))
            deadline = time.monotonic() + 0.5  # keep loading while the others publish
            while time.monotonic() < deadline:
                model = shipyard.load(path)
                assert len(model.predict(pkgs.x.head(3))) == 3
                assert path.stat().st_ino == inode, "replaced while this worker loads it"
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            registry.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(seen) == WORKERS
    paths = {path for path, _ in seen}
    assert len(paths) == 1
    (path,) = paths
    assert {inode for _, inode in seen} == {path.stat().st_ino}, "a published copy was replaced"
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".fetch-")]


def test_gc_never_deletes_a_blob_an_inflight_registration_reused(
        reg: Registry, pkgs: Packages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blobs left by a registration that crashed before its commit are old and referenced
    by nothing. A new registration of the same files re-uses them; ``gc`` (another
    process) runs between its blob uploads and its commit: the blobs must survive."""
    for entry in pkgs.base.manifest.files:
        reg.artifacts.put_file(pkgs.base_dir / entry.path, entry.sha256)
    old = time.time() - 2 * 3600
    for blob in stored_blobs(tmp_path).values():
        os.utime(blob, (old, old))
    collector = open_registry(reg.url, tmp_path, actor="collector")
    commit = reg._write
    reports: list[Any] = []

    @contextmanager
    def collect_then_commit() -> Iterator[Any]:
        if not reports:
            reports.append(collector.gc(grace_seconds=3600))
        with commit() as conn:
            yield conn

    monkeypatch.setattr(reg, "_write", collect_then_commit)
    try:
        reg.register(pkgs.base_dir)
    finally:
        collector.close()
    assert reports and reports[0].deleted == 0, reports
    assert set(stored_blobs(tmp_path)) == {f.sha256 for f in pkgs.base.manifest.files}
    model = shipyard.load(reg.fetch("iris/1", tmp_path / "check"))
    assert len(model.predict(pkgs.x.head(3))) == 3


def test_a_blob_reused_between_listing_and_delete_is_kept(tmp_path: Path) -> None:
    """``gc`` listed the blob as old; a registration re-uses it before the delete."""
    store = ArtifactStore(tmp_path / "blobs")
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    sha = store.put_file(source)
    old = time.time() - 7200
    os.utime(store._path(sha), (old, old))
    cutoff = time.time() - 3600
    listed = {s: mtime for s, mtime, _ in store.blobs()}
    assert listed[sha] < cutoff  # gc would pick it
    store.put_file(source)  # the re-use
    assert not store.delete_if_older(sha, cutoff) and store.has(sha)
    os.utime(store._path(sha), (old, old))
    assert store.delete_if_older(sha, cutoff) and not store.has(sha)
    assert not list((tmp_path / "blobs").rglob(".deleting-*"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_fetch_into_a_dest_holding_another_package_is_refused(reg: Registry, pkgs: Packages,
                                                              tmp_path: Path) -> None:
    reg.register(pkgs.base_dir)
    reg.register(pkgs.compatible)
    dest = reg.fetch("iris/1", tmp_path / "dest")
    before = _files(dest)
    with pytest.raises(ConflictError, match="a different package"):
        reg.fetch("iris/2", dest)
    assert _files(dest) == before
    (dest / "model.onnx").write_bytes(b"my own edit")
    with pytest.raises(ConflictError, match="damaged copy"):
        reg.fetch("iris/1", dest)
    assert (dest / "model.onnx").read_bytes() == b"my own edit"
    assert reg.fetch("iris/2", tmp_path / "other") == tmp_path / "other"  # a new dest is fine
