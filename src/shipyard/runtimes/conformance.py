"""``check_runtime()``: the conformance suite every Runtime must pass (plugins included).

    from shipyard.runtimes import check_runtime
    check_runtime(MyRuntime, "path/to/package")   # raises ConformanceError on the first failure
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.packaging import Manifest, prepare, verify_files
from shipyard.runtimes.base import Capabilities, Runtime
from shipyard.types import Columns


class ConformanceError(ShipyardError):
    """A runtime broke one of the promises of the Runtime interface."""


def check_runtime(factory: Callable[[], Runtime], package_dir: str | Path, *,
                  runtime: str | None = None, trust: bool = False) -> list[str]:
    """Run every check against a fresh runtime from ``factory``; returns the checks passed."""
    root = Path(package_dir)
    manifest = Manifest.read(root)
    verify_files(root, manifest.files)
    spec = manifest.runtime if runtime is None else manifest.runtime_spec(runtime)
    if manifest.input_example is None:
        raise ConformanceError("the package has no input example to check against")
    example = json.loads((root / manifest.input_example).read_text())
    columns = prepare(example, manifest.signature)
    rows = len(next(iter(columns.values())))
    engine = factory()
    passed = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        if not ok:
            raise ConformanceError(f"{type(engine).__name__}: {name} failed. {detail}".strip())
        passed.append(name)

    check("capabilities is a Capabilities", isinstance(engine.capabilities, Capabilities))
    check("name is set", isinstance(getattr(engine, "name", None), str))
    engine.load(root, manifest, spec, trust=trust)
    snapshot = {k: v.copy() for k, v in columns.items()}
    first = engine.predict(columns)
    check("inputs are not mutated", _same(columns, snapshot))
    expected = {o.name for o in manifest.signature.outputs}
    check("outputs match the signature", set(first) == expected,
          f"got {sorted(first)}, signature says {sorted(expected)}")
    check("every output has one row per input row",
          all(len(v) == rows for v in first.values()),
          str({k: v.shape for k, v in first.items()}))
    check("predict is deterministic", _same(engine.predict(columns), first))
    _check_task(check, first, manifest)
    caps = engine.capabilities
    if caps.batchable and rows > 1:
        singles = [engine.predict({k: v[i:i + 1] for k, v in columns.items()})
                   for i in range(rows)]
        joined = {k: np.concatenate([s[k] for s in singles]) for k in first}
        check("a batch equals its rows predicted one by one", _same(joined, first, 1e-5))
    if caps.thread_safe:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: engine.predict(columns), range(8)))
        check("concurrent predicts agree", all(_same(r, first) for r in results))
    engine.unload()
    passed.append("unload")
    return passed


def _check_task(check: Callable[[str, bool, str], None], out: Columns, manifest: Manifest) -> None:
    sig = manifest.signature
    if sig.task != "classification":
        return
    proba = out["probabilities"]
    labels = sig.class_labels or ()
    check("probabilities have one column per class", proba.shape[1] == len(labels),
          f"{proba.shape} vs {len(labels)} classes")
    check("probabilities sum to 1", bool(np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)), "")
    check("labels are class labels", set(out["label"].tolist()) <= set(labels),
          f"{set(out['label'].tolist())} vs {labels}")


def _same(a: Columns, b: Columns, atol: float = 0.0) -> bool:
    if set(a) != set(b):
        return False
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape:
            return False
        if x.dtype.kind in "fc" and y.dtype.kind in "fc":
            if not np.allclose(x, y, atol=atol, rtol=0, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True
