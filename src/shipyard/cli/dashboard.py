"""``shipyard ui``: the dashboard alone, without a model server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.output import console


def ui(
    registry: Annotated[str | None, typer.Option(
        "--registry", help="registry database URL (default $SHIPYARD_REGISTRY_URL or SQLite "
                           "under $SHIPYARD_HOME)")] = None,
    log_dir: Annotated[str | None, typer.Option(
        "--log-dir", help="prediction log directory or URL (default $SHIPYARD_HOME/logs, or "
                          "the serve config's log_dir)")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="serve.yaml: its api_keys and admin_api_keys guard the dashboard, "
                         "its log_dir is read")] = None,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8080,
) -> None:
    """Serve the dashboard (overview, endpoints, features, models, rollouts) from the
    registry and the log directory; read-only with any valid key, changes need an admin
    key. Try it needs `shipyard serve`, which mounts the same dashboard at /ui."""
    from shipyard.server.dashboard import dashboard_app, serve_dashboard
    from shipyard.service.config import ServeConfig
    from shipyard.settings import Settings

    settings = Settings.from_env()
    serve = ServeConfig.from_file(config) if config is not None else None
    root = log_dir or (serve.log_dir if serve is not None and serve.log_dir else None) \
        or str(settings.home / "logs")
    app = dashboard_app(root, settings, registry_url=registry,
                        api_keys=None if serve is None else serve.api_keys,
                        admin_api_keys=None if serve is None else serve.admin_api_keys,
                        registry_keys=serve is None or serve.registry_keys,
                        open_view=serve is not None and "ui" in serve.open_routes)
    console.print(f"dashboard at [bold]http://{host}:{port}/ui/[/] (registry "
                  f"{'given' if registry else 'from settings'}, log directory {root}); "
                  "Ctrl+C stops it", highlight=False)
    serve_dashboard(app, host=host, port=port)
