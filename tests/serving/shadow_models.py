"""Custom models for shadow tests: they take the iris features and misbehave on rows with
``petal_width >= 1`` (not on setosa rows, which packaging and the warm-up use).

``Sleeps`` blocks such a call for ``SLEEP_S`` (a hung shadow version); ``Raises`` fails it
(a crashing one)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

SLEEP_S = 5.0


def _triggered(x: Any) -> bool:
    return bool((np.asarray(x["petal_width"], dtype=np.float64) >= 1.0).any())


class Sleeps:
    def predict(self, x: Any) -> np.ndarray:
        if _triggered(x):
            time.sleep(SLEEP_S)
        return np.zeros(len(x["petal_width"]))


class Raises:
    def predict(self, x: Any) -> np.ndarray:
        if _triggered(x):
            raise RuntimeError("this shadow version always fails")
        return np.zeros(len(x["petal_width"]))
