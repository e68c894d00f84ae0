"""Model inference in a child process, driven from the event loop without a thread.

Why: with inference in a thread of the server process, every batch hands the GIL to that
thread and back (ONNX Runtime's binding re-takes it to build its outputs). Under load the
event loop holds the GIL, so each hand-off is a forced switch that waits out the switch
interval and costs a pair of context switches; measured on the 2-core bench machine that
was most of the inference thread's CPU (``bench/README.md``, serving round 5). A child
process has its own interpreter and GIL: the loop writes one frame per batch to a socket
and reads one back when the child answers, so nothing in the server process contends.

Frames are ``[u32 length][u32 header length][JSON header][raw array bytes][payload]``:
numeric arrays travel as their bytes (no pickle), object arrays (strings) as JSON lists in the
header; the payload is opaque bytes (request and response bodies of raw batches).

Raw batches: a child started with a ``RawHandler`` (the server's, ``shipyard.server.
inference_child``) also takes batches of undecoded request bodies and answers each with a
status and a response body. Parsing, validation and response encoding then run in the child,
and the server's event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from shipyard.errors import ServingError
from shipyard.runtimes.outputs import concat
from shipyard.settings import Settings
from shipyard.stores.predictions import LogStats, PredictionBatch, PredictionLog
from shipyard.types import Columns, num_rows

if TYPE_CHECKING:
    from shipyard.runtimes.model import LoadedModel

_LEN = struct.Struct("<II")


class InferenceProcessError(ServingError):
    """The inference process failed to start, died, or could not run a batch."""


class RemoteModelError(ServingError):
    """The model raised in the inference process (an internal error, as it would be in a
    thread); the message is the child's error."""


@dataclasses.dataclass
class RawAnswer:
    """A ``RawHandler``'s answer to a raw batch: per request its status and body, and for
    each request the model answered, its rows ``[a, b)`` in ``inputs`` / ``outputs`` (what
    the prediction log of the batch holds)."""

    statuses: list[int]
    bodies: list[bytes]
    ranges: list[tuple[int, int] | None]
    inputs: Columns
    outputs: Columns
    calls: list[int]  # rows of each model call (the batch-size metric)
    ids: dict[str, str] = dataclasses.field(default_factory=dict)  # index -> a changed id


# (model, the batch's spec from the server, the request bodies) -> answers
RawHandler = Callable[["LoadedModel", dict[str, Any], list[memoryview]], RawAnswer]
WORKER = "shipyard.runtimes.worker"  # the default child: column batches only


def encode(columns: Columns, extra: dict[str, Any] | None = None,
           payload: Sequence[bytes] = ()) -> bytes:
    """One frame for ``columns`` (and JSON-able ``extra`` fields in the header), then the
    ``payload`` parts (their lengths go in the header as ``payload``)."""
    specs: list[list[Any]] = []
    blobs: list[bytes] = []
    for name, arr in columns.items():
        if arr.dtype.kind == "O":
            specs.append([name, "O", list(arr.shape), arr.tolist()])
        else:
            arr = np.ascontiguousarray(arr)
            specs.append([name, arr.dtype.str, list(arr.shape)])
            blobs.append(arr.data.cast("B") if arr.size else b"")  # type: ignore[arg-type]
    fields = {"arrays": specs, **(extra or {})}
    if payload:
        fields["payload"] = [len(part) for part in payload]
        blobs.extend(payload)
    header = orjson.dumps(fields)
    body_len = 4 + len(header) + sum(len(b) for b in blobs)
    return b"".join([_LEN.pack(body_len, len(header)), header, *blobs])


def decode(body: bytes | memoryview) -> tuple[Columns, dict[str, Any]]:
    """``columns`` and the header of a frame body (without its leading total length); a
    payload comes back as ``header["payload"]``, a list of views of its parts."""
    view = memoryview(body)
    (header_len,) = struct.unpack_from("<I", view, 0)
    header = orjson.loads(view[4:4 + header_len])
    offset = 4 + header_len
    columns: Columns = {}
    for spec in header.pop("arrays"):
        name, dtype, shape = spec[0], spec[1], tuple(spec[2])
        if dtype == "O":
            values = np.empty(len(spec[3]), dtype=object)
            values[:] = spec[3]
            columns[name] = values.reshape(shape)
            continue
        dt = np.dtype(dtype)
        count = math.prod(shape)
        nbytes = count * dt.itemsize
        columns[name] = np.frombuffer(view[offset:offset + nbytes], dtype=dt).reshape(shape)
        offset += nbytes
    if "payload" in header:
        parts = []
        for size in header["payload"]:
            parts.append(view[offset:offset + size])
            offset += size
        header["payload"] = parts
    return columns, header


class InferenceProcess:
    """A child process serving one model package; ``run`` sends it a batch.

    With a ``ChildLog`` the child also writes the prediction log of its batches: it holds
    their inputs and outputs already, so the server process neither keeps them nor spends
    its GIL on Arrow and Parquet.

    Starting blocks (load + warm-up in the child): do it off the event loop. If the child
    dies, the batch it held fails with ``InferenceProcessError`` (HTTP 503) and the next
    batch starts a fresh child first."""

    LOG_DELAY_S = 0.2  # a log entry waits at most this long for a batch to carry it

    def __init__(self, path: Path, *, trust: bool, runtime: str | None, settings: Settings,
                 log: ChildLog | None = None, start_timeout_s: float = 300.0,
                 module: str = WORKER) -> None:
        self.path = path
        self.raw = module != WORKER  # the child takes raw batches (see ``run_raw``)
        self._args = [sys.executable, "-m", module, str(path)]
        if log is not None:
            self._args += ["--log", orjson.dumps(dataclasses.asdict(log)).decode()]
        if trust:
            self._args.append("--trust")
        if runtime:
            self._args += ["--runtime", runtime]
        # the child imports what the server can (custom model classes by import path)
        path_now = os.pathsep.join(p for p in sys.path if p)
        self._env = {**os.environ, **settings.to_env(), "PYTHONPATH": path_now}
        self._timeout = start_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock: asyncio.Lock | None = None
        self.restarts = 0
        self._frame = 0  # id of the last batch sent
        self._pending_log: list[dict[str, Any]] = []  # sent with the next frame
        self._log_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.log_stats = LogStats()  # the child's prediction log, as of its last answer
        self._retired_stats = LogStats()  # those of children that died
        self._sock: socket.socket | None
        self.proc, self._sock = self._spawn()

    def _spawn(self) -> tuple[subprocess.Popen[bytes], socket.socket]:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen([*self._args, "--fd", str(child.fileno())],
                                    pass_fds=[child.fileno()], env=self._env)
        except OSError as exc:
            parent.close()
            raise InferenceProcessError(f"cannot start an inference process: {exc}") from exc
        finally:
            child.close()
        parent.settimeout(self._timeout)
        try:
            _, header = decode(_recv_frame(parent))
        except (OSError, InferenceProcessError) as exc:
            _stop(proc, parent)
            raise InferenceProcessError(f"the inference process for {self.path} did not "
                                        f"start (exit code {proc.poll()}): {exc}") from exc
        if not header.get("ready"):
            _stop(proc, parent)
            raise InferenceProcessError(f"the inference process for {self.path} could not "
                                        f"load the model: {header.get('error')}")
        parent.settimeout(None)
        parent.setblocking(False)
        return proc, parent

    def log(self, entry: dict[str, Any]) -> None:
        """Queue a prediction-log entry (see ``log_entry``): it travels with the next batch,
        or, when none follows within ``LOG_DELAY_S``, on its own; the child writes the rows
        it kept for that batch. Call on the event loop."""
        self._pending_log.append(entry)
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
            with contextlib.suppress(InferenceProcessError):
                await self._exchange(encode({}, self._take_log({"only_log": True,
                                                                "flush": flush})))

    async def flush_log(self) -> None:
        """Send the queued log entries and have the child write its buffer now; the
        counters in ``log_stats`` are then up to date."""
        if self._sock is not None:
            await self._send_log(flush=True)

    async def run(self, columns: Columns) -> tuple[Columns, int]:
        """The model's outputs for ``columns`` and the id of the batch (one batch at a time
        per process); the id lets a log entry name the rows it logs."""
        outputs, _, frame = await self._batch(columns, {})
        return outputs, frame

    async def run_raw(self, spec: dict[str, Any],
                      bodies: list[bytes]) -> tuple[dict[str, Any], int]:
        """Send undecoded request bodies; the child's answer header (``statuses``,
        ``ranges``, ``calls``; ``payload``: the response bodies) and the batch's id."""
        _, header, frame = await self._batch({}, {"raw": spec}, bodies)
        return header, frame

    async def _batch(self, columns: Columns, extra: dict[str, Any],
                     payload: Sequence[bytes] = ()) -> tuple[Columns, dict[str, Any], int]:
        """One batch frame (numbered, with the queued log entries) and the child's answer."""
        self._frame += 1
        frame = self._frame
        outputs, header = await self._exchange(
            encode(columns, self._take_log({"id": frame, **extra}), payload))
        if "error" in header:
            raise RemoteModelError(header["error"])
        return outputs, header, frame

    def _take_log(self, extra: dict[str, Any]) -> dict[str, Any]:
        if self._pending_log:
            extra["log"], self._pending_log = self._pending_log, []
        return extra

    async def _exchange(self, frame: bytes) -> tuple[Columns, dict[str, Any]]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._sock is None:  # the last child died: start another
                loop = asyncio.get_running_loop()
                self.proc, self._sock = await loop.run_in_executor(None, self._spawn)
                self.restarts += 1
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_unix_connection(
                    sock=self._sock, limit=1 << 26)
            assert self._reader is not None
            try:
                self._writer.write(frame)
                (total,) = struct.unpack("<I", await self._reader.readexactly(4))
                body = await self._reader.readexactly(total)
            except (OSError, asyncio.IncompleteReadError) as exc:
                self._retired_stats = LogStats.total([self._retired_stats, self.log_stats])
                self.log_stats = LogStats()
                self._drop()
                raise InferenceProcessError(
                    f"the model's inference process stopped (exit code {self.proc.poll()}); "
                    "a new one starts with the next batch") from exc
        outputs, header = decode(body)
        if "log_stats" in header:
            self.log_stats = LogStats(**header["log_stats"])
        return outputs, header

    @property
    def total_log_stats(self) -> LogStats:
        """The prediction-log counters of this deployment's children, dead ones included."""
        return LogStats.total([self._retired_stats, self.log_stats])

    def _drop(self) -> None:
        """Forget a dead child's connection and reap it (it is already gone)."""
        self._disconnect()
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()

    def _disconnect(self) -> None:
        if self._writer is not None:
            self._writer.close()  # on the event loop: closes the socket with the transport
        elif self._sock is not None:
            self._sock.close()
        self._reader = self._writer = None
        self._sock = None

    async def aclose(self) -> None:
        """Stop the child from the event loop: the last log entries go first, then the child
        exits when its socket closes, after flushing its log (killed if it has not within
        10 s); waiting for it happens off the loop."""
        if self._log_timer is not None:
            self._log_timer.cancel()
            self._log_timer = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock is not None:
            await self._send_log(flush=True)  # the final counters come back with it
        writer = self._writer
        self._disconnect()
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, _stop, self.proc, None)


def _stop(proc: subprocess.Popen[bytes], sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise InferenceProcessError("connection closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket) -> bytes:
    (total,) = struct.unpack("<I", _recv_exact(sock, 4))
    return _recv_exact(sock, total)


@dataclasses.dataclass(frozen=True)
class ChildLog:
    """Where and as what the child logs its batches (the server's prediction log)."""

    root: str
    flush_interval_s: float
    endpoint: str
    model: str
    version: int


def log_entry(kept: list[tuple[int, int, int]], request_ids: list[str],
              latency_ms: list[float], routing_keys: list[str | None],
              ts: list[float], upto: int) -> dict[str, Any]:
    """A log entry for the child: per kept request its ``(batch id, first row, end row)``
    and its metadata; ``upto``: the newest batch id this entry settles (the child forgets
    older batches once the entry is written). Lists, as they are: the entry is encoded."""
    return {"kept": kept, "request_ids": request_ids, "latency_ms": latency_ms,
            "routing_keys": routing_keys, "ts": ts, "upto": upto}


class _ChildLogger:
    """The child's side: keeps each batch's inputs and outputs until a log entry says which
    rows to write, then appends them to its own ``PredictionLog``."""

    KEEP = 1024  # batches kept at most (entries normally settle them one batch later)

    def __init__(self, spec: ChildLog, class_labels: Sequence[Any] | None) -> None:
        self.spec = spec
        self.class_labels = class_labels
        self.log = PredictionLog(spec.root, flush_interval=spec.flush_interval_s).start()
        self.batches: dict[int, tuple[Columns, Columns]] = {}

    def keep(self, frame: int, inputs: Columns, outputs: Columns) -> None:
        self.batches[frame] = (inputs, outputs)
        if len(self.batches) > self.KEEP:
            del self.batches[next(iter(self.batches))]

    def write(self, entry: dict[str, Any]) -> None:
        kept = entry["kept"]
        parts = [(self.batches.get(frame), a, b) for frame, a, b in kept]
        held = [(p, a, b) for p, a, b in parts if p is not None]
        if kept and len(held) == len(kept):
            inputs = _gather([(p[0], a, b) for p, a, b in held])
            outputs = _gather([(p[1], a, b) for p, a, b in held])
            self.log.append(PredictionBatch(
                request_ids=entry["request_ids"], row_counts=[b - a for _, a, b in kept],
                latency_ms=entry["latency_ms"], routing_keys=entry["routing_keys"],
                ts=entry["ts"], endpoint=self.spec.endpoint, model=self.spec.model,
                version=self.spec.version, inputs=inputs, outputs=outputs,
                class_labels=self.class_labels))
        elif kept:  # batches forgotten (over KEEP): count them, never write wrong rows
            self.log.count_dropped(sum(b - a for _, a, b in kept))
        for frame in [f for f in self.batches if f <= entry["upto"]]:
            del self.batches[frame]

    def stats(self) -> dict[str, Any]:
        stats = self.log.stats  # its fields, as dataclasses.asdict has them, but cheaper
        return {**vars(stats), "by_kind": dict(stats.by_kind)}

    def close(self) -> None:
        self.log.close()


def _answer_raw(model: LoadedModel, handler: RawHandler | None, logger: _ChildLogger | None,
                header: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """The reply to a raw batch: statuses, rows and the response bodies (its payload)."""
    if handler is None:
        return {"error": "this inference process takes no raw batches"}, []
    try:
        answer = handler(model, header["raw"], header["payload"])
    except Exception as exc:  # the handler answers bad requests itself: this is a bug
        return {"error": f"{type(exc).__name__}: {exc}"}, []
    if logger is not None and answer.outputs:
        logger.keep(header["id"], answer.inputs, answer.outputs)
    reply = {"statuses": answer.statuses, "ranges": answer.ranges, "calls": answer.calls}
    if answer.ids:
        reply["ids"] = answer.ids
    return reply, answer.bodies


def _gather(parts: list[tuple[Columns, int, int]]) -> Columns:
    """Rows ``[a, b)`` of each part's columns, concatenated. Consecutive ranges of one part
    (a batch's requests, in order) are one slice; a whole part is not copied."""
    merged: list[tuple[Columns, int, int]] = []
    for cols, a, b in parts:
        if merged and merged[-1][0] is cols and merged[-1][2] == a:
            merged[-1] = (cols, merged[-1][1], b)
        else:
            merged.append((cols, a, b))
    return concat([cols if a == 0 and b == num_rows(cols) else {k: v[a:b] for k, v in cols.items()}
                   for cols, a, b in merged])


def child_main(fd: int, path: str, *, trust: bool, runtime: str | None,
               log: ChildLog | None = None, handler: RawHandler | None = None) -> int:
    """The child's loop: load, warm up, say ready, then answer frames until EOF (then flush
    the prediction log and exit). ``handler`` answers raw batches."""
    import json

    from shipyard.runtimes.model import load

    sock = socket.socket(fileno=fd)
    try:
        model = load(path, trust=trust, runtime=runtime, settings=Settings.from_env())
        example = model.manifest.input_example
        if example is not None:
            model.predict(json.loads((Path(path) / example).read_text()))
    except Exception as exc:
        sock.sendall(encode({}, {"ready": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    logger = None if log is None else _ChildLogger(log, model.signature.class_labels)
    sock.sendall(encode({}, {"ready": True}))
    predict = model.runtime.predict
    try:
        while True:
            try:
                body = _recv_frame(sock)
            except InferenceProcessError:
                return 0  # the server closed its end: shut down
            columns, header = decode(body)
            outputs: Columns = {}
            extra: dict[str, Any] = {}
            payload: list[bytes] = []
            if logger is not None:
                for entry in header.get("log", ()):
                    logger.write(entry)
            if header.get("only_log"):
                if logger is not None and header.get("flush"):
                    logger.log.flush()
            elif "raw" in header:
                extra, payload = _answer_raw(model, handler, logger, header)
            else:
                try:
                    outputs = predict(columns)
                except Exception as exc:
                    extra["error"] = f"{type(exc).__name__}: {exc}"
                if logger is not None and "id" in header and outputs:
                    logger.keep(header["id"], columns, outputs)
            if logger is not None:  # every answer brings the log's counters back
                extra["log_stats"] = logger.stats()
            reply = encode(outputs, extra, payload)
            sock.sendall(reply)
    finally:
        if logger is not None:
            logger.close()
