"""Model inference in a child process, driven from the event loop without a thread.

Why: with inference in a thread of the server process, every batch hands the GIL to that
thread and back (ONNX Runtime's binding re-takes it to build its outputs). Under load the
event loop holds the GIL, so each hand-off is a forced switch that waits out the switch
interval and costs a pair of context switches; measured on the 2-core bench machine that
was most of the inference thread's CPU (``bench/README.md``, serving round 5). A child
process has its own interpreter and GIL: the loop writes one frame per batch to a socket
and reads one back when the child answers, so nothing in the server process contends.

This module is the parent's side (``InferenceProcess``); the frames are ``frames.py``, the
child's loop ``child.py``, its prediction log ``child_log.py``, its environment
``child_env.py``.

Raw batches: a child started with ``raw=True`` (``raw_child.py``: the worker with a
``RawHandler`` that speaks ``shipyard.protocol``) also takes batches of undecoded request
bodies and answers each with a status and a response body. Parsing, validation and response
encoding then run in the child, and the server's event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from shipyard.errors import InferenceProcessError, RemoteModelError
from shipyard.runtimes.child_env import child_environment
from shipyard.runtimes.child_log import ChildLog, log_entry
from shipyard.runtimes.dead_children import DeadChildren, count_lost, replayed_stats
from shipyard.runtimes.frames import RawAnswer, RawHandler, decode, encode, recv_frame
from shipyard.runtimes.spool_replay import replay_orphans
from shipyard.settings import Settings
from shipyard.stores.predictions import LogStats
from shipyard.types import Columns

__all__ = ["RAW_WORKER", "WORKER", "ChildLog", "InferenceProcess", "InferenceProcessError",
           "RawAnswer", "RawHandler", "RemoteModelError", "decode", "encode", "log_entry"]

log = logging.getLogger("shipyard.serve")
WORKER = "shipyard.runtimes.worker"  # the default child: column batches only
RAW_WORKER = "shipyard.runtimes.raw_child"  # ... that also answers raw batches (``run_raw``)
_ENTRY_LISTS = ("kept", "request_ids", "latency_ms", "routing_keys", "ts", "variants",
                "revisions", "key_names")  # one value per request (the last 3 may be absent)


class InferenceProcess:
    """A child process serving one model package; ``run`` sends it a batch.

    With a ``ChildLog`` the child also writes the prediction log of its batches
    (``child_log.py``), spooling each batch's rows before it answers (``spool.py``). Log
    entries the child has not settled yet stay here: if the child dies, they are replayed
    from its spool (``dead_children.py``); rows no replay can give back are counted as
    dropped (``total_log_stats``) and their request ids named in the server's log, so every
    answered request is logged or accounted for. A watcher notices a child that dies between
    batches (``WATCH_S``): ``alive`` turns False and a new child starts without traffic.

    Starting blocks (load + warm-up in the child): do it off the event loop. If the child
    dies, the batch it held fails with ``InferenceProcessError`` (HTTP 503) and a new child
    starts at once (``restarting``; the next batch waits for it). A batch cancelled while
    the child works on it (its deadline passed: the model hangs) kills the child the same
    way, so the stream never carries a stale answer."""

    LOG_DELAY_S = 0.2  # a log entry waits at most this long for a batch to carry it
    # a batch carries the queued log entries (merged into one entry where they can be) once
    # this many batches' entries are queued. 1: the next batch carries them. Holding more
    # (8 saved ~40 us of child CPU per small batch) leaves that many batches' entries only in
    # this process, and a SIGKILL of the server then loses their rows for good
    # (tests/serving/test_server_process.py: at most the last batch may be lost)
    LOG_EVERY = 1
    LOG_TIMEOUT_S = 30.0  # a frame of log entries alone (or a flush) waits at most this long
    WATCH_S = 0.5  # how often the watcher looks for a child that died between batches

    def __init__(self, path: Path, *, trust: bool, runtime: str | None, settings: Settings,
                 log: ChildLog | None = None, start_timeout_s: float = 300.0,
                 raw: bool = False, nice: int = 0,
                 more: Sequence[tuple[Path, ChildLog]] = ()) -> None:
        self.path = path
        self.raw = raw  # the child takes raw batches (see ``run_raw``)
        self.name = log.endpoint if log is not None else str(path)
        # ``more``: a joint process (``joint_batch.py``) also holds these versions, slots
        # 1, 2, ...; it takes raw batches only, and logs each version's rows apart
        if more and (log is None or not raw):
            raise ValueError("a process holding several versions takes raw batches and logs")
        self.slots = 1 + len(more)
        self._args = [sys.executable, "-m", RAW_WORKER if raw else WORKER, str(path),
                      *(str(p) for p, _ in more)]
        self._spool_dir: Path | None = None
        self._spools: list[Path] = []  # the current child's spool prefixes, one per slot
        if log is not None:
            logs = [log, *(spec for _, spec in more)]
            shown = dataclasses.asdict(log) if not more else \
                [dataclasses.asdict(spec) for spec in logs]
            self._args += ["--log", orjson.dumps(shown).decode()]
            self._spool_dir = Path(log.root) / "spool" / f"endpoint={log.endpoint}"
        if trust:
            self._args.append("--trust")
        if runtime:
            self._args += ["--runtime", runtime]
        if nice:  # a lower CPU priority, for good (an unprivileged process cannot undo it)
            self._args += ["--nice", str(nice)]
        self._env = child_environment(settings)
        self._timeout = start_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock: asyncio.Lock | None = None
        self.restarts = 0
        self._frame = 0  # id of the last batch sent
        self._floor = 1  # the first batch id the current child was sent
        self._seq = 0  # number of the last log entry queued
        self._pending_log: list[dict[str, Any]] = []  # sent with a later frame
        self._queued = 0  # batches whose log entries are in _pending_log
        self._unsettled: deque[dict[str, Any]] = deque()  # queued or sent, not yet settled
        self._log_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.log_stats = LogStats()  # the child's prediction log, as of its last answer
        self._retired_stats = LogStats()  # those of children that died, and rows they lost
        self._dead = DeadChildren(self.name, self._add_retired)
        self._watcher: asyncio.Task[None] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._starting: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._sock: socket.socket | None
        if self._spool_dir is not None:  # a server and its child that died before us
            self._add_retired(replayed_stats(self.name, replay_orphans(self._spool_dir)))
        self.proc, self._sock = self._spawn()

    @property
    def alive(self) -> bool:
        """A child is up and takes batches (False while a new one starts, or once it died)."""
        return self._sock is not None and self.proc.poll() is None

    def watch(self) -> None:
        """Start the watcher (on the event loop; once)."""
        if self._watcher is None and not self._closed:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.WATCH_S)
            if self._sock is not None and self.proc.poll() is not None and not (
                    self._lock is not None and self._lock.locked()):  # else the batch sees it
                log.warning("endpoint %s: the inference process died between batches (exit "
                            "code %s); a new one is starting", self.name, self.proc.returncode)
                self._drop()

    def _spawn(self) -> tuple[subprocess.Popen[bytes], socket.socket]:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        args = [*self._args, "--fd", str(child.fileno())]
        spools: list[Path] = []
        if self._spool_dir is not None:
            # TIME-PID, as other segments are named (TIME-PID-SEQ): PID is this server's;
            # a joint process's other versions TIMEsSLOT-PID
            now, pid = time.time_ns(), os.getpid()
            spools = [self._spool_dir / (f"{now}-{pid}" if slot == 0 else
                                         f"{now}s{slot}-{pid}") for slot in range(self.slots)]
            for spool in spools:
                args += ["--spool", str(spool)]
        try:
            proc = subprocess.Popen(args, pass_fds=[child.fileno()], env=self._env)
        except OSError as exc:
            parent.close()
            raise InferenceProcessError(f"cannot start an inference process: {exc}") from exc
        finally:
            child.close()
        self._starting = proc  # aclose() kills it rather than wait for a slow load
        parent.settimeout(self._timeout)
        try:
            _, header = decode(recv_frame(parent))
        except (OSError, InferenceProcessError) as exc:
            _stop(proc, parent)
            raise InferenceProcessError(f"the inference process for {self.path} did not "
                                        f"start (exit code {proc.poll()}): {exc}") from exc
        finally:
            self._starting = None
        if not header.get("ready"):
            _stop(proc, parent)
            raise InferenceProcessError(f"the inference process for {self.path} could not "
                                        f"load the model: {header.get('error')}")
        parent.settimeout(None)
        parent.setblocking(False)
        if spools:
            self._spools = spools
        return proc, parent

    # -- the prediction log ----------------------------------------------------------------

    def log(self, entry: dict[str, Any]) -> None:
        """Queue a prediction-log entry (see ``log_entry``): merged into the queued one when
        they fit together, it travels with the batch that follows ``LOG_EVERY`` queued
        entries, or, when none does within ``LOG_DELAY_S``, on its own; the child writes the
        rows it kept for those batches. Rows of batches a dead child answered are lost:
        counted and named here. Call on the event loop."""
        dead = [i for i, (frame, _, _) in enumerate(entry["kept"]) if frame < self._floor]
        if dead:  # batches a dead child answered: its replay takes them, if still open
            late = _subset(entry, dead)
            self._seq += 1
            late["seq"] = self._seq
            if not self._dead.late(late):
                self._count_lost([late])
            entry = _subset(entry, sorted(set(range(len(entry["kept"]))) - set(dead)))
            if not entry["kept"]:
                return
        self._queued += 1
        pending = self._pending_log
        if not (pending and _merge(pending[-1], entry)):  # queued, not sent: may grow
            self._seq += 1
            entry["seq"] = self._seq
            self._unsettled.append(entry)
            pending.append(entry)
        if self._log_timer is None:
            self._log_timer = asyncio.get_running_loop().call_later(self.LOG_DELAY_S,
                                                                    self._log_due)

    def _log_due(self) -> None:
        self._log_timer = None
        if self._pending_log and self._sock is not None:  # no batch took them along
            task = asyncio.get_running_loop().create_task(self._send_log())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send_log(self, *, flush: bool = False) -> None:
        if self._pending_log or flush:
            with contextlib.suppress(InferenceProcessError, TimeoutError):
                async with asyncio.timeout(self.LOG_TIMEOUT_S):
                    await self._exchange({"only_log": True, "flush": flush})

    async def flush_log(self) -> None:
        """Send the queued log entries and have the child write its buffer now; the
        counters in ``log_stats`` are then up to date."""
        if self._sock is not None:
            await self._send_log(flush=True)

    def _count_lost(self, entries: Sequence[dict[str, Any]]) -> None:
        """Rows of answered requests no child will write: dropped, and named in the log."""
        self._add_retired(LogStats(dropped_rows=count_lost(self.name, entries)))

    def _add_retired(self, stats: LogStats) -> None:
        self._retired_stats = LogStats.total([self._retired_stats, stats])

    def _settle(self, header: dict[str, Any]) -> None:
        """Forget the entries the child has settled; take its counters of that moment."""
        if "log_stats" in header:
            self.log_stats = LogStats(**header["log_stats"])
        settled = header.get("settled", 0)
        unsettled = self._unsettled
        while unsettled and unsettled[0]["seq"] <= settled:
            unsettled.popleft()

    @property
    def total_log_stats(self) -> LogStats:
        """The prediction-log counters of this deployment's children, dead ones included
        (with the rows they lost)."""
        return LogStats.total([self._retired_stats, self.log_stats])

    # -- batches ---------------------------------------------------------------------------

    async def run(self, columns: Columns) -> tuple[Columns, int]:
        """The model's outputs for ``columns`` and the id of the batch (one batch at a time
        per process); the id lets a log entry name the rows it logs."""
        outputs, header = await self._exchange({}, columns=columns, batch=True)
        return outputs, header["id"]

    async def run_raw(self, spec: dict[str, Any],
                      bodies: list[bytes]) -> tuple[dict[str, Any], int]:
        """Send undecoded request bodies; the child's answer header (``statuses``,
        ``ranges``, ``calls``; ``payload``: the response bodies) and the batch's id."""
        _, header = await self._exchange({"raw": spec}, payload=bodies, batch=True)
        return header, header["id"]

    async def _exchange(self, extra: dict[str, Any], *,
                        columns: Columns | None = None, payload: Sequence[bytes] = (),
                        batch: bool = False) -> tuple[Columns, dict[str, Any]]:
        """One frame (a numbered batch, or log entries alone) and the child's answer. The
        frame is numbered and takes the queued log entries under the lock, so batch ids
        reach the child in order and entries a cancelled call never sent stay queued."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._started()
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_unix_connection(
                    sock=self._sock, limit=1 << 26)
            assert self._reader is not None
            frame = 0
            if batch:
                self._frame += 1
                frame = extra["id"] = self._frame
            if self._pending_log and (not batch or self._queued >= self.LOG_EVERY):
                extra["log"], self._pending_log, self._queued = self._pending_log, [], 0
            try:
                self._writer.write(encode(columns or {}, extra, payload))
                (total,) = struct.unpack("<I", await self._reader.readexactly(4))
                body = await self._reader.readexactly(total)
            except (OSError, asyncio.IncompleteReadError) as exc:
                code = self._drop()
                raise InferenceProcessError(
                    f"the model's inference process stopped (exit code {code}); "
                    "a new one is starting") from exc
            except asyncio.CancelledError:  # a deadline: the child hangs or is too slow
                log.warning("endpoint %s: the inference process did not answer %s in time; "
                            "killed it, a new one is starting", self.name,
                            f"batch {frame}" if frame else "a log frame")
                self._drop()
                raise
        outputs, header = decode(body)
        self._settle(header)
        if "error" in header:
            raise RemoteModelError(header["error"])
        header["id"] = frame
        return outputs, header

    # -- the child's life ------------------------------------------------------------------

    async def _started(self) -> None:
        """Wait for a child (starting one if none is starting); called under the lock."""
        self.watch()
        if self._sock is not None:
            return
        if self._closed:
            raise InferenceProcessError("the inference process is stopped")
        if self._restart is None:
            self._restart = asyncio.get_running_loop().create_task(self._respawn())
        await asyncio.shield(self._restart)  # a cancelled batch never orphans a new child
        if self._sock is None:
            raise InferenceProcessError(f"the inference process for {self.name} could not "
                                        "be restarted (see the server log)")

    async def _respawn(self) -> None:
        try:
            proc, sock = await asyncio.get_running_loop().run_in_executor(None, self._spawn)
        except InferenceProcessError as exc:
            log.error("endpoint %s: %s", self.name, exc)
            return
        finally:
            self._restart = None
        if self._closed:  # stopped meanwhile
            await asyncio.get_running_loop().run_in_executor(None, _stop, proc, sock)
            return
        self.proc, self._sock = proc, sock
        self.restarts += 1
        log.info("endpoint %s: a new inference process serves (restart %d)", self.name,
                 self.restarts)

    def _drop(self) -> int | None:
        """The child is dead or hangs: kill and reap it, count what it had not logged, and
        start a new one (unless closing); returns its exit code."""
        self._retired_stats = LogStats.total([self._retired_stats, self.log_stats])
        self.log_stats = LogStats()
        lost = list(self._unsettled)
        self._unsettled.clear()
        self._pending_log, self._queued = [], 0
        first, self._floor = self._floor, self._frame + 1
        self._disconnect()
        with contextlib.suppress(OSError):
            self.proc.kill()
        code = self.proc.wait()
        if self._spools:  # its spools give back what it had not written
            for slot, spool in enumerate(self._spools):
                self._dead.died(spool, first, self._floor,
                                [e for e in lost if e.get("slot", 0) == slot], slot)
        else:
            self._count_lost(lost)
        if not self._closed and self._restart is None:
            self._restart = asyncio.get_running_loop().create_task(self._respawn())
        return code

    def _disconnect(self) -> None:
        if self._writer is not None:
            self._writer.close()  # on the event loop: closes the socket with the transport
        elif self._sock is not None:
            self._sock.close()
        self._reader = self._writer = None
        self._sock = None

    async def aclose(self) -> None:
        """Stop the child from the event loop: the last log entries go first (within
        ``LOG_TIMEOUT_S``), then the child exits when its socket closes, after flushing its
        log (killed if it has not within 10 s); waiting for it happens off the loop. A child
        still starting is killed."""
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
        if self._log_timer is not None:
            self._log_timer.cancel()
            self._log_timer = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        restart = self._restart
        if restart is not None:
            starting = self._starting
            if starting is not None:
                with contextlib.suppress(OSError):
                    starting.kill()
            await asyncio.gather(restart, return_exceptions=True)
        if self._sock is not None:
            await self._send_log(flush=True)  # the final counters come back with it
        self._count_lost(list(self._unsettled))  # a child that could not take them
        self._unsettled.clear()
        writer = self._writer
        self._disconnect()
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, _stop, self.proc, None)
        await self._dead.wait()  # replays of dead children, started before or by this


def _subset(entry: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    """The log entry for the requests at positions ``keep`` only."""
    out = dict(entry)
    for name in _ENTRY_LISTS:
        if name in entry:
            out[name] = [entry[name][i] for i in keep]
    return out


def _merge(into: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Append ``entry``'s requests to the unsent entry ``into`` (False: they differ in kind
    or in which routing lists they carry, and travel apart)."""
    if into.get("shadow") != entry.get("shadow") or into.get("slot") != entry.get("slot") or \
            any((name in into) != (name in entry) for name in _ENTRY_LISTS):
        return False
    for name in _ENTRY_LISTS:
        if name in entry:
            into[name] = into[name] + entry[name]
    into["upto"] = max(into["upto"], entry["upto"])
    return True


def _stop(proc: subprocess.Popen[bytes], sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
