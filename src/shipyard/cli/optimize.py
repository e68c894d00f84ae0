"""``shipyard optimize MODEL_URI``: graph optimisation and int8 quantisation of a registered
ONNX version, registered as its next version behind an accuracy gate
(``service/optimizing.py``). A refusal exits 1 with the numbers, registering nothing."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.output import console, print_json, table

if TYPE_CHECKING:
    from shipyard.service.optimizing import OptimizeResult


class QuantizeChoice(StrEnum):
    int8 = "int8"
    none = "none"


def optimize(
    model_uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION or NAME@ALIAS")],
    quantize: Annotated[QuantizeChoice, typer.Option(
        "--quantize", help="int8: quantise weights (and activations with --static); none: "
                           "graph optimisation only")] = QuantizeChoice.int8,
    static: Annotated[bool, typer.Option(
        "--static", help="static int8: calibrate activations on the package's reference "
                         "rows (default: dynamic)")] = False,
    target_latency: Annotated[float | None, typer.Option(
        "--target-latency", metavar="MS", help="refuse the new version when its median "
                                               "latency at batch 64 is above MS")] = None,
    tolerance: Annotated[float, typer.Option(
        help="points of accuracy (classifiers) or of RMSE as a % of the target's spread "
             "(others) the new version may lose")] = 1.0,
    calibration: Annotated[Path | None, typer.Option(
        "--calibration", exists=True, dir_okay=False,
        help="rows to calibrate --static on instead (.csv, .parquet, .npy, .npz)")] = None,
    runs: Annotated[int, typer.Option(help="timed calls per model")] = 30,
    registry: Annotated[str | None, typer.Option(
        "--registry", help="registry database URL (default: $SHIPYARD_REGISTRY_URL)",
        envvar="SHIPYARD_REGISTRY_URL", show_envvar=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Optimise a registered ONNX model (graph optimisation, int8 quantisation) and register
    it as a new version whose parent is the original, if it keeps its accuracy."""
    from shipyard.service.optimizing import optimize as run_optimize

    rows = None if calibration is None else _read_rows(calibration)
    options: dict[str, Any] = {
        "quantize": quantize.value, "static": static, "tolerance": tolerance,
        "target_latency_ms": target_latency, "calibration": rows, "latency_runs": runs,
        "registry": registry}
    if as_json:  # stdout holds the JSON alone
        print_json(run_optimize(model_uri, **options).to_dict())
        return
    with console.status("optimising", spinner="dots") as status:
        def progress(step: str) -> None:
            console.print(f"[dim]-[/] {step}")  # a line per step stays; the spinner shows
            status.update(step)                 # the one running

        result = run_optimize(model_uri, progress=progress, **options)
    _show(result)


def _read_rows(path: Path) -> Any:
    if path.suffix.lower() == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as data:
            return {key: np.asarray(data[key]) for key in data.files}
    from shipyard.cli.packaging import read_sample

    return read_sample(path, None)[0]


def _show(result: OptimizeResult) -> None:
    r = result.report
    gate = r.gate
    accuracy = gate.metric == "accuracy"
    change = -gate.loss if accuracy else gate.loss
    table(f"{result.original.uri} -> {result.version.uri} ({r.mode})",
          ["", "original", "optimised", "change"], [
              ["model bytes", f"{r.size_before:,}", f"{r.size_after:,}",
               f"{r.size_ratio:.2f}x smaller"],
              [f"ms, batch {r.batch}", f"{r.latency_before_ms:.3f}", f"{r.latency_after_ms:.3f}",
               f"{r.speedup:.2f}x faster"],
              ["accuracy %" if accuracy else "RMSE % of std", f"{gate.original:.2f}",
               f"{gate.optimized:.2f}", f"{change:+.2f} (limit {'-' if accuracy else '+'}"
                                        f"{gate.tolerance:g})"]])
    console.print(f"{gate.metric} on {gate.rows} {r.rows_source} rows vs the {gate.truth}; "
                  f"latency: median of {r.runs} calls each")
    if r.target_met is not None:
        console.print(f"target latency {r.target_latency_ms:g} ms: met "
                      f"({r.latency_after_ms:.3f} ms)")
    for note in r.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"[green]✓[/] registered [bold]{result.version.uri}[/] "
                  f"(parent {result.original.uri})")
