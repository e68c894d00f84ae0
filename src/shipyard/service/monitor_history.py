"""Where monitor results live: one JSON line per window, and the alert state beside it.

Layout: ``LOG_DIR/monitor/endpoint=NAME/``; for a log on an object store (``s3://…``),
which has no appends or locks, a local folder per log URL under ``$SHIPYARD_HOME/remote-logs/``
(``stores/log_location.local_state``) holds it instead.

- ``history.jsonl`` — one record per window, oldest first (JSON Lines: readable by any
  charting tool, ``pandas.read_json(lines=True)``, DuckDB's ``read_json``). Each record is
  appended with a single ``write`` on an ``O_APPEND`` descriptor, so concurrent writers never
  interleave within a line; a line cut short by a crash is skipped on read.
- ``alerts.json`` — the alert evaluator's state (consecutive breaches, what is firing since
  when) and the recent alert events, replaced atomically (temp file + rename).
- ``.lock`` — ``flock``-ed for the whole of a monitor run, so two processes (server workers,
  a cron ``shipyard monitor run``) never evaluate the same windows twice.

Records are keyed by their window (``Window.key``). Storing a window again is idempotent: an
identical result is not written; a changed one (late feedback labels, a different
reference) replaces the old line, by rewriting the file atomically. Readers also keep the
last line per key, so even a rewrite interrupted halfway can only leave the newest result.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.names import check_endpoint_name
from shipyard.settings import Settings
from shipyard.stores.log_location import local_state

HISTORY_FORMAT = 1
_VOLATILE = ("computed_at", "seconds")  # fields that differ between identical re-runs


class MonitorHistory:
    """The stored results and alert state of one endpoint's monitor."""

    def __init__(self, log_dir: str | Path, endpoint: str, *, home: Path | None = None) -> None:
        self.endpoint = endpoint
        self.folder = (_local(log_dir, home) / "monitor" /
                       f"endpoint={check_endpoint_name(endpoint)}")
        self.path = self.folder / "history.jsonl"
        self.state_path = self.folder / "alerts.json"
        self._cache: dict[str, dict[str, Any]] | None = None
        self._seen: tuple[int, int] | None = None

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored window results, oldest window first (one per key); ``limit`` keeps the
        newest."""
        ordered = sorted(self._index().values(), key=_order)
        return ordered if limit is None else ordered[-limit:] if limit > 0 else []

    def recent(self, max_bytes: int = 1 << 20) -> list[dict[str, Any]]:
        """The records among the file's last ``max_bytes`` (one per key, oldest window
        first): the newest windows without parsing a long history whole. Lines are appended
        as windows are computed (a rewritten window moves to the end), so the newest ones
        are at the end."""
        try:
            with self.path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - max_bytes))
                data = handle.read()
        except FileNotFoundError:
            return []
        lines = data.splitlines()
        if size > max_bytes:
            lines = lines[1:]  # the first line is cut
        latest: dict[str, dict[str, Any]] = {}
        for raw in lines:
            try:
                record = json.loads(raw)
            except ValueError:  # a line cut short by a crash
                continue
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                latest[record["key"]] = record
        return sorted(latest.values(), key=_order)

    def stamp(self) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """Size and mtime of the history and of the alert state (None: missing): a reader
        caching what it computed from them reads them again only when this changes."""
        return _stat(self.path), _stat(self.state_path)

    def latest(self) -> dict[str, Any] | None:
        records = self.records(limit=1)
        return records[0] if records else None

    def get(self, key: str) -> dict[str, Any] | None:
        return self._index().get(key)

    def put(self, record: dict[str, Any]) -> bool:
        """Store one window's result; False when an identical result was already there."""
        key = record["key"]
        line = json.dumps(record, allow_nan=False, separators=(",", ":"), default=str)
        index = self._index()
        existing = index.get(key)
        if existing is not None and _same(existing, record):
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        if existing is not None:
            self._rewrite(key, line)
        else:
            _append(self.path, line)
        index[key] = json.loads(line)
        self._seen = _stat(self.path)
        return True

    def _index(self) -> dict[str, dict[str, Any]]:
        """Key -> newest record, read once and kept while the file is only written here
        (a run holds the lock); re-read when someone else changed it."""
        stat = _stat(self.path)
        if self._cache is None or stat != self._seen:
            latest: dict[str, dict[str, Any]] = {}
            for record in self._lines():
                latest[record["key"]] = record
            self._cache, self._seen = latest, stat
        return self._cache

    def _rewrite(self, key: str, line: str) -> None:
        kept = [raw for raw, record in self._raw_lines() if record["key"] != key]
        _atomic_write(self.path, "".join(f"{raw}\n" for raw in [*kept, line]))

    def _lines(self) -> Iterator[dict[str, Any]]:
        for _, record in self._raw_lines():
            yield record

    def _raw_lines(self) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            handle = self.path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        with handle:
            for raw in handle:
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError:  # a line cut short by a crash
                    continue
                if isinstance(record, dict) and isinstance(record.get("key"), str):
                    yield raw, record

    # -- alert state -----------------------------------------------------------------------

    def load_state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise ShipyardError(f"the alert state in {self.state_path} is unreadable ({exc}); "
                                "delete it to start afresh") from exc
        return data if isinstance(data, dict) else None

    def save_state(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.state_path, json.dumps(state, indent=1, allow_nan=False,
                                                  default=str))

    @contextmanager
    def lock(self, *, wait: bool = True) -> Iterator[bool]:
        """Hold the endpoint's monitor lock for the block; yields False (without holding it)
        when ``wait`` is False and another process has it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _local(log_dir: str | Path, home: Path | None) -> Path:
    """Where the monitor of the log ``log_dir`` keeps its files (see the module docstring)."""
    return local_state(log_dir, Settings.from_env().home if home is None else home)


def monitored_endpoints(log_dir: str | Path, *, home: Path | None = None) -> list[str]:
    """The endpoints with a monitor folder under ``log_dir``, by name."""
    folder = _local(log_dir, home) / "monitor"
    prefix = "endpoint="
    if not folder.is_dir():
        return []
    return sorted(p.name[len(prefix):] for p in folder.iterdir()
                  if p.is_dir() and p.name.startswith(prefix) and len(p.name) > len(prefix))


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_size, info.st_mtime_ns


def _order(record: dict[str, Any]) -> tuple[float, float]:
    window = record.get("window") or {}
    return float(window.get("end_ts", 0.0)), float(window.get("start_ts", 0.0))


def _same(stored: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal but for the volatile fields, comparing the new record as it would read back."""
    fresh = json.loads(json.dumps(new, default=str))
    return all(stored.get(k) == fresh.get(k) for k in {*stored, *fresh} - set(_VOLATILE))


def _append(path: Path, line: str) -> None:
    data = f"{line}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)  # one write: lines never interleave
        while written < len(data):  # only on a full disk or a signal; finish the line
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
