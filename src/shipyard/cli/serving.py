"""``shipyard serve`` and ``shipyard logs``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.output import console, parse_time, print_json, table
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.server.ray_serve import Scaling


def serve(
    models: Annotated[list[str] | None, typer.Argument(
        help="models:/NAME@ALIAS, models:/NAME/V or package directories; one endpoint each, "
             "named after the model")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="serve.yaml with endpoints "
                                                "and options")] = None,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="processes; each loads every model")] = 1,
    log_dir: Annotated[str | None, typer.Option(help="prediction log directory or URL, e.g. "
                                                "s3://bucket/logs (default "
                                                "$SHIPYARD_HOME/logs)")] = None,
    trust: Annotated[bool, typer.Option(
        "--trust", help="trust every endpoint's package: let it unpickle its model or import "
                        "the classes it names (runs their code); per endpoint: trust: true "
                        "in serve.yaml")] = False,
    engine: Annotated[str, typer.Option(
        help="local: uvicorn here; ray: a Ray Serve deployment (see docs/ray.md)")] = "local",
    replicas: Annotated[int | None, typer.Option(
        help="--engine ray: replicas of the deployment (default 1)")] = None,
    autoscale: Annotated[str | None, typer.Option(
        help="--engine ray: MIN,MAX,TARGET replicas autoscaled on TARGET ongoing requests "
             "per replica")] = None,
    ray_address: Annotated[str | None, typer.Option(
        help="--engine ray: the Ray cluster (default: a local Ray started for the server)")]
    = None,
    ray_http: Annotated[str, typer.Option(
        help="--engine ray: direct (each replica serves HTTP on --port itself: fast, fixed "
             "--replicas), proxy (Ray Serve's HTTP proxy: what --autoscale needs) or auto "
             "(direct, or proxy with --autoscale)")] = "auto",
    api_keys_dir: Annotated[Path | None, typer.Option(
        "--api-keys-dir", help="a directory of API key files (file name: the key's name, "
                               "content: the secret), e.g. a mounted Kubernetes Secret; "
                               "added to serve.yaml's api_keys")] = None,
    trusted_keys: Annotated[Path | None, typer.Option(
        "--trusted-keys", help="a folder of trusted public keys (*.pub): a package signed by "
                               "one loads with trust (serve.yaml: trusted_keys)")] = None,
    require_signed: Annotated[bool, typer.Option(
        "--require-signed", help="load only packages signed by a trusted key (serve.yaml: "
                                 "require_signed)")] = False,
    ssl_certfile: Annotated[Path | None, typer.Option(
        "--ssl-certfile", help="serve HTTPS with this certificate (PEM)")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(
        "--ssl-keyfile", help="... and this private key (PEM)")] = None,
) -> None:
    """Serve models over HTTP: simple JSON and the Open Inference Protocol."""
    from shipyard.server.run import serve as run_server
    from shipyard.service.config import ServeConfig

    cfg = ServeConfig.from_file(config) if config else None
    if cfg is None:
        if not models:
            raise ShipyardError("name at least one model (e.g. models:/iris@production) or "
                                "pass --config serve.yaml")
        from shipyard.service.config import EndpointConfig, default_endpoint_name

        cfg = ServeConfig(endpoints=tuple(
            EndpointConfig(name=default_endpoint_name(m), model=m) for m in models))
    elif models:
        cfg = cfg.with_models(models)
    if log_dir is not None:
        from dataclasses import replace

        cfg = replace(cfg, log_dir=log_dir)
    if api_keys_dir is not None:
        from dataclasses import replace

        from shipyard.service.key_files import read_key_files

        cfg = replace(cfg, api_keys={**cfg.api_keys, **read_key_files(api_keys_dir)})
    if trusted_keys is not None or require_signed:
        from dataclasses import replace

        cfg = replace(cfg, trusted_keys=str(trusted_keys) if trusted_keys else cfg.trusted_keys,
                      require_signed=True if require_signed else cfg.require_signed)
    if trust:
        cfg = cfg.trusting_all()
        console.print("[yellow]--trust:[/] every endpoint's package may run its own code "
                      "(unpickle its model, import the classes it names)")
    if workers < 1:
        raise ShipyardError("--workers must be at least 1")
    scaling = _scaling(engine, workers, replicas, autoscale, ray_address, ray_http)
    if ray_http == "auto":
        ray_http = "proxy" if autoscale is not None else "direct"
    from shipyard.service.loading import unresolved_sources

    problems = unresolved_sources((e.name, e.model) for e in cfg.endpoints)
    if problems:  # a server that could never become ready: say so and stop
        raise ShipyardError("cannot serve:\n  " + "\n  ".join(problems))

    from shipyard.service.monitor_rules import check_serve_rules

    check_serve_rules(cfg)  # accuracy rules on a regressor fail here, before serving
    names = ", ".join(e.name for e in cfg.endpoints)
    if scaling is not None:
        if ssl_certfile is not None or ssl_keyfile is not None:
            raise ShipyardError("--ssl-certfile/--ssl-keyfile serve HTTPS with the local "
                                "engine; with Ray, terminate TLS at its proxy or ingress")
        from shipyard.server.ray_serve import serve as serve_on_ray

        how = (f"{scaling.replicas} replica{'s' if scaling.replicas > 1 else ''}"
               if scaling.autoscale is None else "autoscaled {}..{} replicas, target {:g}"
               .format(*scaling.autoscale))
        how += ", each serving HTTP itself" if ray_http == "direct" else ""
        console.print(f"serving {names} on Ray Serve at http://{host}:{port} ({how}); "
                      "docs at /docs")
        serve_on_ray(cfg, host=host, port=port, scaling=scaling, ray_address=ray_address,
                     direct=ray_http == "direct")
        return
    scheme = "https" if ssl_certfile is not None else "http"
    console.print(f"serving {names} on {scheme}://{host}:{port} "
                  f"({workers} worker{'s' if workers > 1 else ''}); docs at /docs")
    run_server(cfg, host=host, port=port, workers=workers, ssl_certfile=ssl_certfile,
               ssl_keyfile=ssl_keyfile)


def _scaling(engine: str, workers: int, replicas: int | None, autoscale: str | None,
             ray_address: str | None, ray_http: str) -> Scaling | None:
    """``--engine ray``'s replicas (None for the local engine); the options of the other
    engine are refused, not ignored."""
    if engine == "local":
        if replicas is not None or autoscale is not None or ray_address is not None \
                or ray_http != "auto":
            raise ShipyardError("--replicas, --autoscale, --ray-address and --ray-http need "
                                "--engine ray")
        return None
    if engine != "ray":
        raise ShipyardError(f"--engine is local or ray, not {engine!r}")
    if ray_http not in ("auto", "proxy", "direct"):
        raise ShipyardError(f"--ray-http is auto, proxy or direct, not {ray_http!r}")
    if ray_http == "direct" and autoscale is not None:
        raise ShipyardError("--ray-http direct takes --replicas N, not --autoscale: Ray Serve "
                            "sees no requests to scale on when the replicas serve HTTP")
    if workers != 1:
        raise ShipyardError("--workers is for --engine local; on Ray use --replicas N or "
                            "--autoscale MIN,MAX,TARGET")
    from shipyard.server.ray_serve import Scaling, ray_missing

    missing = ray_missing()
    if missing:
        raise ShipyardError(missing)
    return Scaling.parse(replicas, autoscale)


def logs(
    endpoint: Annotated[str, typer.Argument(help="endpoint name")],
    since: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    limit: Annotated[int, typer.Option(help="newest rows to show")] = 20,
    feedback: Annotated[bool, typer.Option("--feedback", help="show feedback labels")]
    = False,
    parquet: Annotated[Path | None, typer.Option(help="write the rows to this Parquet file")]
    = None,
    log_dir: Annotated[str | None, typer.Option(help="directory or URL (s3://bucket/logs); "
                                                "default $SHIPYARD_HOME/logs")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Read the prediction log of an endpoint back."""
    from shipyard.settings import Settings
    from shipyard.stores.predictions import read_log

    root = log_dir or Settings.from_env().home / "logs"
    rows = read_log(root, endpoint, kind="feedback" if feedback else "predictions",
                    since=parse_time(since), limit=None if parquet else limit)
    if parquet is not None:
        import pyarrow.parquet as pq

        pq.write_table(rows, parquet)
        console.print(f"[green]✓[/] wrote {rows.num_rows} rows to {parquet}")
        return
    records = rows.to_pylist()
    if as_json:
        print_json(records)
        return
    columns = rows.column_names
    table(f"{'feedback' if feedback else 'predictions'} of {endpoint} "
          f"(newest {len(records)})", columns, [[r[c] for c in columns] for r in records])
