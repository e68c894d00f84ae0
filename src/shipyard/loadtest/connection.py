"""A lean HTTP/1.1 client for load generation: keep-alive connections on asyncio protocols.

A general client (httpx) spends most of a small request's CPU in its connection pool and
stream layers (measured: ~100 requests a second from one core with 32 connections, the pool
scanning every connection on every request). A load generator needs far less: each request
is a POST whose bytes are built once, before the run (request line, headers, body), written
to an idle keep-alive connection, and its answer is read only as far as its status and its
end (``Content-Length`` or chunked), so one core sends thousands a second.

Outcomes are status codes as text (``"200"``) or what went wrong: ``"connect error"``,
``"timeout"``, ``"connection closed"`` (the server closed before answering),
``"bad response"``. A connection that failed or that the server asked to close is dropped
and the next request opens a new one. HTTP and HTTPS; HTTP/1.1 only, one request at a time
per connection (no pipelining).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from shipyard.errors import ShipyardError

_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class Target:
    """Where requests go: host, port, path and whether over TLS."""

    host: str
    port: int
    path: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ShipyardError(f"the load test URL must be http:// or https:// with a host, "
                                f"not {url!r}")
        tls = parts.scheme == "https"
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        return cls(parts.hostname, parts.port or (443 if tls else 80), path, tls)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


def post_requests(target: Target, bodies: Sequence[bytes],
                  headers: Mapping[str, str] | None = None) -> list[bytes]:
    """The whole bytes of one POST per body (JSON, keep-alive), built once before a run."""
    fields = {"host": target.host_header, "content-type": "application/json",
              "user-agent": "shipyard-loadtest"}
    fields.update({k.lower(): v for k, v in (headers or {}).items()})
    for name, value in fields.items():
        if any(c in name + value for c in "\r\n"):
            raise ShipyardError(f"header {name!r} holds a line break")
    head = f"POST {target.path} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fields.items())
    return [f"{head}content-length: {len(body)}\r\n\r\n".encode("latin-1") + body
            for body in bodies]


class _Response(asyncio.Protocol):
    """One connection: writes a request, reads the answer's status and finds its end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[str] | None = None
        self.buffer = b""
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        head = self.buffer.find(_HEAD_END)  # a body that ends with the connection, if any
        self._finish(_status(self.buffer) if head >= 0 else "connection closed")

    def send(self, request: bytes, waiter: asyncio.Future[str]) -> None:
        assert self.transport is not None
        self.waiter, self.buffer = waiter, b""
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        if self.waiter is None:
            self.reusable = False  # bytes nobody asked for: do not trust this connection
            return
        outcome = _complete(self.buffer)
        if outcome is None:
            return
        status, keep = outcome
        self.reusable = self.reusable and keep
        self._finish(status)

    def _finish(self, status: str) -> None:
        waiter, self.waiter, self.buffer = self.waiter, None, b""
        if waiter is not None and not waiter.done():
            waiter.set_result(status)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


def _complete(buffer: bytes) -> tuple[str, bool] | None:
    """(status, keep-alive) once ``buffer`` holds a whole response, else None."""
    end = buffer.find(_HEAD_END)
    if end < 0:
        return None
    head = buffer[:end].lower()
    status = _status(head)
    if status == "bad response":
        return status, False
    keep = b"\r\nconnection: close" not in head and not head.startswith(b"http/1.0")
    body_start = end + 4
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        try:
            length = int(head[at + 17:stop if stop >= 0 else len(head)])
        except ValueError:
            return "bad response", False
        return ((status, keep) if len(buffer) - body_start >= length else None)
    if b"\r\ntransfer-encoding: chunked" in head:
        return _chunked_end(buffer, body_start, status, keep)
    if status.startswith("1") or status in ("204", "304"):
        return status, keep
    return None if keep else (status, False)  # body until close: read by connection_lost


def _status(head: bytes) -> str:
    """The status code of a response head, as text."""
    code = head[9:12]
    if head[:7].lower() != b"http/1." or len(head) < 12 or not code.isdigit():
        return "bad response"
    return code.decode("latin-1")


def _chunked_end(buffer: bytes, at: int, status: str, keep: bool
                 ) -> tuple[str, bool] | None:
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        try:
            size = int(buffer[at:line_end].split(b";")[0], 16)
        except ValueError:
            return "bad response", False
        if size == 0:
            return (status, keep) if buffer.find(_HEAD_END, line_end - 2) >= 0 else None
        at = line_end + 2 + size + 2
        if at > len(buffer):
            return None


class Connections:
    """Keep-alive connections to one target, at most ``limit`` open; a request waits for
    a free one when all are busy."""

    def __init__(self, target: Target, limit: int, timeout_s: float) -> None:
        self.target, self.limit, self.timeout_s = target, limit, timeout_s
        self._idle: list[_Response] = []
        self._open = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._tls = ssl.create_default_context() if target.tls else None

    async def send(self, request: bytes) -> str:
        """Send one request on a free connection; its status, or what went wrong."""
        conn = await self._take()
        if conn is None:
            return "connect error"
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[str] = loop.create_future()
        conn.send(request, waiter)
        timer = loop.call_later(self.timeout_s, _expire, waiter)
        try:
            status = await waiter
        finally:
            timer.cancel()
        self._give_back(conn, ok=status[0].isdigit())
        return status

    async def _take(self) -> _Response | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                return conn
            self._closed(conn)
        if self._open >= self.limit:
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(ready)
            await ready
            return await self._take()
        self._open += 1
        try:
            return await self._connect()
        except (OSError, TimeoutError, ssl.SSLError):
            self._open -= 1
            self._wake()
            return None

    async def _connect(self) -> _Response:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(loop.create_connection(
            _Response, self.target.host, self.target.port, ssl=self._tls,
            server_hostname=self.target.host if self._tls else None), self.timeout_s)
        return conn

    def _give_back(self, conn: _Response, *, ok: bool) -> None:
        if ok and conn.reusable:
            self._idle.append(conn)
            self._wake()
        else:
            conn.close()
            self._closed(conn)

    def _closed(self, conn: _Response) -> None:
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            ready = self._waiting.popleft()
            if not ready.done():
                ready.set_result(None)
                return

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _expire(waiter: asyncio.Future[str]) -> None:
    if not waiter.done():
        waiter.set_result("timeout")
