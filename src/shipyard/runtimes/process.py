"""Model inference in a child process, driven from the event loop without a thread.

Why: with inference in a thread of the server process, every batch hands the GIL to that
thread and back (ONNX Runtime's binding re-takes it to build its outputs). Under load the
event loop holds the GIL, so each hand-off is a forced switch that waits out the switch
interval and costs a pair of context switches; measured on the 2-core bench machine that
was most of the inference thread's CPU (``bench/README.md``, serving round 5). A child
process has its own interpreter and GIL: the loop writes one frame per batch to a socket
and reads one back when the child answers, so nothing in the server process contends.

Frames are ``[u32 length][u32 header length][JSON header][raw array bytes]``: numeric arrays
travel as their bytes (no pickle), object arrays (strings) as JSON lists in the header.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from shipyard.errors import ShipyardError
from shipyard.settings import Settings
from shipyard.types import Columns

_LEN = struct.Struct("<II")


class InferenceProcessError(ShipyardError):
    """The inference process failed to start, died, or could not run a batch."""


class RemoteModelError(RuntimeError):
    """The model raised in the inference process (an internal error, as it would be in a
    thread); the message is the child's error."""


def encode(columns: Columns, extra: dict[str, Any] | None = None) -> bytes:
    """One frame for ``columns`` (and JSON-able ``extra`` fields in the header)."""
    specs: list[list[Any]] = []
    blobs: list[bytes] = []
    for name, arr in columns.items():
        if arr.dtype.kind == "O":
            specs.append([name, "O", list(arr.shape), arr.tolist()])
        else:
            arr = np.ascontiguousarray(arr)
            specs.append([name, arr.dtype.str, list(arr.shape)])
            blobs.append(arr.data.cast("B") if arr.size else b"")  # type: ignore[arg-type]
    header = orjson.dumps({"arrays": specs, **(extra or {})})
    body_len = 4 + len(header) + sum(len(b) for b in blobs)
    return b"".join([_LEN.pack(body_len, len(header)), header, *blobs])


def decode(body: bytes | memoryview) -> tuple[Columns, dict[str, Any]]:
    """``columns`` and the header of a frame body (without its leading total length)."""
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
        count = int(np.prod(shape)) if shape else 1
        nbytes = count * dt.itemsize
        columns[name] = np.frombuffer(view[offset:offset + nbytes], dtype=dt).reshape(shape)
        offset += nbytes
    return columns, header


class InferenceProcess:
    """A child process serving one model package; ``run`` sends it a batch.

    Starting blocks (load + warm-up in the child): do it off the event loop. If the child
    dies, the batch it held fails with ``InferenceProcessError`` (HTTP 503) and the next
    batch starts a fresh child first."""

    def __init__(self, path: Path, *, trust: bool, runtime: str | None, settings: Settings,
                 start_timeout_s: float = 300.0) -> None:
        self.path = path
        self._args = [sys.executable, "-m", "shipyard.runtimes.worker", str(path)]
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

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    async def run(self, columns: Columns) -> Columns:
        """The model's outputs for ``columns`` (one batch at a time per process)."""
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
                self._writer.write(encode(columns))
                (total,) = struct.unpack("<I", await self._reader.readexactly(4))
                body = await self._reader.readexactly(total)
            except (OSError, asyncio.IncompleteReadError) as exc:
                self._drop()
                raise InferenceProcessError(
                    f"the model's inference process stopped (exit code {self.proc.poll()}); "
                    "a new one starts with the next batch") from exc
        outputs, header = decode(body)
        if "error" in header:
            raise RemoteModelError(header["error"])
        return outputs

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
        """Stop the child from the event loop: it exits when its socket closes (killed if
        it has not within 10 s); waiting for it happens off the loop."""
        writer = self._writer
        self._disconnect()
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, _stop, self.proc, None)

    def close(self) -> None:
        """Stop the child when no event loop has used it (start-up failures, tests)."""
        if self._writer is not None:
            raise RuntimeError("this inference process is driven by an event loop: "
                               "use aclose()")
        _stop(self.proc, self._sock)
        self._sock = None


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


def send_frame(sock: socket.socket, frame: bytes) -> None:
    sock.sendall(frame)


def child_main(fd: int, path: str, *, trust: bool, runtime: str | None) -> int:
    """The child's loop: load, warm up, say ready, then answer frames until EOF."""
    import json

    from shipyard.runtimes.model import load

    sock = socket.socket(fileno=fd)
    try:
        model = load(path, trust=trust, runtime=runtime, settings=Settings.from_env())
        example = model.manifest.input_example
        if example is not None:
            model.predict(json.loads((Path(path) / example).read_text()))
    except Exception as exc:
        send_frame(sock, encode({}, {"ready": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    send_frame(sock, encode({}, {"ready": True, "pid": os.getpid()}))
    predict = model.runtime.predict
    while True:
        try:
            body = _recv_frame(sock)
        except InferenceProcessError:
            return 0  # the server closed its end: shut down
        columns, _ = decode(body)
        try:
            reply = encode(predict(columns))
        except Exception as exc:
            reply = encode({}, {"error": f"{type(exc).__name__}: {exc}"})
        send_frame(sock, reply)
