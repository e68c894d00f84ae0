"""Rows/second of a packaged shipyard model versus the native scikit-learn model.

    .venv/bin/python bench/runtime.py            # full run (7 trials of ~0.2 s each)
    .venv/bin/python bench/runtime.py --quick    # smoke run (3 trials of ~0.05 s each)
    .venv/bin/python bench/runtime.py --json results.json

For each model and batch size (1, 64, 4096) three contenders are timed on the same 2-D float64
numpy batch:

* ``native``: ``model.predict_proba(X)`` in scikit-learn;
* ``shipyard (predict, with validation)``: ``loaded.predict(X)``, i.e. signature validation and
  coercion plus the runtime;
* ``shipyard (runtime only)``: ``loaded.predict_columns(columns)`` on columns prepared once
  outside the timed loop, i.e. only the runtime (ONNX Runtime for converted models).

Each trial runs a fixed number of calls (calibrated so one trial lasts about ``--trial-seconds``),
the contenders are interleaved within every trial (in a rotating order) so that a noisy
neighbour slows them all alike, and the reported figure is the median rows/s over the trials.
Ratios are ratios of medians, shipyard / native: above 1 means shipyard is faster.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from _timing import calibrate, listed, machine_info, spread, time_calls, write_json

BATCH_SIZES = (1, 64, 4096)
NATIVE = "native"
PREDICT = "shipyard (predict, with validation)"
RUNTIME = "shipyard (runtime only)"
CONTENDERS = (NATIVE, PREDICT, RUNTIME)
SHORT = {NATIVE: "native", PREDICT: "predict", RUNTIME: "runtime"}


@dataclass
class Result:
    model: str
    batch: int
    contender: str
    iterations: int
    rows_per_s: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rows_per_s)

    @property
    def spread(self) -> float:
        return spread(self.rows_per_s)


# --- models -------------------------------------------------------------------------------


def make_models() -> dict[str, Callable[[], Any]]:
    """The tree models convert with exact (double-precision) tree nodes: these rows compare
    that graph's latency with the native model's."""
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    return {
        "scaler+gbdt": lambda: make_pipeline(
            StandardScaler(), GradientBoostingClassifier(n_estimators=100, random_state=0)),
        "logreg": lambda: LogisticRegression(max_iter=1000),
        "random-forest": lambda: RandomForestClassifier(n_estimators=100, random_state=0),
        "extra-trees": lambda: ExtraTreesClassifier(n_estimators=100, max_depth=12,
                                                    random_state=0),
        "hist-gbdt": lambda: HistGradientBoostingClassifier(max_iter=100, random_state=0),
        "scaler+lightgbm": lambda: make_pipeline(
            StandardScaler(), LGBMClassifier(n_estimators=100, verbose=-1, random_state=0)),
        "xgboost": lambda: XGBClassifier(n_estimators=100, max_depth=6, random_state=0),
    }


def training_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    features, target = make_classification(n_samples=20000, n_features=30, n_informative=12,
                               random_state=0)
    return np.ascontiguousarray(features, dtype=np.float64), target


# --- timing -------------------------------------------------------------------------------


def bench_batch(model_name: str, batch: int, calls: dict[str, Callable[[], object]],
                trials: int, trial_seconds: float) -> list[Result]:
    results = {name: Result(model_name, batch, name, calibrate(fn, trial_seconds))
               for name, fn in calls.items()}
    order = list(calls)
    for trial in range(trials):
        gc.collect()
        shift = trial % len(order)
        for name in order[shift:] + order[:shift]:  # rotate who goes first each trial
            res = results[name]
            elapsed = time_calls(calls[name], res.iterations)
            res.rows_per_s.append(res.iterations * batch / elapsed)
    return list(results.values())


# --- reporting ----------------------------------------------------------------------------


def human(rate: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.2f}{unit}"
    return f"{rate:.1f}"


def runtime_machine_info() -> dict[str, Any]:
    import onnxruntime
    import sklearn
    import threadpoolctl

    import shipyard
    from shipyard.settings import Settings

    settings = Settings.from_env()
    blas = [f"{p.get('internal_api')}:{p.get('num_threads')}"
            for p in threadpoolctl.threadpool_info()]
    return {
        **machine_info(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "onnxruntime": onnxruntime.__version__,
        "shipyard": shipyard.__version__,
        "ort_intra_op_threads": settings.ort_intra_op_threads,
        "ort_inter_op_threads": settings.ort_inter_op_threads,
        "native_threadpools": blas,
    }


def print_machine(info: dict[str, Any], args: argparse.Namespace) -> None:
    print("shipyard runtime benchmark")
    print(f"  machine     : {info['cpu_count']} CPUs (affinity {info['affinity']}), "
          f"{info['platform']}")
    print(f"  versions    : python {info['python']}, numpy {info['numpy']}, "
          f"scikit-learn {info['sklearn']}, onnxruntime {info['onnxruntime']}, "
          f"shipyard {info['shipyard']}")
    print(f"  threads     : onnxruntime intra-op {info['ort_intra_op_threads']} / inter-op "
          f"{info['ort_inter_op_threads']} (SHIPYARD_ORT_THREADS); native thread pools "
          f"{', '.join(info['native_threadpools']) or 'none'}")
    print(f"  method      : {args.trials} interleaved trials of ~{args.trial_seconds:g} s per "
          "(model, batch, contender); median rows/s; ratio = shipyard median / native median")
    print()


def print_table(results: list[Result], runtimes: dict[str, str]) -> None:
    by_key = {(r.model, r.batch, r.contender): r for r in results}
    headers = ["model", "runtime", "batch", "native rows/s", "predict rows/s", "ratio",
               "runtime-only rows/s", "ratio", "noise (IQR/median) n/p/r"]
    rows: list[list[str]] = []
    for model in dict.fromkeys(r.model for r in results):
        for batch in BATCH_SIZES:
            if (model, batch, NATIVE) not in by_key:
                continue
            native, pred, rt = (by_key[(model, batch, c)] for c in CONTENDERS)
            rows.append([
                model, runtimes[model], str(batch),
                human(native.median), human(pred.median), f"{pred.median / native.median:.2f}x",
                human(rt.median), f"{rt.median / native.median:.2f}x",
                "/".join(f"{r.spread:.0%}" for r in (native, pred, rt)),
            ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    right = {2, 3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            print()
        previous = row[0]
        print(line(row))
    print()
    print("predict = shipyard predict() incl. validation; runtime-only = predict_columns() on "
          "pre-validated columns;")
    print("native = sklearn predict_proba on the same numpy array. ratio > 1: shipyard faster.")


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    models = list(make_models())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 trials of ~0.05 s each instead of 7 of ~0.2 s (a smoke run)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--models", default=",".join(models),
                        help=f"comma-separated subset of: {', '.join(models)}")
    parser.add_argument("--trials", type=int, help="timed trials per contender (default 7)")
    parser.add_argument("--trial-seconds", type=float,
                        help="target duration of one trial (default 0.2)")
    args = parser.parse_args(argv)
    args.trials = args.trials or (3 if args.quick else 7)
    args.trial_seconds = args.trial_seconds or (0.05 if args.quick else 0.2)
    args.models = listed(parser, "--models", args.models, models)
    if args.trials < 1 or args.trial_seconds <= 0:
        parser.error("--trials must be >= 1 and --trial-seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import shipyard

    started = time.perf_counter()
    info = runtime_machine_info()
    print_machine(info, args)
    features, target = training_data()
    factories = make_models()
    results: list[Result] = []
    runtimes: dict[str, str] = {}
    parity: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as tmp:
        for name in args.models:
            t0 = time.perf_counter()
            model = factories[name]().fit(features, target)
            t1 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pkg = shipyard.package(model, features, name="bench")
            for w in caught:
                print(f"  warning while packaging {name}: {w.message}", file=sys.stderr)
            path = pkg.save(Path(tmp) / name)
            loaded = shipyard.load(path)
            runtimes[name] = loaded.runtime.name
            t2 = time.perf_counter()
            check = features[:4096]
            parity[name] = float(np.max(np.abs(
                loaded.predict(check).probabilities - model.predict_proba(check))))
            print(f"[{name}] fit {t1 - t0:.1f} s, package+load {t2 - t1:.1f} s, runtime "
                  f"{runtimes[name]!r}, max |p_shipyard - p_native| = {parity[name]:.2g}",
                  flush=True)
            if runtimes[name] != "onnx":
                print(f"  note: {name} did not convert to ONNX; shipyard runs it natively",
                      file=sys.stderr)
            for batch in BATCH_SIZES:
                data = np.ascontiguousarray(features[:batch])
                columns = loaded.prepare(data)
                calls: dict[str, Callable[[], object]] = {
                    NATIVE: lambda m=model, d=data: m.predict_proba(d),
                    PREDICT: lambda m=loaded, d=data: m.predict(d),
                    RUNTIME: lambda m=loaded, c=columns: m.predict_columns(c),
                }
                results.extend(bench_batch(name, batch, calls, args.trials, args.trial_seconds))
            loaded.close()
    print()
    print_table(results, runtimes)
    elapsed = time.perf_counter() - started
    print(f"\ntotal wall time {elapsed:.0f} s")
    if args.json:
        payload = {
            "machine": info,
            "config": {"trials": args.trials, "trial_seconds": args.trial_seconds,
                       "quick": args.quick, "batch_sizes": list(BATCH_SIZES),
                       "models": args.models},
            "runtimes": runtimes,
            "parity_max_abs_diff": parity,
            "results": [
                {"model": r.model, "batch": r.batch, "contender": r.contender,
                 "iterations_per_trial": r.iterations, "trials_rows_per_s": r.rows_per_s,
                 "median_rows_per_s": r.median, "iqr_over_median": r.spread,
                 "ratio_vs_native": r.median / next(
                     n.median for n in results
                     if n.model == r.model and n.batch == r.batch and n.contender == NATIVE)}
                for r in results
            ],
            "wall_seconds": elapsed,
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
