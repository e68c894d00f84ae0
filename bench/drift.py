"""Data-drift reports: shipyard versus Evidently's DataDriftPreset and alibi-detect's
TabularDrift, on the same generated data, in one run.

    .venv/bin/python bench/drift.py             # full run: 100k and 1M rows, 3 repeats, ~18-25 min
    .venv/bin/python bench/drift.py --quick     # smoke run: 100k rows, 1 repeat, ~1 min
    .venv/bin/python bench/drift.py --json results.json
    .venv/bin/python bench/drift.py --sizes 1M --repeats 5 --tools shipyard,alibi-detect

The data is generated here (numpy, seeded; nothing is downloaded): a reference and a current
frame of N rows x 50 columns (40 numeric of eight shapes, 10 categorical with 5-20 categories),
with 11 material drifts injected into the current frame (mean shifts of 0.2 sd in 5 numeric
columns, scale x1.2 in 3, reversed category frequencies in 2, a new category at 10 % in 1), two
immaterial ones (a 0.02 sd shift in 2 numeric columns, which must not be called drift) and 37
columns left alone. Both frames are written once to Parquet in a temporary directory.

Each report runs in a fresh process of the tool's own interpreter (``bench/_drift_worker.py``):
shipyard from the project venv, Evidently and alibi-detect from ``bench/.envs/evidently`` and
``bench/.envs/alibi-detect``, which this script creates and pip-installs on first use. Every tool
reads the same files; loading and converting them is timed apart from the report, and the
report's peak RSS is measured in the worker. Tools alternate (in rotating order) repeat by
repeat, so a burst of load from a neighbour does not land on one tool only. Each tool runs with
its defaults for a data-drift report; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from _timing import listed, machine_info, spread, write_json
from serving import PeerEnv, describe_versions, ensure_env, env_versions, fmt_ratio, peer_env_vars

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_drift_worker.py"

SIZES = {"100k": 100_000, "1M": 1_000_000}
TOOLS = ("shipyard", "evidently", "alibi-detect")
LABELS = {"shipyard": "shipyard", "evidently": "Evidently", "alibi-detect": "alibi-detect"}
TARGET_SIZE = "1M"
TARGETS = {"evidently": 30.0, "alibi-detect": 3.0}  # shipyard at least this many times faster

PEERS = {
    "evidently": PeerEnv(
        "evidently",
        # evidently 0.7.23 imports pandas.core.dtypes.common.infer_dtype_from_object, which
        # pandas 3 removed: pin pandas 2 first, fall back to whatever pip picks
        (("evidently, pandas<3, pyarrow", ("evidently", "pandas<3", "pyarrow")),
         ("evidently, pyarrow", ("evidently", "pyarrow"))),
        "import pyarrow; from evidently import DataDefinition, Dataset, Report; "
        "from evidently.presets import DataDriftPreset",
        ("evidently", "pandas", "numpy", "scipy", "pyarrow")),
    "alibi-detect": PeerEnv(
        "alibi-detect",
        # alibi-detect 0.13 pins numpy < 2, which the newest pyarrow refuses at import (the
        # check below catches that): then take pyarrow 21, the last built for numpy 1.x too
        (("alibi-detect, pyarrow", ("alibi-detect", "pyarrow")),
         ("alibi-detect, pyarrow<22", ("alibi-detect", "pyarrow<22"))),
        # TabularDrift is numpy + scipy: it must work without TensorFlow or PyTorch
        "import sys, pyarrow; from alibi_detect.cd import TabularDrift; "
        "assert not {'tensorflow', 'torch'} & set(sys.modules), sorted(sys.modules)",
        ("alibi-detect", "numpy", "scipy", "pandas", "pyarrow")),
}


# --- the data -----------------------------------------------------------------------------

NUMERIC_SHAPES = ("normal", "lognormal", "uniform", "exponential", "gamma", "student-t",
                  "poisson", "bimodal")  # column i has shape i % 8
CATEGORY_COUNTS = (5, 8, 12, 20, 6, 10, 15, 7, 9, 18)
N_NUMERIC = 40


@dataclass(frozen=True)
class Drift:
    """What was done to one column of the current frame."""

    kind: str  # "shift", "scale", "reverse", "new-category"
    amount: float
    material: bool

    def describe(self, column: str) -> str:
        shape = (NUMERIC_SHAPES[int(column[4:]) % 8] if column.startswith("num_")
                 else f"{CATEGORY_COUNTS[int(column[4:])]} categories")
        what = {"shift": f"mean {self.amount:+g} sd", "scale": f"scale x{self.amount:g}",
                "reverse": "reversed frequencies",
                "new-category": f"new category at {self.amount:.0%}"}[self.kind]
        return f"{what} ({shape})"


INJECTED: dict[str, Drift] = {
    "num_00": Drift("shift", 0.2, True), "num_01": Drift("shift", 0.2, True),
    "num_04": Drift("shift", 0.2, True), "num_10": Drift("shift", -0.2, True),
    "num_15": Drift("shift", -0.2, True),
    "num_08": Drift("scale", 1.2, True), "num_11": Drift("scale", 1.2, True),
    "num_18": Drift("scale", 1.2, True),
    "cat_0": Drift("reverse", 0, True), "cat_3": Drift("reverse", 0, True),
    "cat_6": Drift("new-category", 0.1, True),
    "num_16": Drift("shift", 0.02, False), "num_25": Drift("shift", 0.02, False),
}
MATERIAL = frozenset(c for c, d in INJECTED.items() if d.material)
IMMATERIAL = frozenset(c for c, d in INJECTED.items() if not d.material)


def numeric_column(rng: np.random.Generator, shape: str, n: int) -> np.ndarray:
    if shape == "normal":
        return rng.normal(10.0, 3.0, n)
    if shape == "lognormal":
        return rng.lognormal(3.0, 0.5, n)
    if shape == "uniform":
        return rng.uniform(0.0, 100.0, n)
    if shape == "exponential":
        return rng.exponential(2.0, n)
    if shape == "gamma":
        return rng.gamma(2.0, 1.5, n)
    if shape == "student-t":
        return 50.0 + 2.0 * rng.standard_t(5, n)
    if shape == "poisson":
        return rng.poisson(20.0, n).astype(np.int64)
    left = rng.random(n) < 0.4
    return np.where(left, rng.normal(-2.0, 1.0, n), rng.normal(3.0, 1.5, n))


def category_probabilities(k: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1)  # Zipf-like: reversing the order is a real change
    return weights / weights.sum()


def make_table(n: int, seed: int, current: bool) -> Any:
    import pyarrow as pa

    rng = np.random.default_rng([seed, n, int(current)])
    columns: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        values = numeric_column(rng, NUMERIC_SHAPES[i % 8], n)
        drift = INJECTED.get(name) if current else None
        if drift is not None and drift.kind == "shift":
            values = values + drift.amount * values.std()
        elif drift is not None and drift.kind == "scale":
            values = values.mean() + drift.amount * (values - values.mean())
        columns[name] = values
    for j, k in enumerate(CATEGORY_COUNTS):
        name = f"cat_{j}"
        drift = INJECTED.get(name) if current else None
        probs = category_probabilities(k)
        labels = [f"v{v:02d}" for v in range(k)]
        if drift is not None and drift.kind == "reverse":
            probs = probs[::-1]
        elif drift is not None and drift.kind == "new-category":
            probs = np.append(probs * (1 - drift.amount), drift.amount)
            labels.append("new")
        codes = rng.choice(len(probs), size=n, p=probs).astype(np.int8)
        columns[name] = pa.DictionaryArray.from_arrays(codes, pa.array(labels))
    return pa.table(columns)


def write_data(root: Path, sizes: list[str], seed: int) -> dict[str, dict[str, Any]]:
    import pyarrow.parquet as pq

    out = {}
    for size in sizes:
        t0 = time.perf_counter()
        paths = {}
        for side in ("reference", "current"):
            path = root / f"{size}-{side}.parquet"
            pq.write_table(make_table(SIZES[size], seed, side == "current"), path)
            paths[side] = path
        out[size] = {**paths, "seconds": time.perf_counter() - t0,
                     "mib": sum(p.stat().st_size for p in paths.values()) / 2**20}
        print(f"data {size}: {SIZES[size]:,} rows x 50 columns, reference + current written in "
              f"{out[size]['seconds']:.1f} s ({out[size]['mib']:.0f} MiB of Parquet)", flush=True)
    return out


# --- running the workers ------------------------------------------------------------------


@dataclass
class Runs:
    """One tool's reports at one size."""

    tool: str
    size: str
    results: list[dict[str, Any]] = field(default_factory=list)  # every attempt, ok or not

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("ok")]

    @property
    def seconds(self) -> list[float]:
        return [r["seconds"] for r in self.ok]

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.ok else None

    def med(self, key: str) -> float | None:
        values = [r[key] for r in self.ok if r.get(key) is not None]
        return statistics.median(values) if values else None

    @property
    def flagged(self) -> set[str]:
        return set(self.ok[0]["flagged"]) if self.ok else set()

    @property
    def consistent(self) -> bool:
        return all(set(r["flagged"]) == self.flagged for r in self.ok)

    @property
    def error(self) -> str | None:
        failed = [r for r in self.results if not r.get("ok")]
        return failed[-1]["error"] if failed else None


def python_for(tool: str) -> Path:
    return Path(sys.executable) if tool == "shipyard" else PEERS[tool].python


def run_worker(tool: str, data: dict[str, Any], args: argparse.Namespace, log: Path
               ) -> dict[str, Any]:
    cmd = [str(python_for(tool)), str(WORKER), "--tool", tool,
           "--warmup-rows", str(args.warmup_rows), "--shipyard-input", args.shipyard_input,
           str(data["reference"]), str(data["current"])]
    env = peer_env_vars()
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                encoding="utf-8", env=env, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker's own session: it and its children
            proc.communicate()
            return {"ok": False, "error": f"timed out after {args.timeout:.0f} s",
                    "fatal": True, "wall_s": time.perf_counter() - started}
    wall = time.perf_counter() - started
    tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
    lines = out.strip().splitlines()
    if not lines:
        how = (f"killed by signal {-proc.returncode}"
               + (" (out of memory?)" if proc.returncode == -signal.SIGKILL else "")
               if proc.returncode < 0 else f"exited with status {proc.returncode}")
        return {"ok": False, "error": f"worker {how} without an answer", "fatal": True,
                "wall_s": wall, "stderr_tail": tail}
    reply: dict[str, Any] = json.loads(lines[-1])
    reply["wall_s"] = wall
    if not reply["ok"]:
        reply["stderr_tail"] = tail
        reply["fatal"] = "MemoryError" in reply["error"]
    return reply


def run_all(args: argparse.Namespace, data: dict[str, dict[str, Any]], tools: list[str],
            root: Path) -> dict[tuple[str, str], Runs]:
    runs = {(t, s): Runs(t, s) for s in args.sizes for t in tools}
    for size in args.sizes:
        print(f"{size} rows: {args.repeats} repeat(s) of {', '.join(LABELS[t] for t in tools)}",
              flush=True)
        for rep in range(args.repeats):
            shift = rep % len(tools)
            for tool in tools[shift:] + tools[:shift]:  # rotate who goes first
                series = runs[(tool, size)]
                if any(r.get("fatal") for r in series.results):
                    continue  # a timeout or out-of-memory once is enough
                result = run_worker(tool, data[size], args, root / f"{tool}-{size}-{rep}.log")
                series.results.append(result)
                if result["ok"]:
                    print(f"  {LABELS[tool]:<12} {result['seconds']:8.2f} s  (load "
                          f"{result['load_s']:.1f} s, peak {result['peak_mib']:.0f} MiB, "
                          f"{len(result['flagged'])} columns flagged)", flush=True)
                else:
                    print(f"  {LABELS[tool]:<12} FAILED: {result['error']}", flush=True)
                    for line in result.get("stderr_tail", [])[-6:]:
                        print(f"    | {line}", flush=True)
    return runs


# --- reporting ----------------------------------------------------------------------------


def score(flagged: set[str]) -> dict[str, list[str]]:
    return {"found": sorted(flagged & MATERIAL), "missed": sorted(MATERIAL - flagged),
            "immaterial_flagged": sorted(flagged & IMMATERIAL),
            "undrifted_flagged": sorted(flagged - MATERIAL - IMMATERIAL)}


def summarise(runs: dict[tuple[str, str], Runs], tools: list[str], size: str
              ) -> dict[str, dict[str, Any]]:
    base = runs.get(("shipyard", size))
    base_median = base.median if base is not None else None
    out = {}
    for tool in tools:
        r = runs[(tool, size)]
        row: dict[str, Any] = {"ok_runs": len(r.ok), "attempts": len(r.results),
                               "error": r.error}
        if r.ok:
            row.update(seconds_median=r.median, seconds=r.seconds, spread=spread(r.seconds),
                       cpu_s_median=r.med("cpu_s"), load_s_median=r.med("load_s"),
                       peak_mib_median=r.med("peak_mib"),
                       peak_mib_max=max(x["peak_mib"] for x in r.ok),
                       loaded_mib_median=r.med("rss_loaded_mib"),
                       vs_shipyard=(r.median / base_median  # type: ignore[operator]
                                    if base_median else None),
                       dataset_drift=r.ok[0].get("dataset", {}).get("drifted"),
                       flagged=sorted(r.flagged), consistent=r.consistent, **score(r.flagged))
        out[tool] = row
    return out


def print_table(size: str, summary: dict[str, dict[str, Any]]) -> None:
    headers = ["tool", "report s", "noise", "vs shipyard", "cpu s", "load s", "loaded MiB",
               "peak MiB", "found", "false alarms", "dataset drift"]
    rows = []
    for tool, s in summary.items():
        if not s["ok_runs"]:
            rows.append([LABELS[tool], f"FAILED: {s['error']}"])
            continue
        false = len(s["immaterial_flagged"]) + len(s["undrifted_flagged"])
        rows.append([
            LABELS[tool], f"{s['seconds_median']:.2f}", f"{s['spread']:.0%}",
            fmt_ratio(s["vs_shipyard"]),
            "-" if s["cpu_s_median"] is None else f"{s['cpu_s_median']:.2f}",
            f"{s['load_s_median']:.1f}",
            f"{s['loaded_mib_median']:.0f}", f"{s['peak_mib_median']:.0f}",
            f"{len(s['found'])}/{len(MATERIAL)}",
            f"{false} ({len(s['immaterial_flagged'])} immat., "
            f"{len(s['undrifted_flagged'])} undrifted)",
            "yes" if s["dataset_drift"] else "no"])
    full = [r for r in rows if len(r) == len(headers)]
    widths = [max(len(h), *(len(r[i]) for r in full)) if full else len(h)
              for i, h in enumerate(headers)]
    right = {1, 2, 3, 4, 5, 6, 7, 8}

    def line(cells: list[str]) -> str:
        if len(cells) < len(headers):
            return f"{cells[0]:<{widths[0]}}  {cells[1]}"
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(f"\n{size} rows x 50 columns (reference and current each)")
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for cells in rows:
        print(line(cells))
    for tool, s in summary.items():
        if not s["ok_runs"]:
            continue
        notes = []
        if s["missed"]:
            notes.append("missed " + ", ".join(f"{c} [{INJECTED[c].describe(c)}]"
                                               for c in s["missed"]))
        if s["immaterial_flagged"]:
            notes.append("flagged immaterial " + ", ".join(s["immaterial_flagged"]))
        if s["undrifted_flagged"]:
            notes.append("flagged undrifted " + ", ".join(s["undrifted_flagged"]))
        if not s["consistent"]:
            notes.append("flagged columns differ between repeats")
        if s["error"]:
            notes.append(f"{s['attempts'] - s['ok_runs']} failed attempt(s): {s['error']}")
        if notes:
            print(f"  {LABELS[tool]}: " + "; ".join(notes))


def column_detail(runs: dict[tuple[str, str], Runs], size: str, columns: list[str]) -> None:
    """shipyard's numbers for the columns it got wrong, for whoever tunes its defaults."""
    r = runs.get(("shipyard", size))
    if r is None or not r.ok or not columns:
        return
    for name in columns:
        col = r.ok[0]["columns"].get(name, {})
        what = INJECTED[name].describe(name) if name in INJECTED else "undrifted"
        print(f"    {name} [{what}]: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float)
                                                   else f"{k}={v}" for k, v in col.items()))


def print_targets(summary: dict[str, dict[str, Any]], size: str) -> dict[str, Any]:
    print(f"\ntargets (issue 5) at {size} rows:")
    ours = summary.get("shipyard", {})
    checks: dict[str, Any] = {}
    for tool, target in TARGETS.items():
        ratio = summary.get(tool, {}).get("vs_shipyard")
        met = ratio is not None and ratio >= target
        checks[f"vs_{tool}"] = {"ratio": ratio, "target": target, "met": met}
        left = f"shipyard >= {target:g}x faster than {LABELS[tool]}"
        print(f"  {left:<41}: {fmt_ratio(ratio)}  {'met' if met else 'NOT met'}")
    found = len(ours.get("found", [])) if ours.get("ok_runs") else None
    false = (len(ours["immaterial_flagged"]) + len(ours["undrifted_flagged"])
             if ours.get("ok_runs") else None)
    checks["material_found"] = {"found": found, "of": len(MATERIAL),
                                "met": found == len(MATERIAL)}
    checks["false_alarms"] = {"count": false, "met": false == 0}
    print(f"  {'every material drift found':<41}: "
          f"{'-' if found is None else found}/{len(MATERIAL)}  "
          f"{'met' if found == len(MATERIAL) else 'NOT met'}")
    print(f"  {'no false alarm':<41}: {'-' if false is None else false}  "
          f"{'met' if false == 0 else 'NOT met'}")
    checks["all_met"] = all(c["met"] for c in checks.values())
    print(f"  => {'all targets met' if checks['all_met'] else 'targets NOT all met'}")
    return checks


def print_matrix(runs: dict[tuple[str, str], Runs], tools: list[str], sizes: list[str]
                 ) -> None:
    print("\ninjected drifts: who flagged them (x = flagged, . = not, - = no result)")
    heads = [f"{LABELS[t]} {s}" for s in sizes for t in tools]
    width = max(len(c) + len(INJECTED[c].describe(c)) + 3 for c in INJECTED)
    print(f"  {'column':<{width}}  " + "  ".join(heads))
    for name, drift in sorted(INJECTED.items(), key=lambda kv: (not kv[1].material, kv[0])):
        cells = []
        for size in sizes:
            for tool in tools:
                r = runs[(tool, size)]
                mark = "-" if not r.ok else ("x" if name in r.flagged else ".")
                cells.append(mark.center(len(f"{LABELS[tool]} {size}")))
        label = f"{name} {drift.describe(name)}" + ("" if drift.material else " *")
        print(f"  {label:<{width}}  " + "  ".join(cells))
    print("  * immaterial: must not be flagged")


def git_commit() -> str | None:
    """The commit shipyard's code comes from (``-dirty``: with uncommitted changes)."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE.parent,
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def print_header(info: dict[str, Any], versions: dict[str, dict[str, str]],
                 installs: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print("Data-drift benchmark: shipyard vs Evidently DataDriftPreset vs alibi-detect "
          "TabularDrift")
    print(f"  machine     : {info['cpu_count']} CPUs (affinity {info['affinity']}), "
          f"{info['platform']}")
    for tool, v in versions.items():
        where = (f"project venv, git {git_commit()}" if tool == "shipyard"
                 else f"bench/.envs/{tool}")
        inst = installs.get(tool, {})
        how = ("" if tool == "shipyard" else
               f", {inst.get('distribution', '?')}, "
               + ("installed by this run" if inst.get("installed_now")
                  else f"installed {inst.get('installed_at', '?')}"))
        print(f"  {LABELS[tool]:<12}: {describe_versions(v)} ({where}{how})")
    print(f"  method      : sizes {', '.join(args.sizes)}; {args.repeats} repeat(s), tools "
          "interleaved in rotating order; one fresh worker process per report;")
    print(f"                untimed warm-up on the first {args.warmup_rows} rows; timeout "
          f"{args.timeout:.0f} s per report; shipyard input: {args.shipyard_input}")
    print(flush=True)


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows only, 1 repeat")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--sizes", help="comma-separated subset of 100k,1M (default both)")
    parser.add_argument("--repeats", type=int, help="reports per tool and size (default 3)")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"comma-separated subset of {','.join(TOOLS)}")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds one report may take, loading included (default 1200)")
    parser.add_argument("--warmup-rows", type=int, default=2000,
                        help="rows of the untimed warm-up report (0: none)")
    parser.add_argument("--shipyard-input", choices=("pandas", "frame"), default="pandas",
                        help="shipyard reads a pandas DataFrame (default, as Evidently) or its "
                             "monitoring frame, a dict of numpy arrays")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--reinstall", action="store_true",
                        help="recreate the peers' venvs under bench/.envs/")
    args = parser.parse_args(argv)
    args.sizes = (listed(parser, "--sizes", args.sizes, list(SIZES)) if args.sizes
                  else ["100k"] if args.quick else list(SIZES))
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.tools = listed(parser, "--tools", args.tools, list(TOOLS))
    if args.repeats < 1 or args.timeout <= 0:
        parser.error("--repeats must be >= 1 and --timeout > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    installs = {t: ensure_env(PEERS[t], args.reinstall) for t in args.tools if t in PEERS}
    tools = [t for t in args.tools if "error" not in installs.get(t, {})]
    started = time.perf_counter()  # the wall time reported excludes first-run installs
    info = machine_info()
    versions = {t: (env_versions(python_for(t), PEERS[t].dists) if t in PEERS
                    else env_versions(Path(sys.executable), ("shipyard", "numpy", "scipy",
                                                             "datasketches", "pandas",
                                                             "pyarrow")))
                for t in tools}
    print_header(info, versions, installs, args)
    for tool, inst in installs.items():
        if "error" in inst:
            print(f"{LABELS[tool]} unavailable: {inst['error']}")

    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-drift-") as tmp:
        root = Path(tmp)
        data = write_data(root, args.sizes, args.seed)
        runs = run_all(args, data, tools, root)
    for size in args.sizes:
        summaries[size] = summarise(runs, tools, size)
        print_table(size, summaries[size])
        ours = summaries[size].get("shipyard", {})
        wrong = (ours.get("missed", []) + ours.get("immaterial_flagged", [])
                 + ours.get("undrifted_flagged", []))
        if wrong:
            print("  shipyard's figures for those columns:")
            column_detail(runs, size, wrong)
    print("\nreport s: median seconds of the report alone (data already in memory); noise: "
          "IQR / median of the repeats;")
    print("vs shipyard: the tool's median / shipyard's (> 1: shipyard is faster); cpu s: "
          "median CPU seconds of the report (all threads; on a busy machine wall > cpu);")
    print("load s: reading the Parquet files and converting them to the tool's input;")
    print("loaded MiB: the worker's RSS once the data is in memory; peak MiB: its peak RSS "
          "during the report (data included); found: material drifts flagged;")
    print("false alarms: immaterial (0.02 sd) or undrifted columns flagged; dataset drift: the "
          "tool's own dataset-level verdict.")
    print_matrix(runs, tools, args.sizes)
    size = TARGET_SIZE if TARGET_SIZE in args.sizes else args.sizes[-1]
    if size != TARGET_SIZE:
        print(f"\n(the targets are for {TARGET_SIZE} rows; this run has {size} only: "
              "shown for information)")
    targets = print_targets(summaries[size], size)
    elapsed = time.perf_counter() - started
    if any(i.get("installed_now") for i in installs.values()):
        print(f"\ntotal wall time {elapsed:.0f} s (peer installs not included)")
    else:
        print(f"\ntotal wall time {elapsed:.0f} s")
    if args.json:
        payload = {
            "machine": info, "python": platform.python_version(), "versions": versions,
            "shipyard_commit": git_commit(),
            "installs": installs,
            "config": {"quick": args.quick, "sizes": args.sizes, "repeats": args.repeats,
                       "tools": tools, "timeout_s": args.timeout,
                       "warmup_rows": args.warmup_rows, "shipyard_input": args.shipyard_input,
                       "seed": args.seed},
            "data": {"sizes": {s: {"rows": SIZES[s], "seconds": d["seconds"], "mib": d["mib"]}
                               for s, d in data.items()},
                     "numeric_shapes": {f"num_{i:02d}": NUMERIC_SHAPES[i % 8]
                                        for i in range(N_NUMERIC)},
                     "category_counts": {f"cat_{j}": k for j, k in enumerate(CATEGORY_COUNTS)},
                     "injected": {c: {"drift": d.describe(c), "material": d.material}
                                  for c, d in INJECTED.items()}},
            "summary": summaries, "targets": {"size": size, **targets},
            "runs": [{"tool": r.tool, "size": r.size, "results": r.results}
                     for r in runs.values()],
            "wall_seconds": elapsed,
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
