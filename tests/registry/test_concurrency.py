"""Concurrent writers (separate processes, started together at a barrier) on both backends."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry import workers
from registry.helpers import MODEL, Packages, stored_blobs
from shipyard.packaging import Manifest, verify_files
from shipyard.registry import Registry

PROCESSES = 4
TIMEOUT = 90.0  # a safety net for a hung worker, not a performance assertion


def run_workers(target: Callable[..., None], root: Path,
                args: Callable[[int], tuple[Any, ...]]) -> None:
    """Run ``target(*args(i), barrier)`` in PROCESSES spawned processes; all must succeed."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=target, args=(*args(i), barrier), name=f"worker-{i}")
             for i in range(PROCESSES)]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + TIMEOUT
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    hung = [proc for proc in procs if proc.is_alive()]
    for proc in hung:
        proc.kill()
        proc.join()
    errors = sorted((root / "errors").glob("*.txt")) if (root / "errors").exists() else []
    report = "\n".join(e.read_text() for e in errors)
    assert not hung, f"workers still running after {TIMEOUT}s: {hung}\n{report}"
    assert [p.exitcode for p in procs] == [0] * PROCESSES, report


def test_concurrent_registrations_get_distinct_consecutive_versions(
        backend: str, reg: Registry, pkgs: Packages, tmp_path: Path) -> None:
    per_worker = 5
    run_workers(workers.register_many, tmp_path,
                lambda i: (backend, str(tmp_path), i, str(pkgs.base_dir), per_worker))

    total = PROCESSES * per_worker
    versions = reg.search_versions(MODEL, include_archived=True)
    assert sorted(v.version for v in versions) == list(range(1, total + 1))
    model = reg.get_model(MODEL)
    assert (model.latest_version, model.versions) == (total, total)
    records = reg.audit(action="version.register")
    assert sorted(r.version for r in records) == list(range(1, total + 1))
    assert Counter(r.actor for r in records) == {f"worker-{i}": per_worker
                                                 for i in range(PROCESSES)}
    assert Counter(v.created_by for v in versions) == Counter(r.actor for r in records)
    # each version is complete, and the shared blob store holds each file once
    for number in range(1, total + 1):
        path = reg.fetch(f"iris/{number}")
        verify_files(path, Manifest.read(path).files)
    assert set(stored_blobs(tmp_path)) == {f.sha256 for f in pkgs.base.manifest.files}


def test_concurrent_alias_moves_keep_a_consistent_history(
        backend: str, reg: Registry, pkgs: Packages, tmp_path: Path) -> None:
    reg.register(pkgs.base, alias="production")
    for _ in range(3):
        reg.register(pkgs.compatible)
    moves = 10
    run_workers(workers.move_alias, tmp_path,
                lambda i: (backend, str(tmp_path), i, [1, 2, 3, 4], moves))

    records = reg.audit(action="alias.set")
    assert len(records) == PROCESSES * moves
    assert Counter(r.actor for r in records) == {f"mover-{i}": moves for i in range(PROCESSES)}
    # the log is one serial history: each move starts where the previous one left the alias
    previous: Any = {"version": 1}
    for record in records:
        assert record.before == previous, record
        assert record.alias == "production" and not record.forced
        assert record.after == {"version": record.version}
        previous = record.after
    final = reg.get_model(MODEL).aliases["production"]
    assert final == records[-1].after["version"]
    assert reg.get_version("iris@production").version == final
