"""``shipyard serve --engine ray``: the served ASGI app as a Ray Serve deployment.

Every replica runs shipyard's own app (``run.build_app`` over a ``DataPlane``), built inside
the replica (``__serve_build_asgi_app__``) from the serve config, so the routes, validation,
batching, routing policies, prediction log, metrics and hot swap are the local server's. Ray
Serve runs the app's lifespan in each replica: the ``DataPlane`` loads its models when the
replica starts and flushes its log when the replica stops.

One deployment serves every endpoint of the config (the application ``shipyard``, route prefix
``/``): an endpoint's routes live under two prefixes (``/v1/endpoints/NAME``,
``/v2/models/NAME``) and ``/metrics``, ``/v2/health/ready`` and ``/v1/endpoints`` answer for
every endpoint, while Ray Serve's proxy routes an application by one prefix; a deployment per
endpoint would need a routing deployment in front, a second actor hop on every request. A
config with one endpoint is a deployment named after that endpoint.

``/metrics`` answers for every replica of the deployment on the node that answers
(``SharedMetrics``: each replica publishes a snapshot to a directory private to the server).
HTTP reaches the replicas through Ray Serve's proxy, or (``direct``) each replica listens on
the port itself (``replica_http``), Ray's proxy off: Ray's per-request path was most of the
cost of a request.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.service.config import ServeConfig

APP_NAME = "shipyard"
# requests one replica takes at once: shipyard batches them (Ray Serve's default, 5, would
# cap a batch at 5 rows); the endpoint's own max_queue still bounds what waits
MAX_ONGOING = 256


@dataclass(frozen=True)
class Scaling:
    """A fixed number of replicas, or Ray Serve autoscaling between ``min`` and ``max`` aiming
    at ``target`` ongoing requests per replica."""

    replicas: int = 1
    autoscale: tuple[int, int, float] | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ShipyardError("--replicas must be at least 1")
        if self.autoscale is not None:
            low, high, target = self.autoscale
            if not 0 <= low <= high or high < 1 or not target > 0:
                raise ShipyardError("--autoscale MIN,MAX,TARGET needs 0 <= MIN <= MAX, MAX >= "
                                    "1 and TARGET (ongoing requests per replica) > 0")

    def options(self) -> dict[str, Any]:
        """Ray Serve deployment options."""
        if self.autoscale is None:
            return {"num_replicas": self.replicas}
        low, high, target = self.autoscale
        return {"autoscaling_config": {"min_replicas": low, "max_replicas": high,
                                       "initial_replicas": max(low, 1),
                                       "target_ongoing_requests": target}}

    @classmethod
    def parse(cls, replicas: int | None, autoscale: str | None) -> Scaling:
        """From ``--replicas N`` or ``--autoscale MIN,MAX,TARGET`` (not both)."""
        if autoscale is None:
            return cls(1 if replicas is None else replicas)
        if replicas is not None:
            raise ShipyardError("pass --replicas N or --autoscale MIN,MAX,TARGET, not both")
        parts = autoscale.split(",")
        try:
            low, high, target = int(parts[0]), int(parts[1]), float(parts[2])
        except (ValueError, IndexError):
            raise ShipyardError(f"--autoscale takes MIN,MAX,TARGET (e.g. 1,4,32), not "
                                f"{autoscale!r}") from None
        if len(parts) != 3:
            raise ShipyardError(f"--autoscale takes three numbers MIN,MAX,TARGET, not "
                                f"{autoscale!r}")
        return cls(autoscale=(low, high, target))


class ShipyardReplica:
    """One Ray Serve replica: shipyard's ASGI app with every endpoint of the config."""

    def __init__(self, config: dict[str, Any], metrics_dir: str | None = None,
                 http: tuple[str, int] | None = None) -> None:
        self._config = config
        self._metrics_dir = metrics_dir
        self._http = http  # direct: this replica serves HTTP itself on this host and port

    def __serve_build_asgi_app__(self) -> Any:
        from shipyard.server.run import build_app

        config = ServeConfig.from_dict(self._config)
        self._config = {}  # the secrets live on in the data plane only
        shared = None
        if self._metrics_dir is not None:  # made on a node other than the server's
            shared = Path(self._metrics_dir)
            shared.mkdir(mode=0o700, parents=True, exist_ok=True)
        app = build_app(config, shared)
        if self._http is None:
            return app
        from shipyard.server.replica_http import OwnHttp

        return OwnHttp(app, *self._http, idle_timeout_s=config.idle_timeout_s)


def deployment_name(config: ServeConfig) -> str:
    """The endpoint's name when there is one, else ``shipyard``."""
    return config.endpoints[0].name if len(config.endpoints) == 1 else APP_NAME


def application(config: ServeConfig, scaling: Scaling, *, metrics_dir: Path | None = None,
                num_cpus: float = 1.0, http: tuple[str, int] | None = None) -> Any:
    """The Ray Serve application serving ``config`` (``serve.run`` it); with ``http``, each
    replica also serves HTTP itself on that host and port (``replica_http``). The config, API
    keys included, travels to the replicas as the deployment's arguments."""
    if http is not None and scaling.autoscale is not None:
        raise ShipyardError("--ray-http direct takes --replicas N, not --autoscale: Ray Serve "
                            "sees no requests to scale on when the replicas serve HTTP")
    from ray import serve

    ingress = serve.ingress()(ShipyardReplica)
    deployment = serve.deployment(
        name=deployment_name(config), max_ongoing_requests=MAX_ONGOING,
        ray_actor_options={"num_cpus": num_cpus},
        # no access log line per request, as with the local server (uvicorn access_log off)
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
        # a stopping replica finishes its requests and flushes its prediction log
        graceful_shutdown_timeout_s=60.0, **scaling.options())(ingress)
    return deployment.bind(config.to_dict(), None if metrics_dir is None else str(metrics_dir),
                           http)


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000,
          scaling: Scaling | None = None, ray_address: str | None = None,
          num_cpus: float = 1.0, direct: bool = False,
          stop: threading.Event | None = None) -> None:
    """Serve ``config`` on Ray Serve until SIGTERM / SIGINT (or ``stop`` is set): on the
    cluster at ``ray_address``, else on a local Ray started for it (and stopped after).
    HTTP goes through Ray Serve's proxy, or with ``direct`` straight to the replicas, each
    listening on ``host:port`` itself (Ray's proxy off)."""
    import ray
    from ray import serve as ray_serve

    stop = stop or threading.Event()
    ray.init(address=ray_address, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, configure_logging=True)
    # after ray.init, which installs its own SIGTERM handler in the driver
    main = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.signal(sig, lambda s, f: _set(stop, s, f))
                for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    private = Path(tempfile.mkdtemp(prefix="shipyard-ray-"))  # mode 0700: metrics snapshots
    try:
        if direct:
            ray_serve.start(proxy_location="Disabled")
        else:
            ray_serve.start(http_options={"host": host, "port": port,
                                          "keep_alive_timeout_s": config.idle_timeout_s})
        ray_serve.run(application(config, scaling or Scaling(), metrics_dir=private / "metrics",
                                  num_cpus=num_cpus, http=(host, port) if direct else None),
                      name=APP_NAME, route_prefix="/")
        stop.wait()
    finally:
        try:
            if ray_address is None:
                ray_serve.shutdown()  # type: ignore[no-untyped-call]  # our own Ray: Serve and all
            else:
                ray_serve.delete(APP_NAME)  # someone's cluster: only our application
        finally:
            ray.shutdown()
            for sig, previous in handlers.items():
                signal.signal(sig, previous)
            shutil.rmtree(private, ignore_errors=True)


def _set(stop: threading.Event, signum: int, frame: FrameType | None) -> None:
    stop.set()


def ray_missing() -> str | None:
    """Why ``--engine ray`` cannot run here, or None."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        return f"--engine ray needs Ray Serve: pip install 'shipyard-ml[ray]' ({exc})"
    if os.name != "posix":
        return "--engine ray runs on Linux and macOS"
    # the app is built in each replica (``serve.ingress()`` with no app, late-bound)
    if inspect.signature(serve.ingress).parameters["app"].default is not None:
        return (f"--engine ray needs a newer Ray Serve than {ray.__version__} (one whose "
                "serve.ingress() builds the app in the replica): pip install -U "
                "'shipyard-ml[ray]'")
    return None
