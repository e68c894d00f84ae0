"""A replica's own HTTP server (``--engine ray --ray-http direct``): uvicorn inside a running
event loop, on a port every replica of the node binds (``SO_REUSEPORT``: the kernel spreads
the connections over them), so requests reach the app without a proxy hop.

``OwnHttp`` wraps the served app: its lifespan, run by whoever hosts the app (Ray Serve),
opens the HTTP server once the app has started (models loaded) and closes it (in-flight
requests finished) before the app stops. uvicorn runs with the local server's options
(``DeadlineHttpProtocol``: idle and read deadlines; access log off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from shipyard.server.connections import DeadlineHttpProtocol

log = logging.getLogger("shipyard.serve")
BACKLOG = 2048


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other processes may bind too."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class OwnHttp:
    """ASGI wrapper of ``app`` that serves it over HTTP on ``host:port`` while it runs."""

    def __init__(self, app: Any, host: str, port: int, *, idle_timeout_s: float,
                 graceful_s: float = 30.0) -> None:
        self.app = app  # connections.read_timeout_of finds the served app's deadline here
        self.host, self.port = host, port
        self.idle_timeout_s, self.graceful_s = idle_timeout_s, graceful_s
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def receiving() -> Any:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.close()  # no new connections; in-flight requests answered
            return message

        async def sending(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                await self.open()
            await send(message)

        await self.app(scope, receiving, sending)

    async def open(self) -> None:
        import uvicorn

        sock = shared_socket(self.host, self.port)
        config = uvicorn.Config(
            self.app, lifespan="off", log_level="warning", access_log=False,
            proxy_headers=False, ws="none", http=DeadlineHttpProtocol,
            timeout_graceful_shutdown=int(self.graceful_s),
            timeout_keep_alive=self.idle_timeout_s)  # type: ignore[arg-type]
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():  # it could not start: say why, and fail the start-up
            self._task.result()
            raise RuntimeError(f"the replica's HTTP server on {self.host}:{self.port} stopped")

    async def close(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._server = self._task = None
