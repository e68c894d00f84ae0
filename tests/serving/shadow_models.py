"""Custom models for shadow tests: they take the iris features and misbehave.

``Sleeps`` blocks every call for ``SLEEP_S`` (a hung shadow version); ``Raises`` fails every
call (a crashing one)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

SLEEP_S = 30.0


class Sleeps:
    def predict(self, x: Any) -> np.ndarray:
        time.sleep(SLEEP_S)
        return np.zeros(len(x["sepal_length"]))


class Raises:
    def predict(self, x: Any) -> np.ndarray:
        raise RuntimeError("this shadow version always fails")
