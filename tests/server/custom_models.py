"""Custom Python models for the server tests, packaged by import path.

``GatedDoubler`` (``server.custom_models:GatedDoubler``): rows with ``hold`` != 0 block in
``predict`` until ``GATE`` is set, so the overload tests know exactly when the model is busy.
``ScoreAndFlag`` returns two named outputs and no label/value.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

GATE = threading.Event()  # set: held requests may finish
ENTERED = threading.Event()  # set by the first held request that reached the model


class GatedDoubler:
    def predict(self, x: Any) -> np.ndarray:
        if np.asarray(x["hold"]).any():
            ENTERED.set()
            GATE.wait(timeout=30)  # never hangs the suite, even if a test forgets the gate
        return np.asarray(x["x"], dtype=np.float64) * 2.0


class ScoreAndFlag:
    def predict(self, x: Any) -> dict[str, np.ndarray]:
        score = np.asarray(x["a"], dtype=np.float64) + np.asarray(x["b"], dtype=np.float64)
        return {"score": score, "flag": (score > 0).astype(np.int64)}


class Picky:
    """Doubles ``x``, but raises on the value 13 (valid input the model itself refuses)."""

    def predict(self, x: Any) -> np.ndarray:
        values = np.asarray(x["x"], dtype=np.float64)
        if (values == 13).any():
            raise ValueError("unlucky 13")
        return values * 2.0
