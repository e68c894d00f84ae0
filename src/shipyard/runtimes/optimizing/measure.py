"""What an optimisation changed: model bytes, and median latency at a batch size.

Latency is the runtime's own ``predict`` on prepared columns (no validation, no HTTP), the
models timed in turns (one call of each, then again) so that load from other processes on
the machine falls on both alike; the median of ``runs`` calls each, after a warm-up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np

from shipyard.packaging import Manifest, RuntimeSpec
from shipyard.runtimes.model import LoadedModel
from shipyard.types import Columns

WARMUP = 3


def model_bytes(manifest: Manifest, spec: RuntimeSpec) -> int:
    """The size of the files one runtime reads (the model, not the profile or examples)."""
    sizes = {f.path: f.size for f in manifest.files}
    return sum(sizes.get(path, 0) for path in spec.files)


def batch_of(columns: Columns, batch: int) -> Columns:
    """``batch`` rows: the first ones, repeated when there are fewer."""
    n = len(next(iter(columns.values())))
    index = np.arange(batch) % n
    return {name: np.ascontiguousarray(arr[index]) for name, arr in columns.items()}


def median_latency_ms(models: Sequence[LoadedModel], columns: Columns, *, batch: int = 64,
                      runs: int = 30) -> list[float]:
    """Each model's median milliseconds per ``predict`` of ``batch`` rows."""
    rows = batch_of(columns, batch)
    for model in models:
        for _ in range(WARMUP):
            model.runtime.predict(rows)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(runs):
        for i, model in enumerate(models):
            start = time.perf_counter()
            model.runtime.predict(rows)
            times[i].append((time.perf_counter() - start) * 1000.0)
    return [statistics.median(t) for t in times]
