"""A custom model that hangs: ``serving.hanging_model:HangsOn666`` doubles ``x``, but a row
with ``x == 666`` blocks ``predict`` until ``RELEASE`` is set (in an inference process, which
nothing releases: forever, until the server kills it)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

RELEASE = threading.Event()
TRIGGER = 666.0


class HangsOn666:
    def predict(self, x: Any) -> np.ndarray:
        values = np.asarray(x["x"], dtype=np.float64)
        if (values == TRIGGER).any():
            RELEASE.wait()
        return values * 2.0
