"""Standalone drift reports at many features: ``shipyard report --reference A --current B``
against Evidently's ``Report([DataDriftPreset()])`` saved as HTML, side by side in one run:
seconds from process start to the file written, and the file's size.

    .venv/bin/python bench/report.py                       # 1,000 features, 10k rows a side
    .venv/bin/python bench/report.py --features 100,1000 --rows 5000 --repeats 3
    .venv/bin/python bench/report.py --json out.json

The data is generated here (80 % numeric columns of several shapes, 20 % categorical with
5-40 values; every tenth column drifted), written once as Parquet. Each tool runs in its own
process (Evidently in ``bench/.envs/evidently``, the same venv as ``drift.py``), reading the
same two Parquet files with its own reader. Targets (issue 16): shipyard's report under 5 MB
and made in under 10 s at 1,000 features; Evidently is shown for comparison (its reports are
known to grow with the data).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _timing import machine_info, write_json
from drift import PEERS
from serving import PROJECT_BIN, ensure_env, env_versions

TARGET_SECONDS = 10.0
TARGET_BYTES = 5 * 2**20

EVIDENTLY = """
import sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
ref_path, cur_path, out = sys.argv[1:4]
ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
numeric = [c for c in ref.columns if c.startswith("n")]
categorical = [c for c in ref.columns if c.startswith("c")]
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()]).run(
    current_data=Dataset.from_pandas(cur, data_definition=definition),
    reference_data=Dataset.from_pandas(ref, data_definition=definition))
snapshot.save_html(out)
"""


def make_data(features: int, rows: int, root: Path) -> tuple[Path, Path]:
    import pandas as pd

    rng = np.random.default_rng(features)
    n_cat = features // 5
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for i in range(features - n_cat):
        shape = i % 4
        drift = 0.3 if i % 10 == 0 else 0.0
        if shape == 0:
            ref[f"n{i}"], cur[f"n{i}"] = rng.normal(size=rows), rng.normal(drift, 1, rows)
        elif shape == 1:
            ref[f"n{i}"] = rng.lognormal(size=rows)
            cur[f"n{i}"] = rng.lognormal(drift, 1, rows)
        elif shape == 2:
            ref[f"n{i}"] = rng.uniform(size=rows)
            cur[f"n{i}"] = rng.uniform(drift, 1 + drift, rows)
        else:
            ref[f"n{i}"] = rng.poisson(3, rows).astype(float)
            cur[f"n{i}"] = rng.poisson(3 + 3 * drift, rows).astype(float)
    for i in range(n_cat):
        values = np.array([f"value-{k:02d}" for k in range(5 + i % 36)])
        weights = rng.dirichlet(np.ones(len(values)))
        ref[f"c{i}"] = rng.choice(values, rows, p=weights)
        cur[f"c{i}"] = rng.choice(values, rows, p=weights[::-1] if i % 10 == 0 else weights)
    paths = root / f"ref-{features}.parquet", root / f"cur-{features}.parquet"
    pd.DataFrame(ref).to_parquet(paths[0])
    pd.DataFrame(cur).to_parquet(paths[1])
    return paths


def timed(cmd: list[str], out: Path, timeout: float) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"no report within {timeout:.0f} s"}
    seconds = time.perf_counter() - started
    if done.returncode != 0 or not out.exists():
        return {"error": (done.stderr or done.stdout).strip()[-300:]}
    return {"seconds": seconds, "bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", default="1000", help="comma-separated (1000)")
    parser.add_argument("--rows", type=int, default=10_000, help="rows a side (10000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool (3)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a run may take")
    parser.add_argument("--no-evidently", action="store_true", help="shipyard only")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args(argv)
    sizes = [int(f) for f in args.features.split(",")]
    info = machine_info()
    print(f"report benchmark: {info['cpu_count']} CPUs, {info['platform']}; features "
          f"{sizes}, {args.rows} rows a side, {args.repeats} run(s) per tool", flush=True)
    peer = None
    if not args.no_evidently:
        spec = PEERS["evidently"]
        installed = ensure_env(spec, False)
        if "error" in installed:
            print(f"  Evidently unavailable: {installed['error']}")
        else:
            peer = spec
            print(f"  Evidently: {env_versions(spec.python, spec.dists)}", flush=True)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-report-") as tmp:
        root = Path(tmp)
        for features in sizes:
            ref, cur = make_data(features, args.rows, root)
            for rep in range(args.repeats):
                runs = {"shipyard": (
                    [str(PROJECT_BIN / "shipyard"), "report", "--reference", str(ref),
                     "--current", str(cur), "-o", str(root / "shipyard.html")],
                    root / "shipyard.html")}
                if peer is not None:
                    runs["evidently"] = ([str(peer.python), "-c", EVIDENTLY, str(ref),
                                          str(cur), str(root / "evidently.html")],
                                         root / "evidently.html")
                for tool, (cmd, out) in runs.items():
                    r = timed(cmd, out, args.timeout)
                    results.setdefault(tool, {}).setdefault(str(features), []).append(r)
                    shown = (f"{r['seconds']:7.1f} s  {r['bytes'] / 2**20:8.2f} MiB"
                             if "error" not in r else f"FAILED: {r['error']}")
                    print(f"  {features:>5} features #{rep + 1} {tool:<9} {shown}", flush=True)
    summary = report(results, sizes)
    if args.json:
        write_json(args.json, {"machine": info, "rows": args.rows, "summary": summary,
                               "runs": results})
    return 0


def report(results: dict[str, dict[str, list[dict[str, Any]]]],
           sizes: list[int]) -> dict[str, Any]:
    print(f"\n{'features':>8}  {'tool':<10} {'seconds':>8} {'MiB':>8}  {'shipyard faster':>15}"
          f"  {'shipyard smaller':>16}")
    summary: dict[str, Any] = {}
    for features in sizes:
        row: dict[str, Any] = {}
        for tool, by_size in results.items():
            ok = [r for r in by_size.get(str(features), []) if "error" not in r]
            if ok:
                row[tool] = {"seconds": statistics.median(r["seconds"] for r in ok),
                             "bytes": statistics.median(r["bytes"] for r in ok)}
        mine = row.get("shipyard")
        for tool, r in row.items():
            faster = smaller = ""
            if mine and tool != "shipyard":
                faster = f"{r['seconds'] / mine['seconds']:.1f}x"
                smaller = f"{r['bytes'] / mine['bytes']:.1f}x"
            print(f"{features:>8}  {tool:<10} {r['seconds']:>8.1f} {r['bytes'] / 2**20:>8.2f}"
                  f"  {faster:>15}  {smaller:>16}")
        if mine and features == 1000:
            print(f"  target: shipyard under {TARGET_SECONDS:g} s: {mine['seconds']:.1f} s "
                  f"{'PASS' if mine['seconds'] < TARGET_SECONDS else 'FAIL'}; under 5 MB: "
                  f"{mine['bytes'] / 2**20:.2f} MiB "
                  f"{'PASS' if mine['bytes'] < TARGET_BYTES else 'FAIL'}")
        summary[str(features)] = row
    return summary


if __name__ == "__main__":
    sys.exit(main())
