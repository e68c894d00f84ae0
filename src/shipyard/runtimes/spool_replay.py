"""Replaying a dead inference process's spool (``spool.py``) into the prediction log.

The server replays its child's files when the child dies (``process.py``), adding the log
entries it had sent or queued that the child never received; a server starting an endpoint
replays the files no live process holds (a server and its child that both died). Each file's
entries are written into segments named after the file, then the file is deleted: a replay
cut short and done again writes the same segments, so no row is logged twice.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shipyard.runtimes.child_log import ChildLog, prediction_batch
from shipyard.runtimes.spool import (
    SUFFIX,
    SpoolFile,
    entries_record,
    lock,
    read_spool,
    spool_files,
)
from shipyard.stores.predictions import LogStats, PredictionLog
from shipyard.types import Columns

log = logging.getLogger("shipyard.serve")
_SPEC = [f.name for f in dataclasses.fields(ChildLog)]


@dataclasses.dataclass
class Replayed:
    """What a replay wrote (``stats``) and the entries whose rows it could not give back
    (``lost``: the caller counts them dropped and names their request ids)."""

    stats: LogStats = dataclasses.field(default_factory=LogStats)
    lost: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def replay(prefix: Path, unsettled: Sequence[dict[str, Any]], *, wait: bool = True) -> Replayed:
    """Write the log entries in the spool files of the dead child ``prefix`` names, and those
    of ``unsettled`` (the entries the server sent or queued and the child had not settled)
    that it never received. ``wait``: wait for a file another process holds (False: skip
    it, it is alive or being replayed)."""
    fds: list[int] = []
    try:
        files: list[SpoolFile] = []
        for path in spool_files(prefix):
            fd = lock(path, wait=wait)
            if fd is None:
                continue
            fds.append(fd)
            try:
                files.append(read_spool(path))
            except OSError as exc:
                log.error("prediction log: cannot read the spool file %s: %s", path, exc)
                files.append(SpoolFile(path, {}, {}, [], 0, broken=True))
        for tmp in prefix.parent.glob(f".{prefix.name}-*{SUFFIX}.tmp"):
            tmp.unlink(missing_ok=True)  # a rotation cut short: nothing in it yet
        return _replay(files, unsettled)
    finally:
        for fd in fds:
            os.close(fd)


def _replay(files: list[SpoolFile], unsettled: Sequence[dict[str, Any]]) -> Replayed:
    heads = [f.head for f in files if f.head]
    if not heads:  # nothing readable: every unsettled entry is lost
        if files:
            log.error("prediction log: spool files without a readable head kept: %s",
                      ", ".join(str(f.path) for f in files))
        return Replayed(lost=list(unsettled))
    out = Replayed()
    last = files[-1]
    received = max(f.received for f in files)
    for i, f in enumerate(files[:-1]):  # a file unreadable past a point loses its entries
        if f.broken:
            have = {e["seq"] for e in f.entries}
            low, high = int(f.head.get("before", 0)), int(files[i + 1].head.get("before", 0))
            out.lost += [e for e in unsettled if low < e["seq"] <= high and e["seq"] not in have]
    late = [e for e in unsettled if e["seq"] > received]  # the child never had them
    if late and last.head:
        try:  # on disk first: a replay cut short and done again still has them
            with last.path.open("r+b") as spool:
                spool.truncate(last.good)  # a torn last record: a batch never answered
                spool.seek(last.good)
                spool.write(entries_record(late))
        except OSError as exc:
            log.error("prediction log: cannot add to the spool file %s: %s", last.path, exc)
        last.entries.extend(late)
    elif late:
        out.lost += late
    spec = ChildLog(**{name: heads[0][name] for name in _SPEC})
    labels = heads[0].get("class_labels")
    batches: dict[int, tuple[Columns, Columns]] = {}
    for f in files:
        batches.update(f.batches)
    writer = PredictionLog(spec.root)
    for f in files:
        if not f.head:
            continue
        for entry in f.entries:
            batch = prediction_batch(spec, labels, entry, batches)
            if batch is None:
                out.lost.append(entry)
            else:
                writer.append(batch)
        writer.flush(f.path.stem)
        f.path.unlink(missing_ok=True)
    out.stats = writer.stats
    return out


def replay_orphans(folder: Path) -> Replayed:
    """Replay the spool files under ``folder`` whose server is gone and that no live process
    holds (names are ``TIME-PID``, PID the server's: ``process.py``)."""
    out = Replayed()
    if not folder.is_dir():
        return out
    prefixes = {p.name[:-len(SUFFIX)].rsplit("-", 1)[0] for p in folder.glob(f"*{SUFFIX}")
                if not p.name.startswith(".")}
    for name in sorted(prefixes):
        if _server_alive(name):  # its server replays it if its child dies
            continue
        files = spool_files(folder / name)
        fd = lock(files[0], wait=False) if files else None
        if fd is None:  # its child is alive, or someone replays it
            continue
        os.close(fd)  # replay takes every file's lock itself, skipping any held meanwhile
        log.warning("prediction log: replaying the spool of a stopped server's inference "
                    "process (%s)", folder / name)
        done = replay(folder / name, (), wait=False)
        out.stats = LogStats.total([out.stats, done.stats])
        out.lost += done.lost
    return out


def _server_alive(name: str) -> bool:
    _time, _, pid = name.partition("-")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True
