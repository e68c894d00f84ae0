"""Optimising an ONNX package: graph optimisation, int8 quantisation, an accuracy gate.

``optimize_package(path, OptimizeOptions(...))`` returns the new, unsaved ``Package`` and an
``OptimizeReport``, or raises ``AccuracyGateError`` / ``LatencyTargetError`` (refused, with
the numbers) or ``OptimizationError``. Registering it as a new version is the service's job
(``service/optimizing.py``).
"""

from shipyard.runtimes.optimizing.errors import (
    AccuracyGateError,
    LatencyTargetError,
    OptimizationError,
)
from shipyard.runtimes.optimizing.gate import GateResult
from shipyard.runtimes.optimizing.pipeline import (
    OptimizedPackage,
    OptimizeOptions,
    OptimizeReport,
    optimize_package,
)

__all__ = [
    "AccuracyGateError", "GateResult", "LatencyTargetError", "OptimizationError",
    "OptimizeOptions", "OptimizeReport", "OptimizedPackage", "optimize_package",
]
