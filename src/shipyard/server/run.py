"""Start uvicorn: one process, or ``--workers N`` processes that each load every model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from shipyard.service.config import ServeConfig

CONFIG_ENV = "SHIPYARD_SERVE_CONFIG_JSON"
METRICS_ENV = "SHIPYARD_WORKER_METRICS_DIR"  # --workers N: where workers share metrics


def app_from_env() -> Any:
    """Factory for worker processes: the config travels as JSON in the environment."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from shipyard.server.app import create_app
    from shipyard.service.dataplane import DataPlane

    config = ServeConfig.from_dict(json.loads(os.environ[CONFIG_ENV]))
    shared = os.environ.get(METRICS_ENV)
    hot = create_app(DataPlane(config), metrics_dir=Path(shared) if shared else None)
    # uvicorn's X-Forwarded-For/-Proto handling (its proxy_headers, turned off in serve())
    # for the Starlette routes only, with uvicorn's trusted hosts: the hot routes read
    # neither the client address nor the scheme, and the middleware was ~3% of the GIL time
    hot.app = ProxyHeadersMiddleware(
        hot.app, trusted_hosts=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"))
    return hot


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, log_level: str = "info") -> None:
    import uvicorn

    os.environ[CONFIG_ENV] = json.dumps(config.to_dict())
    # several workers: each writes its metrics there and /metrics merges them (SharedMetrics)
    shared = tempfile.mkdtemp(prefix="shipyard-metrics-") if workers > 1 else None
    if shared is not None:
        os.environ[METRICS_ENV] = shared
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the handler it
    # found installed: with the default one the process dies "killed by SIGTERM" (exit -15)
    # although every request finished and the log was flushed. Exit 0 instead.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_zero) if main else None
    try:
        uvicorn.run("shipyard.server.run:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level, access_log=False, proxy_headers=False,
                    timeout_graceful_shutdown=30, lifespan="on")
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
        if shared is not None:
            os.environ.pop(METRICS_ENV, None)
            shutil.rmtree(shared, ignore_errors=True)


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
