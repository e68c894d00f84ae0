"""``optimize_package``: an ONNX package -> a graph-optimised, int8 package that passed the gate.

Flow: verify the package (every file's hash) -> pick its ONNX runtime (native packages are
refused: nothing is unpickled) -> its reference rows (``rows.py``) -> optimise and quantise
the graph (``graph.py``; static quantisation calibrates on a quarter of the rows, the rest
judge) -> write the new package and load it through the ordinary load path -> the accuracy
gate on the reference rows (``gate.py``) -> size and median latency, both models on this
CPU (``measure.py``) -> the latency target, if any -> the final package, with what was done
and measured in its metadata (``rebuild.py``). A refusal raises before anything is returned.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import InputValidationError
from shipyard.packaging import Manifest, RuntimeSpec, prepare
from shipyard.runtimes.model import LoadedModel, VerifiedPackage, describe, load
from shipyard.runtimes.onnx import OnnxRuntime
from shipyard.runtimes.optimizing.errors import (
    AccuracyGateError,
    LatencyTargetError,
    OptimizationError,
)
from shipyard.runtimes.optimizing.gate import GateResult, compare
from shipyard.runtimes.optimizing.graph import Quantize, optimize_onnx
from shipyard.runtimes.optimizing.measure import median_latency_ms, model_bytes
from shipyard.runtimes.optimizing.rebuild import optimized_package
from shipyard.runtimes.optimizing.rows import ReferenceRows, reference_rows, split
from shipyard.runtimes.packager import Package
from shipyard.settings import Settings
from shipyard.types import Array

Progress = Callable[[str], None]
CALIBRATION_BATCH = 64


@dataclass(frozen=True)
class OptimizeOptions:
    """``quantize``: ``int8`` or ``none`` (graph optimisation only); ``static``: calibrate
    activations (else dynamic); ``tolerance``: points of the gate's metric the optimised
    model may lose; ``target_latency_ms``: refuse a model slower than this at ``batch``;
    ``calibration``: rows to calibrate static quantisation on instead of the package's
    (anything ``prepare`` reads); ``latency_runs``: timed calls per model."""

    quantize: Quantize = "int8"
    static: bool = False
    tolerance: float = 1.0
    target_latency_ms: float | None = None
    calibration: Any = None
    batch: int = 64
    latency_runs: int = 30

    def check(self) -> None:
        if self.quantize not in ("int8", "none"):
            raise OptimizationError(f"quantize must be 'int8' or 'none', got {self.quantize!r}")
        if self.static and self.quantize != "int8":
            raise OptimizationError("static quantisation needs quantize='int8'")
        if not self.tolerance >= 0:
            raise OptimizationError(f"the tolerance must be >= 0 points, got {self.tolerance}")
        if self.target_latency_ms is not None and not self.target_latency_ms > 0:
            raise OptimizationError(f"the target latency must be > 0 ms, got "
                                    f"{self.target_latency_ms}")
        if self.batch < 1 or self.latency_runs < 1:
            raise OptimizationError("batch and latency_runs must be at least 1")
        if self.calibration is not None and not self.static:
            raise OptimizationError("calibration rows are only used by static quantisation: "
                                    "pass static=True (--static) too")


@dataclass(frozen=True)
class OptimizeReport:
    """What was done and measured; ``to_dict()`` is ``metadata["optimization"]``."""

    quantize: str
    mode: str  # "dynamic", "static" or "graph"
    gate: GateResult
    size_before: int
    size_after: int
    latency_before_ms: float
    latency_after_ms: float
    batch: int
    runs: int
    target_latency_ms: float | None
    rows_source: str
    calibration_rows: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def size_ratio(self) -> float:
        return self.size_before / max(self.size_after, 1)

    @property
    def speedup(self) -> float:
        return self.latency_before_ms / max(self.latency_after_ms, 1e-9)

    @property
    def target_met(self) -> bool | None:
        if self.target_latency_ms is None:
            return None
        return self.latency_after_ms <= self.target_latency_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantize": self.quantize, "mode": self.mode,
            "graph_optimization": "ONNX Runtime basic, offline (extended at load)",
            "size_bytes": {"before": self.size_before, "after": self.size_after,
                           "ratio": round(self.size_ratio, 3)},
            "latency_ms": {"batch": self.batch, "runs": self.runs,
                           "before": round(self.latency_before_ms, 4),
                           "after": round(self.latency_after_ms, 4),
                           "speedup": round(self.speedup, 3),
                           "target": self.target_latency_ms, "target_met": self.target_met},
            "gate": self.gate.to_dict(), "rows": self.rows_source,
            "calibration_rows": self.calibration_rows, "notes": list(self.notes),
        }

    def metrics(self) -> dict[str, float]:
        """Flat numbers for the registry's metrics (searchable, comparable)."""
        return {f"optimize.{self.gate.metric}": round(self.gate.optimized, 4),
                f"optimize.{self.gate.metric}_original": round(self.gate.original, 4),
                "optimize.size_ratio": round(self.size_ratio, 3),
                "optimize.speedup": round(self.speedup, 3),
                "optimize.latency_ms": round(self.latency_after_ms, 4)}


@dataclass(frozen=True)
class OptimizedPackage:
    package: Package
    report: OptimizeReport


def optimize_package(path: str | Path, options: OptimizeOptions | None = None, *,
                     settings: Settings | None = None, progress: Progress | None = None,
                     ) -> OptimizedPackage:
    """Optimise the ONNX package at ``path`` (see the module doc). Raises
    ``AccuracyGateError`` / ``LatencyTargetError`` (refused, with the numbers) or
    ``OptimizationError`` (cannot be optimised)."""
    opts = options or OptimizeOptions()
    opts.check()
    say = progress or (lambda _: None)
    say("verifying the package's files")
    original = describe(path)
    spec = onnx_spec(original.manifest)
    _check_not_quantized(original.manifest, opts)
    rows = reference_rows(original)
    calibration, evaluation, overlap = _rows(opts, rows, original)
    notes = _notes(rows, overlap and opts.static and opts.calibration is None)
    say("loading the original model")
    before = load(original.path, runtime="onnx", settings=settings)
    try:
        mode = "graph" if opts.quantize == "none" else ("static" if opts.static else "dynamic")
        say(f"optimising the graph{'' if mode == 'graph' else f' and quantising to int8 ({mode})'}")
        feeds = _feeds(before, calibration) if opts.static else []
        model = optimize_onnx((original.path / spec.files[0]).read_bytes(),
                              quantize=opts.quantize, static=opts.static, calibration=feeds)
        gate, latency = _judge(original, spec, model, before, evaluation, opts, settings, say)
    finally:
        before.close()
    if gate.truth != "target":
        notes.append("no target fits the reference rows: the optimised model is compared with "
                     "the original's predictions, taken as labels")
    size_before = model_bytes(original.manifest, spec)
    if opts.quantize == "int8" and len(model) > 0.9 * size_before:
        notes.append("the int8 graph is barely smaller: the model has few MatMul/Gemm/Conv "
                     "weights to quantise")
    report = OptimizeReport(opts.quantize, mode, gate, size_before, len(model), latency[0],
                            latency[1], opts.batch, opts.latency_runs, opts.target_latency_ms,
                            evaluation.source, calibration.rows if opts.static else 0,
                            tuple(notes))
    if report.target_met is False:
        raise LatencyTargetError(report.latency_after_ms, float(opts.target_latency_ms or 0),
                                 opts.batch)
    package = optimized_package(original, spec, model, report.to_dict(), report.metrics())
    return OptimizedPackage(package, report)


def _judge(original: VerifiedPackage, spec: RuntimeSpec, model: bytes, before: LoadedModel,
           evaluation: ReferenceRows, opts: OptimizeOptions, settings: Settings | None,
           say: Progress) -> tuple[GateResult, list[float]]:
    """The gate, then both models' median latency: the new graph written as a package and
    loaded the ordinary way (hash-checked), as it will be served."""
    with tempfile.TemporaryDirectory(prefix="shipyard-optimized-") as tmp:
        draft = optimized_package(original, spec, model, {}, {}).save(Path(tmp) / "pkg")
        after = _load_optimized(draft, settings)
        try:
            say(f"checking accuracy on {evaluation.rows} reference rows")
            gate = compare(original.signature,
                           before.predict_columns(evaluation.columns).outputs,
                           after.predict_columns(evaluation.columns).outputs,
                           evaluation.target, opts.tolerance)
            if not gate.passed:
                raise AccuracyGateError(gate)
            say(f"timing both models at batch {opts.batch} ({opts.latency_runs} runs each)")
            return gate, median_latency_ms([before, after], evaluation.columns,
                                           batch=opts.batch, runs=opts.latency_runs)
        finally:
            after.close()


def onnx_spec(manifest: Manifest) -> RuntimeSpec:
    """The package's ONNX runtime entry; OptimizationError for a native-only package."""
    for spec in manifest.runtimes:
        if spec.name == "onnx":
            if len(spec.files) > 1:
                raise OptimizationError("ONNX graphs with external data files (over 2 GB) "
                                        "cannot be optimised yet")
            return spec
    framework = manifest.metadata.get("framework", "?")
    raise OptimizationError(
        f"only ONNX packages can be optimised: {manifest.name!r} runs on the native "
        f"{manifest.runtime.name!r} runtime ({framework} model; its files are not loaded, "
        "nothing is unpickled); package the model with format='onnx' if it converts")


def _check_not_quantized(manifest: Manifest, opts: OptimizeOptions) -> None:
    done = manifest.metadata.get("optimization")
    if opts.quantize == "int8" and isinstance(done, dict) and done.get("quantize") == "int8":
        raise OptimizationError(f"{manifest.name!r} is already int8-quantised "
                                f"({done.get('mode')}); optimise the float version it came "
                                "from instead")


def _rows(opts: OptimizeOptions, rows: ReferenceRows, original: VerifiedPackage,
          ) -> tuple[ReferenceRows, ReferenceRows, bool]:
    if opts.calibration is None:
        return split(rows) if opts.static else (rows, rows, False)
    try:
        given = prepare(opts.calibration, original.signature)
    except InputValidationError as exc:
        raise OptimizationError(f"the calibration rows do not fit the signature: {exc}"
                                ) from exc
    return ReferenceRows(given, None, "given"), rows, False


def _feeds(model: LoadedModel, rows: ReferenceRows) -> list[dict[str, Array]]:
    runtime = model.runtime
    if not isinstance(runtime, OnnxRuntime):  # load(runtime="onnx") gives one
        raise OptimizationError(f"expected the onnx runtime, got {runtime.name!r}")
    starts = range(0, rows.rows, CALIBRATION_BATCH)
    return [runtime.feeds({k: v[i:i + CALIBRATION_BATCH] for k, v in rows.columns.items()})
            for i in starts]


def _load_optimized(path: Path, settings: Settings | None) -> LoadedModel:
    try:
        return load(path, settings=settings)
    except Exception as exc:  # onnxruntime raises its own types for a graph it rejects
        raise OptimizationError(f"the optimised graph does not load: {type(exc).__name__}: "
                                f"{exc}") from exc


def _notes(rows: ReferenceRows, overlap: bool) -> list[str]:
    notes = []
    if rows.source != "holdout":
        notes.append("the package holds no held-out rows: judged on its training sample")
    if overlap:
        notes.append(f"only {rows.rows} reference rows: calibrated and judged on the same rows")
    return notes
