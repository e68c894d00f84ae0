"""The rows an optimised model is calibrated and judged on: the package's reference rows.

A table's rows come from the row sample of ``profile.bin`` (its input columns, and
``target`` when the package recorded one); a tensor's from ``reference_rows.npz``
(``runtimes/reference_rows.py``). Both hold up to 2000 of the reference rows: the held-out
rows given to ``package(reference=...)``, else the packaging sample (then the gate judges on
rows the model trained on, and says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shipyard.errors import InputValidationError, ProfileError
from shipyard.packaging import prepare
from shipyard.runtimes.model import VerifiedPackage
from shipyard.runtimes.optimizing.errors import OptimizationError
from shipyard.runtimes.reference_rows import read_rows
from shipyard.types import Array, Columns

SPLIT_MIN_ROWS = 200  # below this, calibration and evaluation share the rows
CALIBRATION_ROWS = 256


@dataclass(frozen=True)
class ReferenceRows:
    """Input columns (prepared to the signature), their target if known, and their origin."""

    columns: Columns
    target: Array | None
    source: str  # "holdout" or "sample"

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values())))

    def take(self, index: Array) -> ReferenceRows:
        target = None if self.target is None else self.target[index]
        return ReferenceRows({k: v[index] for k, v in self.columns.items()}, target,
                             self.source)


def reference_rows(package: VerifiedPackage) -> ReferenceRows:
    """The package's stored reference rows; OptimizationError when it stores none."""
    meta = package.manifest.metadata.get("reference") or {}
    source = str(meta.get("source", "sample")) if isinstance(meta, dict) else "sample"
    stored = read_rows(package.path, package.manifest)
    if stored is not None:
        columns, target = stored
    else:
        columns, target = _profile_rows(package)
    try:
        prepared = prepare(columns, package.signature)
    except InputValidationError as exc:
        raise OptimizationError(f"the package's reference rows do not fit its signature: "
                                f"{exc}") from exc
    return ReferenceRows(prepared, target, source)


def _profile_rows(package: VerifiedPackage) -> tuple[Columns, Array | None]:
    sig = package.signature
    try:
        prof = package.reference_profile()
    except ProfileError as exc:
        raise OptimizationError(f"cannot read the package's reference profile: {exc}") from exc
    if prof is None or sig.kind != "tabular":
        raise OptimizationError(
            f"package {package.name!r} holds no reference rows to check an optimised model "
            "on; package it again with this shipyard version, giving held-out rows as "
            "package(..., reference=(X, y))")
    missing = [name for name in sig.input_names if name not in prof.sample]
    if missing:
        raise OptimizationError(f"the reference profile's row sample lacks the inputs "
                                f"{missing} (datetime columns are not sampled), so the "
                                "optimised model cannot be checked on it")
    columns = {name: np.asarray(prof.sample[name]) for name in sig.input_names}
    target = prof.sample.get("target") if "target" not in sig.input_names else None
    return columns, None if target is None else np.asarray(target)


def split(rows: ReferenceRows) -> tuple[ReferenceRows, ReferenceRows, bool]:
    """(calibration rows, evaluation rows, whether they overlap): disjoint when there are
    enough rows (a quarter, at most 256, calibrate; the rest judge), else both all rows."""
    n = rows.rows
    if n < SPLIT_MIN_ROWS:
        return rows, rows, True
    order = np.random.default_rng(0).permutation(n)
    size = min(CALIBRATION_ROWS, n // 4)
    return rows.take(np.sort(order[:size])), rows.take(np.sort(order[size:])), False
