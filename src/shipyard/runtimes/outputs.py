"""Normalise what a model returns into shipyard's output names and shapes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shipyard.packaging import Signature
from shipyard.types import Array, Columns


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
