"""The reference profile a package ships (``profile.bin``), so monitoring needs no setup.

It profiles the reference rows (``package(reference=...)``'s held-out rows, else the packaging
sample) as a monitoring frame, the same column names the monitor reads from the prediction
log: the input columns, ``prediction`` (label or value), ``proba.<class>`` per class, and
``target`` when the caller gave one value per row.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from shipyard.errors import ProfileError
from shipyard.packaging import Signature
from shipyard.profiles import ColumnKind, profile, value_key
from shipyard.types import Array, Columns

PROFILE_FILE = "profile.bin"
_UNPROFILED_KINDS = "mMcV"  # datetimes, timedeltas, complex, structured: no profile column


def monitoring_frame(columns: Columns, outputs: Columns, sig: Signature,
                     target: Any = None) -> tuple[Columns, dict[str, ColumnKind]]:
    """The sample's inputs and outputs as monitoring columns, and the kinds that are known
    from the signature rather than guessed from the values (labels, probabilities)."""
    rows = len(next(iter(columns.values())))
    frame = {name: arr for name, arr in columns.items() if _profilable(arr)}
    kinds: dict[str, ColumnKind] = {}
    labels = sig.class_labels
    label_kind = ColumnKind.BINARY if labels is not None and len(labels) == 2 \
        else ColumnKind.CATEGORICAL
    prediction = _prediction(outputs)
    if prediction is not None and "prediction" not in frame:
        frame["prediction"] = prediction
        kinds["prediction"] = label_kind if sig.task == "classification" else ColumnKind.NUMERIC
    proba = outputs.get("probabilities")
    if proba is not None and labels is not None and proba.ndim == 2:
        for i, label in enumerate(labels):
            frame.setdefault(f"proba.{value_key(label)}", np.asarray(proba[:, i], np.float64))
            kinds[f"proba.{value_key(label)}"] = ColumnKind.NUMERIC
    truth = _target(target, rows)
    if truth is not None and "target" not in frame:
        frame["target"] = truth
        if sig.task == "regression" and truth.dtype.kind in "iuf":
            kinds["target"] = ColumnKind.NUMERIC
        elif sig.task == "classification":
            kinds["target"] = label_kind if _distinct(truth) <= 2 else ColumnKind.CATEGORICAL
    return frame, kinds


def reference_profile(columns: Columns | None, outputs: Columns, sig: Signature,
                      target: Any = None) -> bytes | None:
    """``profile.bin`` for the sample, or None (with a warning) when it cannot be profiled."""
    if not columns:
        return None
    frame, kinds = monitoring_frame(columns, outputs, sig, target)
    if not frame:
        return None
    try:
        return profile(frame, kinds=kinds).to_bytes()
    except ProfileError as exc:
        warnings.warn(f"the package has no reference profile: {exc}", stacklevel=3)
        return None


def _profilable(arr: Array) -> bool:
    return arr.ndim == 1 and arr.dtype.kind not in _UNPROFILED_KINDS


def _prediction(outputs: Columns) -> Array | None:
    for name in ("label", "value"):
        if name in outputs:
            arr = np.asarray(outputs[name])
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            return arr if _profilable(arr) else None
    return None


def _target(target: Any, rows: int) -> Array | None:
    if target is None:
        return None
    to_numpy = getattr(target, "to_numpy", None)  # a pandas Series keeps its nulls as None
    arr = np.asarray(to_numpy() if callable(to_numpy) else target)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr if _profilable(arr) and len(arr) == rows else None


def _distinct(arr: Array) -> int:
    return len({value_key(v) for v in set(arr.tolist())} - {None})
