"""The BentoML side of ``bench/serving.py``: a service in the BentoML venv, adaptive batching on.

Served by ``bentoml serve _bentoml_service:BenchModel --working-dir bench``; the joblib file
comes from ``$BENCH_MODEL_PATH`` and the worker count from ``$BENCH_WORKERS``.
"""

from __future__ import annotations

import os
from typing import Annotated

import bentoml
import joblib
import numpy as np
from bentoml.validators import DType, Shape

WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
MAX_BATCH_SIZE = int(os.environ.get("BENCH_MAX_BATCH_SIZE", "32"))


@bentoml.service(name="bench", workers=WORKERS)
class BenchModel:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL_PATH"])

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=MAX_BATCH_SIZE)
    def predict(
        self, instances: Annotated[np.ndarray, Shape((-1, 30)), DType("float64")]
    ) -> np.ndarray:
        return self.model.predict(instances)
