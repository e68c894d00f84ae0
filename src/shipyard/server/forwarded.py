"""The client address behind a trusted proxy, for routing keys read by the ``client`` spec.

The hot routes skip uvicorn's proxy-header middleware (it cost ~3% of the GIL time per
request and they rarely need the address). A policy keyed by ``client`` does need it: behind
a proxy every request would otherwise carry the proxy's address, and a sticky A/B test would
send everyone to one variant. This runs the same middleware, with the same trusted hosts
(``FORWARDED_ALLOW_IPS``), on a copy of the request's scope, only for those requests.
"""

from __future__ import annotations

from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


async def _keep(scope: Any, receive: Any, send: Any) -> None:
    """The middleware's inner app: nothing to do, the rewritten scope is the answer."""


async def _never(*args: Any) -> Any:  # pragma: no cover - the inner app never calls them
    raise RuntimeError("not used")


class ForwardedClient:
    """``await forwarded(scope)``: the request's client ``(host, port)`` as uvicorn's
    X-Forwarded-For handling gives it (the peer's own address unless the peer is trusted)."""

    def __init__(self, trusted_hosts: str | list[str]) -> None:
        self._middleware = ProxyHeadersMiddleware(_keep, trusted_hosts=trusted_hosts)

    async def __call__(self, scope: Any) -> Any:
        view = {"type": "http", "client": scope.get("client"), "headers": scope["headers"],
                "scheme": scope.get("scheme", "http")}
        await self._middleware(view, _never, _never)  # type: ignore[arg-type]
        return view.get("client")
