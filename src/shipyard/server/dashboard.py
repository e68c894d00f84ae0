"""``shipyard ui``: the dashboard without a model server, over a registry and a log
directory; the keys (``api_keys``, ``admin_api_keys``) from a serve config when given, and
the registry's (``shipyard keys create``), read again every ``poll_interval_s``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from shipyard.registry import Registry
from shipyard.service.keyring import KeyRefresh, KeyRing, server_name
from shipyard.settings import Settings
from shipyard.ui import Access, DashboardSource, create_dashboard


def dashboard_app(log_dir: str | Path, settings: Settings, *, registry_url: str | None = None,
                  api_keys: Mapping[str, str] | None = None,
                  admin_api_keys: Mapping[str, str] | None = None,
                  poll_interval_s: float = 5.0, registry_keys: bool = True,
                  open_view: bool = False) -> Starlette:
    """``/ui`` over ``log_dir`` and the registry (``registry_url`` or the settings'); ``/``
    sends a browser there. Keys as ``shipyard serve`` takes them: with ``registry_keys``
    the registry's too, so an unreachable registry stops it at start (no key would be
    enforced); ``open_view``: viewing needs no key."""
    keys = KeyRing(api_keys, admin_api_keys)
    registry: Registry | None = None

    def open_registry() -> Registry:
        nonlocal registry
        if registry is None:
            registry = Registry(registry_url, settings=settings)
        return registry

    source = DashboardSource(log_dir, settings=settings, registry=open_registry)
    refresh = KeyRefresh(keys, lambda: open_registry().api_keys.snapshot(),
                         lambda name: open_registry().api_keys.mark_used(name,
                                                                         where=server_name()),
                         poll_interval_s) if registry_keys else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if refresh is not None:
            await refresh.start()  # no page is shown before the keys are known
        try:
            yield
        finally:
            if refresh is not None:
                await refresh.stop()

    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/", 307)

    return Starlette(routes=[Route("/", home, methods=["GET"]),
                             Mount("/ui", app=create_dashboard(
                                 source, Access(keys, open_view=open_view)))],
                     lifespan=lifespan)


def serve_dashboard(app: Any, *, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, ws="none")
