"""``shipyard import mlflow``: an MLflow model (a directory or ``runs:/RUN_ID/PATH``) as a
shipyard package, written to a directory and/or registered (``importers/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.output import console
from shipyard.errors import PackageError, UntrustedCodeError

app = typer.Typer(no_args_is_help=True, help="Turn models made by other tools into packages.")


@app.command("mlflow")
def mlflow_cmd(
    source: Annotated[str, typer.Argument(help="an MLflow model directory (holding MLmodel) "
                                               "or runs:/RUN_ID/PATH (local mlruns/ store: "
                                               "$MLFLOW_TRACKING_URI or ./mlruns)")],
    name: Annotated[str | None, typer.Option(help="model name (default: the run's name or "
                                                  "the directory's)")] = None,
    trust: Annotated[bool, typer.Option(
        "--trust", help="allow loading the model's pickles and code (sklearn, sklearn-API "
                        "LightGBM, pytorch and pyfunc flavours): they run their author's code")]
    = False,
    out: Annotated[Path | None, typer.Option("--out", help="package directory to write")]
    = None,
    register: Annotated[bool, typer.Option("--register", help="register the package as the "
                                                              "model's next version")] = False,
    alias: Annotated[str | None, typer.Option(help="with --register: point this alias at "
                                                   "the new version")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto (ONNX when parity holds), onnx or "
                                                      "native")] = "auto",
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="held-out rows (.csv, .parquet, .npy) to check the ONNX conversion "
                            "on and to profile as the monitoring reference", exists=True,
        dir_okay=False)] = None,
    target: Annotated[str | None, typer.Option(help="with --reference: its target column")]
    = None,
    force: Annotated[bool, typer.Option("--force", help="replace OUT if it exists")] = False,
) -> None:
    """Import an MLflow model: signature and input example from MLmodel, ONNX where a
    converter passes parity (native runtime otherwise), metrics and params from its run."""
    from shipyard.cli.packaging import read_sample, show_conversion
    from shipyard.importers import import_mlflow, locate, trust_decision
    from shipyard.runtimes.packager import Format

    if out is None and not register:
        raise PackageError("say where the package goes: --out DIR, --register, or both")
    if fmt not in ("auto", "onnx", "native"):
        raise PackageError(f"--format must be auto, onnx or native, got {fmt!r}")
    if alias is not None and not register:
        raise PackageError("--alias needs --register")
    fmt_: Format = fmt  # type: ignore[assignment]
    held_out = None
    if reference is not None:
        rows, truth = read_sample(reference, target)
        held_out = rows if truth is None else (rows, truth)
    elif target is not None:
        raise PackageError("--target names a column of --reference")
    try:
        with console.status(f"importing {source}…"):
            result = import_mlflow(source, name=name, trust=trust, format=fmt_,
                                   reference=held_out)
    except UntrustedCodeError:
        if register:  # the refusal is a trust decision too: audit it where registering
            from shipyard.importers.mlflow_import import default_name
            from shipyard.registry import Registry

            model, run = locate(source)
            with Registry() as reg:
                reg.record_trust_refusal(name or default_name(model, run),
                                         {"source": source, "flavour": model.flavour,
                                          **trust_decision(model, trust=False)})
        raise
    manifest = result.package.manifest
    need = result.trust
    console.print(f"[green]✓[/] imported MLflow {result.flavour} model [bold]{manifest.name}"
                  f"[/] → runtime [cyan]{manifest.runtime.name}[/]")
    show_conversion(console, manifest)
    console.print(f"trust: {'given (' if need.needed else 'not needed ('}{need.reason})")
    if result.run is not None:
        console.print(f"run {result.run.run_id}: {len(result.run.metrics)} metrics, "
                      f"{len(result.run.params)} params")
    if out is not None:
        result.package.save(out, overwrite=force)
        console.print(f"package → {out}")
    if register:
        from shipyard.registry import Registry

        with Registry() as reg:
            version = reg.register(result.package, alias=alias)
        console.print(f"registered [bold]{version.name}/{version.version}[/]"
                      f"{f' @{alias}' if alias else ''}")
