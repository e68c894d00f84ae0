"""Write a directory atomically: build it beside its target, then rename it into place."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replace_directory(target: Path, *, prefix: str = ".shipyard-") -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces ``target`` in one rename.

    Readers never see a half-written ``target``; on error the staging directory is removed
    and ``target`` is left as it was. Callers decide beforehand whether replacing is allowed
    (an old ``target`` is renamed aside first and only then deleted). For directories that
    other processes may be reading, use ``staged_directory`` + ``publish_directory``.
    """
    with staged_directory(target.parent, prefix=prefix) as staging:
        yield staging
        if target.exists():
            aside = _aside(target, "replaced")
            target.rename(aside)
            staging.rename(target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            staging.rename(target)


@contextmanager
def staged_directory(parent: Path, *, prefix: str = ".shipyard-") -> Iterator[Path]:
    """An empty directory in ``parent`` to build in; removed if the block raises."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish_directory(staging: Path, target: Path) -> bool:
    """Rename the complete ``staging`` to ``target`` unless another writer published a
    ``target`` first (a non-empty directory is never replaced: someone may be reading it).
    True if this call published it; False if another had (``staging`` is then removed, and
    the caller uses the winner's copy)."""
    try:
        staging.rename(target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            shutil.rmtree(staging, ignore_errors=True)
            raise
    shutil.rmtree(staging, ignore_errors=True)
    return False


def move_aside(target: Path, why: str) -> Path | None:
    """Rename ``target`` to a hidden sibling (nothing is deleted: a reader that holds files
    of it keeps them); None if it was gone already."""
    aside = _aside(target, why)
    try:
        target.rename(aside)
    except FileNotFoundError:
        return None
    return aside


def _aside(target: Path, why: str) -> Path:
    return target.with_name(f".{why}-{target.name}-{os.getpid()}-{time.monotonic_ns()}")
