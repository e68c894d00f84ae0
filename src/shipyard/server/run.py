"""Start uvicorn: one process, or ``--workers N`` processes that each load every model.

The serve config holds secrets (``api_keys``, webhook headers), so it never travels in the
environment, which every inference process and ``on_alert`` command would inherit. One
process builds its app from the config object itself; ``--workers N`` workers read it from a
file only its owner may read (0600, in a private 0700 directory the server removes when it
stops) whose path is in ``SHIPYARD_SERVE_CONFIG_FILE``, and drop that variable on reading it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.server.connections import DeadlineHttpProtocol
from shipyard.service.config import ServeConfig

CONFIG_FILE_ENV = "SHIPYARD_SERVE_CONFIG_FILE"  # --workers N: where the workers read it
METRICS_ENV = "SHIPYARD_WORKER_METRICS_DIR"  # --workers N: where workers share metrics


def build_app(config: ServeConfig, metrics_dir: Path | None = None) -> Any:
    """The served ASGI app for ``config`` (uvicorn calls this factory in each process)."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from shipyard.server.app import create_app
    from shipyard.server.forwarded import ForwardedClient
    from shipyard.service.dataplane import DataPlane

    hot = create_app(DataPlane(config), metrics_dir=metrics_dir)
    # uvicorn's X-Forwarded-For/-Proto handling (its proxy_headers, turned off in serve())
    # for the Starlette routes only, with uvicorn's trusted hosts: the hot routes read
    # neither the client address nor the scheme, and the middleware was ~3% of the GIL time
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    hot.app = ProxyHeadersMiddleware(hot.app, trusted_hosts=trusted)
    hot.forwarded = ForwardedClient(trusted)  # only for policies keyed by ``client``
    return hot


def app_from_env() -> Any:
    """Factory for ``--workers N`` worker processes: the config from the private file the
    environment names. The variables are dropped once read: nothing a worker starts
    (inference processes, ``on_alert`` commands) needs them."""
    path = os.environ.pop(CONFIG_FILE_ENV)
    config = ServeConfig.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    shared = os.environ.pop(METRICS_ENV, None)
    return build_app(config, Path(shared) if shared else None)


def write_private_config(config: ServeConfig, folder: Path) -> Path:
    """``config`` as JSON in ``folder``, readable and writable by its owner only."""
    path = folder / "serve-config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(config.to_dict(), out)
    return path


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, log_level: str = "info", ssl_certfile: Path | None = None,
          ssl_keyfile: Path | None = None) -> None:
    """Serve ``config`` with uvicorn; HTTPS with ``ssl_certfile`` and ``ssl_keyfile``."""
    import uvicorn

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise ShipyardError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    for given in (ssl_certfile, ssl_keyfile):
        if given is not None and not given.is_file():
            raise ShipyardError(f"no such file: {given}")

    private: Path | None = None
    app: Any = functools.partial(build_app, config)  # one process: no copy of the config
    if workers > 1:
        # several workers: each reads the config from this folder and writes its metrics
        # there, and /metrics merges them (SharedMetrics)
        private = Path(tempfile.mkdtemp(prefix="shipyard-serve-"))  # mode 0700
        os.environ[CONFIG_FILE_ENV] = str(write_private_config(config, private))
        (private / "metrics").mkdir()
        os.environ[METRICS_ENV] = str(private / "metrics")
        app = "shipyard.server.run:app_from_env"
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the handler it
    # found installed: with the default one the process dies "killed by SIGTERM" (exit -15)
    # although every request finished and the log was flushed. Exit 0 instead.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_zero) if main else None
    try:
        uvicorn.run(app, factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=False, proxy_headers=False,
                    timeout_graceful_shutdown=30, lifespan="on", ws="none",
                    http=DeadlineHttpProtocol,
                    ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
                    ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
                    # typed int, used as a float (loop.call_later): 0.5 s works
                    timeout_keep_alive=config.idle_timeout_s)  # type: ignore[arg-type]
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
        if private is not None:
            os.environ.pop(CONFIG_FILE_ENV, None)
            os.environ.pop(METRICS_ENV, None)
            shutil.rmtree(private, ignore_errors=True)


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
