"""The model-extraction score's cost per monitored window (``service/monitor_extraction.py``
over ``monitoring/extraction.py``): seconds to score every API key of a window.

    .venv/bin/python bench/extraction.py            # 10k, 100k and 1M rows
    .venv/bin/python bench/extraction.py --quick    # 10k and 100k rows

The data is generated here (numpy, seeded): 8 normal inputs and a two-class model's
probabilities, a reference profile of 5000 rows, and windows whose rows are spread over
many keys (5, 20, 200). Each window is scored 3 times; the best time is shown.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from shipyard.profiles import profile
from shipyard.service.monitor_extraction import key_extraction
from shipyard.service.references import Reference
from shipyard.service.windows import Window, WindowData


def frame(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    x = {f"x{i}": rng.normal(0.0, 1.0, rows) for i in range(8)}
    p1 = 1.0 / (1.0 + np.exp(-x["x0"]))
    return {**x, "proba.0": 1.0 - p1, "proba.1": p1}


def window(rng: np.random.Generator, rows: int, keys: int) -> WindowData:
    names = np.array([f"key{i}" for i in range(keys)], dtype=object)[
        rng.integers(0, keys, rows)]
    return WindowData(Window(0.0, 1.0), frame(rng, rows), np.ones(rows, np.int64),
                      np.full(rows, "m", dtype=object), np.ones(rows), 0, names,
                      np.ones(rows, bool))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    reference = Reference(profile(frame(rng, 5000)), "generated")
    inputs = [f"x{i}" for i in range(8)]
    sizes = [(10_000, 5), (100_000, 20)] + ([] if args.quick else [(1_000_000, 200)])
    print("rows       keys  seconds  us/row")
    for rows, keys in sizes:
        data = window(rng, rows, keys)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            key_extraction(data, inputs, reference, {})
            best = min(best, time.perf_counter() - started)
        print(f"{rows:<10} {keys:>4} {best:8.3f} {best / rows * 1e6:7.2f}")


if __name__ == "__main__":
    main()
