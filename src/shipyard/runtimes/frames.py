"""The protocol between the server and its inference process: frames and what they carry.

Frames are ``[u32 length][u32 header length][JSON header][raw array bytes][payload]``:
numeric arrays travel as their bytes (no pickle), object arrays (strings) as JSON lists in the
header; the payload is opaque bytes (request and response bodies of raw batches). Both sides
import this module: the parent (``process.py``) and the child (``child.py``).
"""

from __future__ import annotations

import dataclasses
import math
import socket
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from shipyard.errors import InferenceProcessError, RemoteModelError
from shipyard.types import Columns

if TYPE_CHECKING:
    from shipyard.runtimes.model import LoadedModel

__all__ = ["InferenceProcessError", "RawAnswer", "RawHandler", "RemoteModelError", "decode",
           "encode", "recv_frame"]

_LEN = struct.Struct("<II")


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


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise InferenceProcessError("connection closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    """The body of the next frame on a blocking socket (``InferenceProcessError`` at EOF)."""
    (total,) = struct.unpack("<I", _recv_exact(sock, 4))
    return _recv_exact(sock, total)
