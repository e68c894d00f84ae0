"""An inference process's spool: the prediction-log rows of its answered batches, on disk
before the answer leaves, so that killing the process loses no answered request.

The child appends to its spool file with one ``write`` per batch, before it answers: the
batch's inputs and outputs (a *batch* record, by batch id) and the log entries that came with
the frame (an *entries* record). No fsync: a killed process's writes are in the page cache
and reach the file; a machine crash (power, kernel) is out of scope and loses at most what
the segments of the last flush interval would have held. Records are frames (``frames.py``:
``[u32 length][header][arrays]``), so a record cut by a kill in the middle of its write is
seen as incomplete and discarded: it can only be the batch being answered, whose answer never
left (or entries the server still holds and replays itself).

Files are ``DIR/ID-NNNNNN.spool``, ``ID`` one child's (``TIME-PID``, PID its server's, so
segments named after them read like the others). Each starts with a *head* record: the
log's spec, the class labels and ``before``, the newest entry the child had received when it
opened the file (every older entry is in an older file, or written). Every flush interval the
child's writer *rotates*: it opens the next file (head, plus the batches no entry has logged
yet, carried over), writes the previous file's entries into segments named after that file,
and deletes it. Writing a file's entries again under the same names replaces the segments
with identical ones, so a replay (``spool_replay.py``) of a file that was written but not yet
deleted duplicates nothing. Files are created under a dot-prefixed name, locked (``flock``)
and renamed, so a file without a live holder belongs to a dead child.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import struct
from pathlib import Path
from typing import Any

from shipyard.runtimes.frames import decode, encode
from shipyard.types import Columns

SUFFIX = ".spool"
_INPUT, _OUTPUT = "i.", "o."


def batch_record(frame: int, inputs: Columns, outputs: Columns) -> bytes:
    """The record of batch ``frame``'s rows."""
    columns = {**{_INPUT + k: v for k, v in inputs.items()},
               **{_OUTPUT + k: v for k, v in outputs.items()}}
    return encode(columns, {"k": "b", "f": frame})


def entries_record(entries: list[dict[str, Any]]) -> bytes:
    """The record of log entries (each with its ``seq``)."""
    return encode({}, {"k": "e", "e": entries})


def spool_path(prefix: Path, n: int) -> Path:
    return prefix.with_name(f"{prefix.name}-{n:06d}{SUFFIX}")


def spool_files(prefix: Path) -> list[Path]:
    """The files of the child whose files start with ``prefix``, oldest first."""
    if not prefix.parent.is_dir():
        return []
    return sorted(p for p in prefix.parent.glob(f"{prefix.name}-*{SUFFIX}")
                  if p.name[len(prefix.name) + 1:-len(SUFFIX)].isdigit())


class SpoolWriter:
    """The child's current spool file (see the module docstring). Not thread-safe: its
    owner (``ChildLogger``) holds a lock around every call."""

    def __init__(self, prefix: Path, head: dict[str, Any]) -> None:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.head = head
        self.n = 0
        self.path = spool_path(prefix, 0)
        self._fd = -1
        self._fd, self.size, self._empty = self._open(self.path, 0, b"")
        self._rotated: dict[Path, int] = {}  # old files, locked until written and deleted

    def _open(self, path: Path, before: int, carry: bytes) -> tuple[int, int, int]:
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            head = encode({}, {"k": "h", "before": before, **self.head})
            _write_all(fd, head + carry)
            tmp.replace(path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return fd, len(head) + len(carry), len(head) + len(carry)

    @property
    def dirty(self) -> bool:
        """Something was appended since the file was opened."""
        return self.size > self._empty

    def append(self, data: bytes) -> None:
        _write_all(self._fd, data)
        self.size += len(data)

    def rotate(self, before: int, carry: bytes) -> Path:
        """Open the next file (its head says ``before``; ``carry``: records it starts with)
        and return the previous one, for its owner to write and then ``release``."""
        old, path = self.path, spool_path(self.prefix, self.n + 1)
        fd, size, empty = self._open(path, before, carry)
        self._rotated[old] = self._fd  # still locked: no one replays it while it is written
        self._fd, self.size, self._empty = fd, size, empty
        self.n, self.path = self.n + 1, path
        return old

    def close(self) -> Path:
        """Stop appending; returns the current file (its owner writes it, then
        ``release``)."""
        if self._fd >= 0:
            self._rotated[self.path] = self._fd
            self._fd = -1
        return self.path

    def release(self, path: Path) -> None:
        """Delete a file returned by ``rotate`` or ``close``, once written."""
        path.unlink(missing_ok=True)
        fd = self._rotated.pop(path, -1)
        if fd >= 0:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@dataclasses.dataclass
class SpoolFile:
    """What a spool file holds: its head, batches by id, entries; ``good``: the bytes up to
    the end of its last complete record; ``torn``: an incomplete record followed;
    ``broken``: a complete record could not be decoded (the rest is unreadable)."""

    path: Path
    head: dict[str, Any]
    batches: dict[int, tuple[Columns, Columns]]
    entries: list[dict[str, Any]]
    good: int
    torn: bool = False
    broken: bool = False

    @property
    def received(self) -> int:
        """The newest entry the child had received by this file's last record."""
        return max([int(self.head.get("before", 0)), *(int(e["seq"]) for e in self.entries)])


def read_spool(path: Path) -> SpoolFile:
    """Read a spool file's complete records (``OSError`` if it cannot be read at all)."""
    data = memoryview(path.read_bytes())
    out = SpoolFile(path, {}, {}, [], 0)
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            out.torn = True
            break
        (total,) = struct.unpack_from("<I", data, offset)
        end = offset + 4 + total
        if end > len(data):
            out.torn = True
            break
        try:
            columns, header = decode(data[offset + 4:end])
            kind = header["k"] if offset else "h"
            if kind == "h":
                out.head = header
            elif kind == "b":
                out.batches[int(header["f"])] = (
                    {k[2:]: v for k, v in columns.items() if k.startswith(_INPUT)},
                    {k[2:]: v for k, v in columns.items() if k.startswith(_OUTPUT)})
            else:
                out.entries.extend(header["e"])
        except Exception:  # bytes that are not a record: the rest cannot be trusted
            out.broken = True
            break
        offset = out.good = end
    return out


def lock(path: Path, *, wait: bool) -> int | None:
    """An fd holding ``path``'s lock, or None: the file is gone, or held (``wait=False``)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        if os.fstat(fd).st_nlink == 0:  # replayed and deleted by someone else meanwhile
            raise BlockingIOError
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
