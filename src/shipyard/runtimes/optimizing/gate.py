"""The accuracy gate: the optimised model against the original on the same rows.

One metric per model, in points so that one tolerance reads the same everywhere:

- classifiers (a ``label`` output, or a score matrix whose argmax is the class): accuracy,
  in percent; the loss is how many points it fell;
- everything else (regressors, other outputs): the root-mean-square error as a percent of
  the truth's standard deviation (normalised RMSE); the loss is how many points it rose.

The truth is the rows' target when the package holds one, else the original model's own
predictions (then the original scores 100% / 0 by definition and the metric measures how
far the optimised model strays from it); ``GateResult.truth`` says which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shipyard.packaging import Signature
from shipyard.profiles import value_key
from shipyard.types import Array, Columns

ACCURACY = "accuracy"
NRMSE = "nrmse"
_DESCRIPTIONS = {ACCURACY: "accuracy (%)", NRMSE: "RMSE as % of the truth's std"}


@dataclass(frozen=True)
class GateResult:
    """The metric of both models on the same rows, and whether the loss is tolerated."""

    metric: str
    original: float
    optimized: float
    loss: float  # points lost: accuracy fallen, or normalised error risen
    tolerance: float
    rows: int
    truth: str  # "target" or "original predictions"

    @property
    def passed(self) -> bool:
        return self.loss <= self.tolerance

    def describe(self) -> str:
        verb = "fell" if self.metric == ACCURACY else "rose"
        judged = "within" if self.passed else "more than"
        return (f"{_DESCRIPTIONS.get(self.metric, self.metric)} against the {self.truth} on "
                f"{self.rows} reference rows {verb} from {self.original:.2f} (original) to "
                f"{self.optimized:.2f} (optimised): a loss of {self.loss:.2f} points, "
                f"{judged} the tolerance of {self.tolerance:.2f}")

    def to_dict(self) -> dict[str, Any]:
        out = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}
        return {**out, "passed": self.passed}


def compare(sig: Signature, original: Columns, optimized: Columns, target: Array | None,
            tolerance: float) -> GateResult:
    """Score both models' outputs on the same rows (see the module doc)."""
    name, old = _scored_output(sig, original)
    new = _scored_output(sig, optimized)[1]
    classify = name == "label" or (old.ndim == 2 and old.shape[1] > 1)
    truth, source = _truth(old, target, classify)
    keep = ~_missing(truth)
    old, new, truth = old[keep], new[keep], truth[keep]
    if classify:
        a, b = _accuracy(old, truth), _accuracy(new, truth)
        return GateResult(ACCURACY, a, b, a - b, tolerance, int(keep.sum()), source)
    a, b = _nrmse(old, truth), _nrmse(new, truth)
    return GateResult(NRMSE, a, b, b - a, tolerance, int(keep.sum()), source)


def _scored_output(sig: Signature, outputs: Columns) -> tuple[str, Array]:
    for name in ("label", "value"):
        if name in outputs:
            return name, np.asarray(outputs[name])
    name = sig.outputs[0].name if sig.outputs else next(iter(outputs))
    return name, np.asarray(outputs[name])


def _truth(old: Array, target: Array | None, classify: bool) -> tuple[Array, str]:
    """The target when it fits the output, else the original's predictions."""
    scores = classify and old.ndim == 2
    if target is not None and len(target) == len(old):
        truth = np.asarray(target)
        if not scores:
            if classify or _same_shape(truth, old):
                return truth, "target"
        elif _class_indices(truth, old.shape[1]):
            return truth.astype(np.float64), "target"
    if scores:
        return np.argmax(old, axis=1).astype(np.float64), "original predictions"
    return old, "original predictions"


def _same_shape(truth: Array, old: Array) -> bool:
    return truth.dtype.kind in "biuf" and truth.size == old.size


def _class_indices(truth: Array, classes: int) -> bool:
    if truth.ndim != 1 or truth.dtype.kind not in "iuf":
        return False
    values = truth[~np.isnan(truth)] if truth.dtype.kind == "f" else truth
    return bool(values.size) and bool(np.all((values == np.round(values)) & (values >= 0)
                                              & (values < classes)))


def _missing(truth: Array) -> Array:
    if truth.dtype.kind == "f":
        flat = truth.reshape(len(truth), -1)
        return np.asarray(np.isnan(flat).any(axis=1))
    if truth.dtype.kind == "O":
        return np.array([value_key(v) is None for v in truth.tolist()], dtype=bool)
    return np.zeros(len(truth), dtype=bool)


def _accuracy(pred: Array, truth: Array) -> float:
    if pred.ndim == 2 and pred.shape[1] > 1:
        pred = np.argmax(pred, axis=1)
    pred = pred.reshape(len(pred))
    if not len(pred):
        return 0.0
    hits = [value_key(p) == value_key(t) for p, t in zip(pred.tolist(), truth.tolist(),
                                                         strict=True)]
    return 100.0 * float(np.mean(hits))


def _nrmse(pred: Array, truth: Array) -> float:
    p = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    t = np.asarray(truth, dtype=np.float64).reshape(p.shape)
    if not p.size:
        return 0.0
    spread = float(np.std(t))
    scale = spread if spread > 0 else max(float(np.mean(np.abs(t))), 1.0)
    return 100.0 * float(np.sqrt(np.mean((p - t) ** 2))) / scale
