"""``shipyard.optimize``: a registered ONNX version -> a new, optimised version of the model.

The registry gives the version's package (fetched into the cache, every file hash-checked),
``runtimes.optimizing`` builds and judges the optimised package, and only a package that
passed the gate (and the latency target, when one is set) is registered: the next version of
the same model, with the original as its parent (lineage) and tags saying what was done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipyard.registry import ModelVersion, Registry
from shipyard.runtimes.optimizing import OptimizeOptions, OptimizeReport, optimize_package
from shipyard.runtimes.optimizing.graph import Quantize


@dataclass(frozen=True)
class OptimizeResult:
    """The original version, the new one, and what was measured."""

    original: ModelVersion
    version: ModelVersion
    report: OptimizeReport

    def to_dict(self) -> dict[str, Any]:
        return {"original": self.original.uri, "version": self.version.uri,
                "parent": self.original.version, **self.report.to_dict()}


def optimize(model_uri: str, *, quantize: Quantize = "int8", static: bool = False,
             tolerance: float = 1.0, target_latency_ms: float | None = None,
             calibration: Any = None, latency_runs: int = 30,
             registry: Registry | str | None = None,
             progress: Callable[[str], None] | None = None) -> OptimizeResult:
    """Optimise the registered version ``model_uri`` (``models:/NAME/3``, ``NAME@alias``)
    and register the result as the model's next version, its parent the original.

    ``quantize="int8"`` quantises MatMul/Gemm/Conv weights (``static=True`` also calibrates
    the activations, on the package's reference rows or ``calibration``); ``"none"`` only
    optimises the graph. Refused (nothing registered) when the gate's metric on the
    package's reference rows drops by more than ``tolerance`` points (``AccuracyGateError``)
    or the median latency at batch 64 is above ``target_latency_ms``
    (``LatencyTargetError``). ``registry``: a Registry or a database URL (default: the
    environment's)."""
    options = OptimizeOptions(quantize=quantize, static=static, tolerance=tolerance,
                              target_latency_ms=target_latency_ms, calibration=calibration,
                              latency_runs=latency_runs)
    options.check()
    say = progress or (lambda _: None)
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    try:
        original = reg.get_version(model_uri)
        say(f"fetching {original.uri}")
        path = reg.fetch(f"{original.name}/{original.version}")
        built = optimize_package(path, options, settings=reg.settings, progress=say)
        say("registering the optimised version")
        mode = built.report.mode
        version = reg.register(
            built.package, name=original.name, parent=original.version,
            description=f"{original.uri} optimised: {_what(quantize, mode)}",
            tags={"optimized_from": str(original.version), "optimization": _what(quantize, mode)})
    finally:
        if reg is not registry:
            reg.close()
    return OptimizeResult(original, version, built.report)


def _what(quantize: str, mode: str) -> str:
    return "graph" if quantize == "none" else f"int8-{mode}"
