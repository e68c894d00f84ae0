"""``shipyard ui``: the dashboard without a model server, over a registry and a log
directory; the keys (``api_keys``, ``admin_api_keys``) from a serve config when given."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from shipyard.registry import Registry
from shipyard.server.asgi import ApiKeys
from shipyard.settings import Settings
from shipyard.ui import Access, DashboardSource, create_dashboard


def dashboard_app(log_dir: str | Path, settings: Settings, *, registry_url: str | None = None,
                  api_keys: Mapping[str, str] | None = None,
                  admin_api_keys: Mapping[str, str] | None = None) -> Starlette:
    """``/ui`` over ``log_dir`` and the registry (``registry_url`` or the settings'); ``/``
    sends a browser there. Keys as ``shipyard serve`` takes them (admin keys also open)."""
    admin = dict(admin_api_keys or {})
    keys = ApiKeys({**(api_keys or {}), **{f"admin:{n}": s for n, s in admin.items()}}
                   if api_keys else {})
    source = DashboardSource(log_dir, settings=settings,
                             registry=lambda: Registry(registry_url, settings=settings))

    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/", 307)

    return Starlette(routes=[Route("/", home, methods=["GET"]),
                             Mount("/ui", app=create_dashboard(source,
                                                               Access(keys, ApiKeys(admin))))])


def serve_dashboard(app: Any, *, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, ws="none")
