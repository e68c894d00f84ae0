"""Connection deadlines uvicorn does not keep by itself.

uvicorn closes a kept-alive connection that stays idle between two requests
(``timeout_keep_alive``), but nothing else: a connection that never sends a byte, or a
request whose headers or body stop half-way, holds a socket (and, for a body, a waiting
request task) for as long as the client likes. :class:`DeadlineHttpProtocol` is uvicorn's
httptools protocol with two deadlines more:

- idle: a new connection that sends nothing is closed after ``timeout_keep_alive`` too
  (the serve config's ``idle_timeout_s``), as a kept-alive one is;
- read: a request must arrive whole, headers and body, within ``read_timeout_s`` of its
  first byte. Past it the client gets ``408`` (when nothing was answered yet) and the
  connection is closed; a request still waiting for its body sees a disconnect.

One timer per request, armed at its first byte and cancelled at its last: requests that
arrive whole in one read pay one ``call_later`` and one ``cancel``. The first byte is the
first one read after the previous answer, not the start of a message: empty lines may come
before a request line and begin none, yet cancel uvicorn's idle timer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shipyard.protocol import codec

READ_TIMEOUT_S = 30.0  # the serve config's default read_timeout_s


def read_timeout_of(app: Any) -> float:
    """The ``read_timeout_s`` of the served app (``HotPaths``), under any ASGI wrappers
    uvicorn may have put around it (each keeps the app it wraps as ``.app``)."""
    for _ in range(8):
        timeout = getattr(app, "read_timeout_s", None)
        if isinstance(timeout, (int, float)):
            return float(timeout)
        app = getattr(app, "app", None)
        if app is None:
            break
    return READ_TIMEOUT_S


class DeadlineHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with an idle deadline for new connections and a read
    deadline for every request (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout_s = read_timeout_of(self.app)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._earlier: Any = None  # the connection's request cycle before this request's

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # the keep-alive timer, armed before the first request too: data_received cancels it
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_read_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._read_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._start_read_deadline()  # a request's first byte, even a blank line's
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_deadline is None:  # pipelined after a request still being answered
            self._start_read_deadline()

    def _start_read_deadline(self) -> None:
        self._earlier = self.cycle
        self._read_deadline = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def on_message_complete(self) -> None:
        self._stop_read_deadline()
        super().on_message_complete()

    def _stop_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing():
            return
        # nothing answered yet: its headers are incomplete (no request cycle of its own
        # yet), or its body is and the app is still waiting for it
        if self.cycle is self._earlier or not self.cycle.response_started:
            body = codec.error_body(f"the request did not arrive whole within "
                                    f"{self.read_timeout_s:g} s (read_timeout_s)")
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\n"
                                 b"content-type: application/json\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                                 % (len(body), body))
        self.transport.close()
