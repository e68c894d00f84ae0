"""Write aside, then publish: a run that fails or is killed leaves nothing at its destination.

Output goes to a staging name beside the destination (``.NAME.staging-PID-RANDOM-HOST``,
HOST a short hash of this machine's name), which readers skip (``pyarrow.dataset`` ignores
names starting with ``.``). Publishing:

- on a local filesystem, one rename (atomic): a file replaces a file; a folder is renamed
  into place (an older folder at the destination is first renamed aside, then removed);
- on an object store (S3 and the like), which has no rename: each part is copied to its
  final key and the staging copy deleted; a folder gets its ``_SUCCESS`` marker last, so
  a reader that waits for the marker never reads a half-published folder (a single file
  is one copy: it appears whole or not at all).

A later run to the same destination removes the staging leftovers of runs whose process is
gone: on a local filesystem any such run's; on an object store, those of runs on this
machine (another machine's process cannot be checked from here: its leftovers stay, hidden
from readers by their leading ``.``).
A destination that cannot be written (a bucket that does not exist, access denied) is an
``OutputError`` naming it, never the filesystem's raw error.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from shipyard.errors import ShipyardError
from shipyard.stores.log_location import missing_bucket
from shipyard.stores.table_sources import filesystem, first_line

MARKER = "_SUCCESS"


class OutputError(ShipyardError):
    """A batch output (or rejects file) cannot be written where it was asked for."""


def _local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def _parent_and_name(path: str) -> tuple[str, str]:
    parent, _, name = path.rstrip("/").rpartition("/")
    return parent, name


@dataclass
class Destination:
    """A destination and its staging name. ``folder``: the output is a folder of part files
    (else one file)."""

    location: str
    folder: bool
    fs: pafs.FileSystem
    path: str
    staging: str

    @classmethod
    def of(cls, location: str, *, folder: bool) -> Destination:
        fs, path = filesystem(location)
        parent, name = _parent_and_name(path)
        staging = (f"{parent}/.{name}.staging-{os.getpid()}-{secrets.token_hex(4)}-"
                   f"{HOST}")
        return cls(location, folder, fs, path, staging)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Turns the filesystem's errors into an ``OutputError`` that names the destination."""
        try:
            yield
        except OSError as exc:
            raise OutputError(f"cannot write {self.location}: {first_line(exc)}") from None

    def prepare(self) -> None:
        """Make the parent folder (local: an object store has none, but its bucket must
        exist), clear stale staging leftovers and start staging."""
        if not _local(self.fs):
            with self.writing():
                bucket = missing_bucket(self.fs, self.path)
            if bucket is not None:
                scheme = self.location.split("://", 1)[0]
                raise OutputError(f"cannot write {self.location}: the bucket "
                                  f"{scheme}://{bucket} does not exist")
            with self.writing():
                _remove_stale(self.fs, *_parent_and_name(self.path), host=HOST)
            return
        parent, name = _parent_and_name(self.path)
        with self.writing():
            self.fs.create_dir(parent, recursive=True)
            _remove_stale(self.fs, parent, name)
            if self.folder:
                self.fs.create_dir(self.staging, recursive=True)

    def part(self, index: int) -> str:
        """Where part ``index`` is staged (a folder destination)."""
        return f"{self.staging}/part-{index:05d}.parquet"

    def publish(self) -> None:
        with self.writing():
            if _local(self.fs):
                self._publish_local()
            elif self.folder:
                self._publish_parts()
            else:
                self.fs.copy_file(self.staging, self.path)
                self.fs.delete_file(self.staging)

    def _publish_local(self) -> None:
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.Directory:
            parent, name = _parent_and_name(self.path)
            aside = f"{parent}/.{name}.replaced-{os.getpid()}-{secrets.token_hex(4)}"
            self.fs.move(self.path, aside)
            self.fs.move(self.staging, self.path)
            self.fs.delete_dir(aside)
        else:  # a file, or nothing: a rename is atomic
            Path(self.staging).replace(self.path)

    def _publish_parts(self) -> None:
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        parts = sorted(i.path for i in self.fs.get_file_info(
            pafs.FileSelector(self.staging, recursive=False)) if i.type == pafs.FileType.File)
        for staged in parts:
            self.fs.copy_file(staged, f"{self.path}/{_parent_and_name(staged)[1]}")
        with self.fs.open_output_stream(f"{self.path}/{MARKER}") as marker:
            marker.write(b"")
        self.fs.delete_dir(self.staging)

    def discard(self) -> None:
        """Remove what was staged (a failed run); never touches the destination."""
        try:
            info = self.fs.get_file_info(self.staging)
            if info.type == pafs.FileType.Directory:
                self.fs.delete_dir(self.staging)
            elif info.type == pafs.FileType.File:
                self.fs.delete_file(self.staging)
        except OSError:
            pass


# this machine, in staging names: a run on an object store removes only its own machine's
# leftovers (a process id means nothing on another host)
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _remove_stale(fs: pafs.FileSystem, parent: str, name: str, *,
                  host: str | None = None) -> None:
    """Staging leftovers of ``name`` whose process is gone (a killed run); ``host``: only
    those staged on that machine (an object store shared by several)."""
    listing = fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
    for prefix in (f".{name}.staging-", f".{name}.replaced-"):
        for info in listing:
            base = _parent_and_name(info.path)[1]
            if not base.startswith(prefix):
                continue
            fields = base[len(prefix):].split("-")
            if host is not None and (len(fields) < 3 or fields[2] != host):
                continue
            pid = fields[0]
            if pid.isdigit() and not _alive(int(pid)):
                if info.type == pafs.FileType.Directory:
                    fs.delete_dir(info.path)
                else:
                    fs.delete_file(info.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
