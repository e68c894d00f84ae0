"""Normalise what a model returns into shipyard's output names and shapes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from shipyard.packaging import Signature
from shipyard.types import Array, Columns


def concat(items: Sequence[Columns]) -> Columns:
    """The rows of several column sets, one after another (one set is returned as is)."""
    if not items:
        return {}
    if len(items) == 1:
        return items[0]
    return {k: np.concatenate([it[k] for it in items]) for k in items[0]}


def check_rows(outputs: Columns, rows: int) -> None:
    """A batch call must answer every input row: each output holds ``rows`` rows."""
    for name, arr in outputs.items():
        if len(arr) != rows:
            raise RuntimeError(f"the model returned {len(arr)} rows of {name!r} for "
                               f"{rows} input rows")


def normalise(raw: Mapping[str, Array], signature: Signature) -> Columns:
    """Classifier labels become the signature's class labels; column vectors are flattened."""
    out: Columns = {}
    for name, value in raw.items():
        arr = np.asarray(value)
        if name in ("label", "value") and arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        out[name] = arr
    if "label" in out and signature.class_labels is not None:
        out["label"] = _as_labels(out["label"], signature.class_labels)
    if "probabilities" in out:
        out["probabilities"] = out["probabilities"].astype(np.float64, copy=False)
    return out


def _as_labels(label: Array, classes: tuple[object, ...]) -> Array:
    reference = np.asarray(classes)
    if reference.dtype.kind in "iub" and label.dtype.kind in "iubf":
        return label.astype(reference.dtype)
    if reference.dtype.kind in "U":
        return label.astype(str).astype(object)
    return label
