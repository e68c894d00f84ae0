"""``shipyard optimize`` on a torch MLP: int8 size, speed and accuracy against float32.

    .venv/bin/python bench/optimize.py              # ~2-3 min on 2 cores
    .venv/bin/python bench/optimize.py --runs 400 --json out.json

An MLP of 3 hidden layers of 1024 (64 inputs, 10 classes, 2.2 M weights) is trained for a
few epochs on generated data (labels from a random teacher network), packaged with 2,000
held-out rows and their labels, registered in a scratch registry, and optimised the way
``shipyard optimize models:/mlp/1`` does it: dynamic int8, then static int8 (calibrated on
the package's reference rows). Printed: the model file's size ratio (target >= 3x smaller),
the median latency ratio at batch 64 over ``--runs`` calls of each model in turns (target
>= 1.5x faster), the accuracy change on the held-out rows (target within 1 point). Last,
static quantisation calibrated on rows 10,000 times too large, which the gate must refuse.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import shipyard
from _timing import machine_info, write_json
from shipyard.runtimes.optimizing import AccuracyGateError

FEATURES, HIDDEN, CLASSES = 64, 1024, 10


class DeepMLP(torch.nn.Module):
    def __init__(self, n_in: int = FEATURES, hidden: int = HIDDEN, n_out: int = CLASSES,
                 layers: int = 3) -> None:
        super().__init__()
        sizes = [n_in] + [hidden] * layers
        blocks: list[torch.nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            blocks += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*blocks, torch.nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


def make_data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs labelled by a fixed random teacher network (one hidden layer)."""
    x = np.random.default_rng(seed).normal(size=(rows, FEATURES)).astype(np.float32)
    teacher = np.random.default_rng(12345)
    w1 = teacher.normal(size=(FEATURES, 128)) / np.sqrt(FEATURES)
    w2 = teacher.normal(size=(128, CLASSES))
    return x, np.argmax(np.tanh(x @ w1) @ w2, axis=1)


def train(epochs: int) -> tuple[DeepMLP, float]:
    torch.manual_seed(0)
    model = DeepMLP()
    x, y = make_data(30_000, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    start = time.perf_counter()
    for _ in range(epochs):
        for i in torch.randperm(len(xt)).split(256):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
            opt.step()
    model.eval()
    return model, time.perf_counter() - start


def show(label: str, result: Any) -> dict[str, Any]:
    r = result.report
    gate = r.gate
    print(f"\n{label}: {result.version.uri} (parent {result.original.uri})")
    print(f"  size      {r.size_before:>12,} -> {r.size_after:>12,} bytes   "
          f"{r.size_ratio:5.2f}x smaller  (target >= 3x)")
    print(f"  latency   {r.latency_before_ms:>12.3f} -> {r.latency_after_ms:>12.3f} ms      "
          f"{r.speedup:5.2f}x faster   (batch {r.batch}, median of {r.runs}; target >= 1.5x)")
    print(f"  accuracy  {gate.original:>12.2f} -> {gate.optimized:>12.2f} %       "
          f"{-gate.loss:+5.2f} points  ({gate.rows} held-out rows; target within 1)")
    return {"version": result.version.uri, **r.to_dict()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed calls per model")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args()

    model, seconds = train(args.epochs)
    print(f"trained DeepMLP 64 -> 3x1024 -> 10 for {args.epochs} epochs in {seconds:.0f} s")
    x_train, _ = make_data(2000, 0)
    x_hold, y_hold = make_data(2000, 1)
    figures: dict[str, Any] = {"machine": machine_info()}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-optimize-") as tmp:
        reg = shipyard.Registry(f"sqlite:///{tmp}/registry.db", artifacts=Path(tmp) / "blobs")
        pkg = shipyard.package(model, x_train, name="mlp", reference=(x_hold, y_hold))
        reg.register(pkg)
        figures["dynamic"] = show("int8, dynamic", shipyard.optimize(
            "models:/mlp/1", registry=reg, latency_runs=args.runs))
        figures["static"] = show("int8, static", shipyard.optimize(
            "models:/mlp/1", registry=reg, latency_runs=args.runs, static=True))
        broken = {"input": make_data(256, 2)[0] * 10_000}
        try:
            shipyard.optimize("models:/mlp/1", registry=reg, latency_runs=args.runs,
                              static=True, calibration=broken)
        except AccuracyGateError as exc:
            print(f"\nbroken static int8 (calibrated on rows x10,000): {exc}")
            figures["broken"] = exc.result.to_dict()
        else:
            print("\nbroken static int8 was NOT refused", file=sys.stderr)
            return 1
        reg.close()
    if args.json:
        write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
