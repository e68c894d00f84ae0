"""The ``shipyard`` typer app: every command. Each command parses arguments and delegates; no
logic lives here. The entry point (``run``) is ``cli/main.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shipyard._version import __version__
from shipyard.cli.admin import audit, db_app, gc
from shipyard.cli.dashboard import ui
from shipyard.cli.evaluate import evaluate
from shipyard.cli.export import app as export_app
from shipyard.cli.importing import app as import_app
from shipyard.cli.keys import app as keys_app
from shipyard.cli.loadtest import loadtest
from shipyard.cli.models import app as models_app
from shipyard.cli.monitoring import app as monitor_app
from shipyard.cli.optimize import optimize
from shipyard.cli.predict import predict
from shipyard.cli.report import report
from shipyard.cli.rollouts import app as rollout_app
from shipyard.cli.rollouts import deploy, rollback
from shipyard.cli.serving import logs, serve
from shipyard.cli.signing import keygen, sign, verify

app = typer.Typer(
    name="shipyard", no_args_is_help=True, add_completion=False,
    help="Package, register, serve, roll out and monitor ML models.")
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(monitor_app, name="monitor")
app.add_typer(rollout_app, name="rollout")
app.add_typer(export_app, name="export")
app.add_typer(keys_app, name="keys")
app.add_typer(import_app, name="import")
app.command("deploy")(deploy)
app.command("rollback")(rollback)
app.command("audit")(audit)
app.command("gc")(gc)
app.command("serve")(serve)
app.command("logs")(logs)
app.command("predict")(predict)
app.command("report")(report)
app.command("evaluate")(evaluate)
app.command("loadtest")(loadtest)
app.command("ui")(ui)
app.command("keygen")(keygen)
app.command("sign")(sign)
app.command("verify")(verify)
app.command("optimize")(optimize)
console = Console()


@app.command()
def version() -> None:
    """Print the shipyard version."""
    console.print(f"shipyard {__version__}")


@app.command("package")
def package_cmd(
    model_file: Annotated[Path, typer.Argument(help=".onnx file, or a joblib/pickle file "
                                               "(needs --trust)", exists=True, dir_okay=False)],
    sample: Annotated[Path, typer.Option("--sample", help="training rows: .csv, .parquet, .npy",
                                         exists=True, dir_okay=False)],
    name: Annotated[str, typer.Option("--name", help="model name")],
    output: Annotated[Path, typer.Option("-o", "--output", help="package directory to write")],
    target: Annotated[str | None, typer.Option(help="target column to drop from the sample")]
    = None,
    trust: Annotated[bool, typer.Option("--trust", help="allow unpickling MODEL_FILE")] = False,
    fmt: Annotated[str, typer.Option("--format", help="auto, onnx or native")] = "auto",
    description: Annotated[str | None, typer.Option(help="free text")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace OUTPUT if it exists")] = False,
) -> None:
    """Package a model file with its signature, metadata and hashes."""
    from shipyard.cli.packaging import package_file

    package_file(console, model_file, sample, name=name, output=output, target=target,
                 trust=trust, fmt=fmt, description=description, force=force)


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="package directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """Show a package's manifest, signature and files, verifying every hash."""
    from shipyard.cli.packaging import inspect_package

    if as_json:
        from shipyard.packaging import Manifest, verify_files

        manifest = Manifest.read(path)
        verify_files(path, manifest.files)
        typer.echo(json.dumps(manifest.to_dict(), indent=2, default=str))
        return
    inspect_package(console, path)


@app.command()
def quickstart(
    directory: Annotated[Path | None, typer.Option("--dir", help="where to write the package "
                                                   "(default: $SHIPYARD_HOME/quickstart)")]
    = None,
    serve: Annotated[bool | None, typer.Option(
        "--serve/--no-serve", help="serve the model and send it traffic (default); --serve "
        "also keeps serving afterwards, the dashboard at /ui, until Ctrl-C")] = None,
    keep_serving: Annotated[bool | None, typer.Option(
        help="keep serving after the demo traffic (default: with --serve, or when run in a "
             "terminal)")] = None,
) -> None:
    """Train a small model on bundled data, package it, load it back and predict; then
    serve it, roll out new versions and monitor it, and print the dashboard's URL."""
    from shipyard.cli.quickstart import run_quickstart
    from shipyard.settings import Settings

    settings = Settings.from_env()
    if keep_serving is None and serve:  # an explicit --serve keeps the server up
        keep_serving = True
    run_quickstart(console, directory or settings.home / "quickstart", settings,
                   serve=serve is not False, keep_serving=keep_serving)

