"""Write a directory atomically: build it beside its target, then rename it into place."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replace_directory(target: Path, *, prefix: str = ".shipyard-") -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces ``target`` in one rename.

    Readers never see a half-written ``target``; on error the staging directory is removed
    and ``target`` is left as it was. Callers decide beforehand whether replacing is allowed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
