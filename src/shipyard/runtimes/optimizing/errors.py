"""Why a package cannot be optimised, or why its optimised version was refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.runtimes.optimizing.gate import GateResult


class OptimizationError(ShipyardError):
    """A package cannot be optimised: not ONNX, no rows to check it on, a failed step."""


class AccuracyGateError(OptimizationError):
    """The optimised model lost more than the tolerance; ``result`` holds the numbers."""

    def __init__(self, result: GateResult) -> None:
        super().__init__(f"refused: {result.describe()}")
        self.result = result


class LatencyTargetError(OptimizationError):
    """The optimised model's median latency is above ``--target-latency``."""

    def __init__(self, median_ms: float, target_ms: float, batch: int) -> None:
        super().__init__(f"refused: the optimised model's median latency at batch {batch} is "
                         f"{median_ms:.3f} ms, above the target of {target_ms:g} ms")
        self.median_ms = median_ms
        self.target_ms = target_ms
