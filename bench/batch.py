"""Batch scoring, Parquet to Parquet: shipyard's local engine against the in-process ONNX
Runtime ceiling on the same arrays, a hand-written pandas + scikit-learn loop, and
``mlflow models predict``, side by side in one run, with each one's peak memory.

    .venv/bin/python bench/batch.py                   # 1M and 10M rows, ~10-15 min
    .venv/bin/python bench/batch.py --quick           # 200k rows, 1 repeat, ~2 min
    .venv/bin/python bench/batch.py --sizes 1M --repeats 5 --tools shipyard,ort
    .venv/bin/python bench/batch.py --json out.json

The model is ``serving.py``'s bench model (scikit-learn GradientBoosting, 100 trees, 30
features, with a scaler), packaged by shipyard (ONNX). Inputs are generated here (30 float64
feature columns and an ``id``), written once per size as Parquet in row groups of 64k rows;
nothing is downloaded but the MLflow peer (``bench/.envs/mlflow``, shared with
``registry.py``).

Rows, each a separate process so its peak memory (RSS of the process tree, sampled every
20 ms) is its own:

* **shipyard**: ``shipyard predict PKG --input IN.parquet --output OUT.parquet
  --passthrough id`` (its defaults: every core), timed from start to exit: read, validate,
  predict, write, publish.
* **ort ceiling**: ONNX Runtime on the package's own ``.onnx``, every core, on the arrays
  already in memory (read before the clock starts), in chunks of 65,536 rows, writing
  nothing: what no batch scorer of this model can beat on this machine.
* **pandas + sklearn**: what users write today: ``pd.read_parquet``, ``pipe.predict`` and
  ``predict_proba`` on the frame, the results as columns, ``df.to_parquet``.
* **mlflow**: ``mlflow models predict -m MODEL -i IN.csv -t csv -o OUT.json --env-manager
  local`` on the same rows as CSV (it reads CSV or JSON, not Parquet), with the model saved
  by ``mlflow.sklearn.save_model`` in MLflow's own venv. Only sizes up to ``--mlflow-max``
  (1M): beyond that its whole-file pandas read and JSON output take minutes and GBs.

Targets (issue 15): shipyard at least 80 % of the ORT ceiling's rows/s; at least 5x
MLflow's (the pandas loop is shown as a reference: on this model the ORT ceiling itself is
only ~3-4x it, so no ONNX scorer can be 5x it); shipyard's peak RSS at the largest size
within 20 % of its peak at the smallest (memory stays flat whatever the input size). The
rows are run in turn within each repeat (S O P M, S O P M ...), and the median of the
repeats is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _timing import listed, machine_info, tree_rss, write_json
from serving import ENVS, PROJECT_BIN, Bench, ensure_env, env_versions, peer_envs

TOOLS = ("shipyard", "ort", "pandas", "mlflow")
LABELS = {"shipyard": "shipyard local engine", "ort": "ORT in-process ceiling",
          "pandas": "pandas + scikit-learn", "mlflow": "mlflow models predict"}
TARGET_VS_ORT = 0.80
TARGET_VS_PEERS = 5.0
TARGET_RSS_GROWTH = 0.20
ROW_GROUP = 65_536
FEATURES = 30


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def label_size(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


# --- inputs ---------------------------------------------------------------------------------


def write_input(path: Path, rows: int, seed: int = 1) -> None:
    """``rows`` rows of 30 standard-normal float64 features (``f0``..``f29``, the names the
    package's signature has) and an ``id``, in row groups of ``ROW_GROUP``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(FEATURES)]
    schema = pa.schema([("id", pa.int64()), *((n, pa.float64()) for n in names)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            block = rng.standard_normal((n, FEATURES)) * 2.0
            columns = [pa.array(np.arange(start, start + n, dtype=np.int64)),
                       *(pa.array(block[:, i]) for i in range(FEATURES))]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def write_csv(parquet: Path, csv: Path) -> None:
    """The same rows as CSV, features only (what ``mlflow models predict`` reads)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    source = pq.ParquetFile(parquet)
    names = [f"f{i}" for i in range(FEATURES)]
    with pacsv.CSVWriter(csv, source.schema_arrow.remove(0)) as writer:
        for batch in source.iter_batches(batch_size=ROW_GROUP, columns=names):
            writer.write_batch(batch)


# --- one timed process, with its peak memory ------------------------------------------------


def timed(cmd: list[str], env: dict[str, str] | None = None,
          timeout: float = 3600.0) -> dict[str, Any]:
    """Run ``cmd``; its wall seconds, peak RSS of its tree, exit code and the last JSON
    line it printed (the workers report their own timings that way)."""
    peak = [0]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    reported: dict[str, Any] = {}
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            reported = json.loads(line)
            break
    return {"seconds": seconds, "peak_rss": peak[0], "rc": proc.returncode,
            "reported": reported, "stderr": err.strip()[-600:]}


# --- workers (``--worker NAME``: run in a subprocess of this script) ------------------------


def worker_ort(onnx: Path, parquet: Path) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    import pyarrow.parquet as pq

    names = [f"f{i}" for i in range(FEATURES)]
    table = pq.read_table(parquet, columns=names)
    x = np.column_stack([table.column(n).to_numpy() for n in names])
    del table
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    x = x.astype(np.float32 if feed.type == "tensor(float)" else np.float64)
    session.run(None, {feed.name: x[:1024]})  # warm-up
    started = time.perf_counter()
    labels = []
    for start in range(0, len(x), ROW_GROUP):
        labels.append(session.run(None, {feed.name: x[start:start + ROW_GROUP]})[0])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(x),
            "checksum": int(np.concatenate(labels).astype(np.int64).sum())}


def worker_pandas(joblib_path: Path, parquet: Path, out: Path) -> dict[str, Any]:
    import joblib
    import pandas as pd

    started = time.perf_counter()
    pipe = joblib.load(joblib_path)
    df = pd.read_parquet(parquet)
    features = df[[f"f{i}" for i in range(FEATURES)]].to_numpy()
    df["prediction"] = pipe.predict(features)
    proba = pipe.predict_proba(features)
    for i, name in enumerate(pipe.classes_):
        df[f"proba_{name}"] = proba[:, i]
    df[["id", "prediction", *(f"proba_{n}" for n in pipe.classes_)]].to_parquet(out)
    return {"seconds": time.perf_counter() - started, "rows": len(df),
            "checksum": int(df["prediction"].astype("int64").sum())}


MLFLOW_SAVE = """
import json, sys, joblib, numpy as np, sklearn, mlflow.sklearn
joblib_path, model_dir, x_path, y_path = sys.argv[1:5]
try:
    pipe = joblib.load(joblib_path)
    how = "the bench's joblib file"
except Exception as exc:  # another scikit-learn version: the same model, refitted here
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    pipe = make_pipeline(StandardScaler(), GradientBoostingClassifier(
        n_estimators=100, random_state=0)).fit(np.load(x_path), np.load(y_path))
    how = f"refitted in MLflow's venv ({type(exc).__name__} loading the joblib file)"
try:  # MLflow 3's default format (skops) needs the tree type named as trusted
    mlflow.sklearn.save_model(pipe, model_dir, skops_trusted_types=["sklearn.tree._tree.Tree"])
except TypeError:  # an MLflow before skops
    mlflow.sklearn.save_model(pipe, model_dir)
print(json.dumps({"how": how, "sklearn": sklearn.__version__}))
"""


# --- the run ----------------------------------------------------------------------------------


def run_tool(tool: str, ctx: dict[str, Any], size: int, out_dir: Path) -> dict[str, Any]:
    parquet = ctx["inputs"][size]
    if tool == "shipyard":
        out = out_dir / f"shipyard-{size}.parquet"
        cmd = [str(PROJECT_BIN / "shipyard"), "predict", str(ctx["package"]),
               "--input", str(parquet), "--output", str(out), "--passthrough", "id"]
        env = {**os.environ, "SHIPYARD_HOME": str(ctx["root"] / "home")}
        result = timed(cmd, env)
        result["rows_s"] = size / result["seconds"]
        if result["rc"] == 0:
            result["checksum"] = output_checksum(out)
        return result
    if tool == "ort":
        result = timed([sys.executable, __file__, "--worker", "ort", str(ctx["onnx"]),
                        str(parquet)])
    elif tool == "pandas":
        result = timed([sys.executable, __file__, "--worker", "pandas", str(ctx["joblib"]),
                        str(parquet), str(out_dir / f"pandas-{size}.parquet")])
    else:
        csv = ctx["csv"][size]
        out = out_dir / f"mlflow-{size}.json"
        result = timed([str(ctx["mlflow_bin"] / "mlflow"), "models", "predict", "-m",
                        str(ctx["mlflow_model"]), "-i", str(csv), "-t", "csv", "-o", str(out),
                        "--env-manager", "local"],
                       {**os.environ, "PATH": f"{ctx['mlflow_bin']}:{os.environ['PATH']}"})
        if result["rc"] == 0:
            result["checksum"] = int(sum(json.loads(out.read_text())["predictions"]))
    if tool != "mlflow" and result["rc"] == 0:
        result["checksum"] = result["reported"].get("checksum")
        if tool == "ort":  # inference only: its own clock, not the process's
            result["seconds"] = result["reported"]["seconds"]
    result["rows_s"] = size / result["seconds"]
    return result


def output_checksum(path: Path) -> int | None:
    """Sum of the predicted labels in shipyard's output (a file or a folder of parts)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(path, format="parquet").to_table()
    for name in ("prediction", "label", "predictions"):
        if name in table.column_names:
            return int(pc.sum(table.column(name).cast("int64")).as_py())
    return None


def compile_shipyard() -> None:
    """Byte-compile the shipyard package the CLI imports, as installing a wheel does: with
    an editable install and ``PYTHONDONTWRITEBYTECODE=1`` (set on this project's machines)
    every run compiled shipyard's ~50 modules from source again (~60 ms of its start; the
    peers' packages and the ceiling's are compiled at install)."""
    import compileall

    import shipyard

    compileall.compile_dir(Path(shipyard.__file__).parent, quiet=1)


def prepare(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    import numpy as np
    from sklearn.datasets import make_classification

    compile_shipyard()
    bench = Bench(root, 1, {})
    print("training and packaging the bench model ...", flush=True)
    bench.train()
    bench.package_shipyard()
    ctx: dict[str, Any] = {"root": root, "package": bench.shipyard_dir,
                           "joblib": bench.joblib_path, "inputs": {}, "csv": {},
                           "onnx": next(bench.shipyard_dir.rglob("*.onnx"))}
    for size in args.sizes:
        path = root / f"input-{label_size(size)}.parquet"
        t0 = time.perf_counter()
        write_input(path, size)
        ctx["inputs"][size] = path
        print(f"  input {label_size(size)} rows: {path.stat().st_size / 2**20:.0f} MiB "
              f"Parquet, written in {time.perf_counter() - t0:.1f} s", flush=True)
    if "mlflow" in args.tools:
        spec = peer_envs("")["mlflow"]
        installed = ensure_env(spec, args.reinstall)
        if "error" in installed:
            print(f"  mlflow unavailable: {installed['error']}", flush=True)
            args.tools = [t for t in args.tools if t != "mlflow"]
        else:
            x, y = make_classification(n_samples=20000, n_features=30, n_informative=12,
                                       random_state=0)
            np.save(root / "x.npy", x)
            np.save(root / "y.npy", y)
            ctx["mlflow_bin"] = spec.bin
            ctx["mlflow_model"] = root / "mlflow-model"
            saved = subprocess.run([str(spec.python), "-c", MLFLOW_SAVE, str(bench.joblib_path),
                                    str(ctx["mlflow_model"]), str(root / "x.npy"),
                                    str(root / "y.npy")], capture_output=True, text=True,
                                   check=False)
            if saved.returncode != 0:
                print(f"  mlflow could not save the model: {saved.stderr[-400:]}", flush=True)
                args.tools = [t for t in args.tools if t != "mlflow"]
            else:
                ctx["mlflow_how"] = json.loads(saved.stdout.strip().splitlines()[-1])
                ctx["mlflow_versions"] = env_versions(spec.python, spec.dists)
                for size in args.sizes:
                    if size <= args.mlflow_max:
                        ctx["csv"][size] = root / f"input-{label_size(size)}.csv"
                        write_csv(ctx["inputs"][size], ctx["csv"][size])
    return ctx


def report(results: dict[str, dict[int, list[dict[str, Any]]]],
           args: argparse.Namespace) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    print(f"\n{'size':>5}  {'tool':<24} {'rows/s':>10} {'seconds':>8} {'peak RSS':>9}  "
          f"{'vs shipyard':>11}  runs")
    for size in args.sizes:
        row: dict[str, Any] = {}
        for tool in args.tools:
            runs = [r for r in results.get(tool, {}).get(size, []) if r["rc"] == 0]
            failed = [r for r in results.get(tool, {}).get(size, []) if r["rc"] != 0]
            if failed:
                print(f"  {tool} at {label_size(size)} failed: {failed[0]['stderr']}")
            if not runs:
                continue
            row[tool] = {"rows_s": statistics.median(r["rows_s"] for r in runs),
                         "seconds": statistics.median(r["seconds"] for r in runs),
                         "peak_rss": max(r["peak_rss"] for r in runs),
                         "checksum": runs[0].get("checksum"), "runs": len(runs)}
        mine = row.get("shipyard", {}).get("rows_s")
        for tool, r in row.items():
            vs = "" if mine is None or tool == "shipyard" else f"{mine / r['rows_s']:.2f}x"
            print(f"{label_size(size):>5}  {LABELS[tool]:<24} {r['rows_s']:>10,.0f} "
                  f"{r['seconds']:>8.2f} {r['peak_rss'] / 2**20:>7.0f}Mi  {vs:>11}  "
                  f"{r['runs']}")
        sums = {t: r["checksum"] for t, r in row.items() if r.get("checksum") is not None}
        if len(set(sums.values())) > 1:
            print(f"       predicted-label sums differ: {sums}")
        summary[label_size(size)] = row
    return summary


def judge(summary: dict[str, Any], args: argparse.Namespace) -> None:
    print("\ntargets from issue 15 (medians; shipyard's time is end to end, the ceiling's "
          "inference only):")
    for size, row in summary.items():
        mine = row.get("shipyard")
        if mine is None:
            continue
        if "ort" in row:
            share = mine["rows_s"] / row["ort"]["rows_s"]
            print(f"  {size}: shipyard >= {TARGET_VS_ORT:.0%} of the ORT ceiling  "
                  f"{share:6.0%}  {'PASS' if share >= TARGET_VS_ORT else 'FAIL'}")
        if "mlflow" in row:
            ratio = mine["rows_s"] / row["mlflow"]["rows_s"]
            print(f"  {size}: shipyard >= {TARGET_VS_PEERS:g}x {LABELS['mlflow']:<22} "
                  f"{ratio:6.1f}x  {'PASS' if ratio >= TARGET_VS_PEERS else 'FAIL'}")
        if "pandas" in row:  # the ceiling itself is ~3-4x this loop: a reference, not a target
            print(f"  {size}: shipyard vs {LABELS['pandas']} (reference)   "
                  f"{mine['rows_s'] / row['pandas']['rows_s']:6.1f}x")
    sizes = [s for s in summary if "shipyard" in summary[s]]
    if len(sizes) >= 2:
        small, large = summary[sizes[0]]["shipyard"], summary[sizes[-1]]["shipyard"]
        growth = large["peak_rss"] / small["peak_rss"] - 1
        print(f"  shipyard peak RSS {sizes[-1]} vs {sizes[0]} within "
              f"{TARGET_RSS_GROWTH:.0%}: {growth:+.0%}  "
              f"{'PASS' if abs(growth) <= TARGET_RSS_GROWTH else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--worker":
        name, rest = sys.argv[2], sys.argv[3:]
        out = worker_ort(Path(rest[0]), Path(rest[1])) if name == "ort" else \
            worker_pandas(Path(rest[0]), Path(rest[1]), Path(rest[2]))
        print(json.dumps(out))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k rows, 1 repeat")
    parser.add_argument("--sizes", default=None, help="comma-separated (1M,10M)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per row (3; --quick 1)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"from {','.join(TOOLS)}")
    parser.add_argument("--mlflow-max", default="1M", help="largest size MLflow runs on (1M)")
    parser.add_argument("--reinstall", action="store_true", help="recreate the MLflow venv")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args(argv)
    args.sizes = [parse_size(s) for s in (args.sizes or ("200k" if args.quick else "1M,10M"))
                  .split(",")]
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.tools = listed(parser, "--tools", args.tools, TOOLS)
    args.mlflow_max = parse_size(args.mlflow_max)
    info = machine_info()
    print(f"batch-scoring benchmark: {info['cpu_count']} CPUs (affinity {info['affinity']}), "
          f"{info['platform']}; sizes {', '.join(label_size(s) for s in args.sizes)}, "
          f"{args.repeats} repeat(s), tools {', '.join(args.tools)}", flush=True)
    ENVS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-batch-") as tmp:
        root = Path(tmp)
        ctx = prepare(args, root)
        if "mlflow_how" in ctx:
            print(f"  mlflow model: {ctx['mlflow_how']['how']}; {ctx['mlflow_versions']}")
        results: dict[str, dict[int, list[dict[str, Any]]]] = {}
        out_dir = root / "out"
        out_dir.mkdir()
        for size in args.sizes:
            for rep in range(args.repeats):
                for tool in args.tools:
                    if tool == "mlflow" and size not in ctx["csv"]:
                        continue
                    if tool in ("mlflow", "pandas") and size > args.mlflow_max and rep:
                        continue  # the slow peers once at the large sizes
                    r = run_tool(tool, ctx, size, out_dir)
                    results.setdefault(tool, {}).setdefault(size, []).append(r)
                    print(f"  {label_size(size):>4} #{rep + 1} {tool:<9} "
                          + (f"{r['rows_s']:>10,.0f} rows/s  {r['seconds']:7.2f} s  peak "
                             f"{r['peak_rss'] / 2**20:6.0f} MiB" if r["rc"] == 0
                             else f"FAILED (exit {r['rc']}): {r['stderr'][-300:]}"),
                          flush=True)
                    for stale in out_dir.iterdir():  # outputs are not kept between runs
                        if stale.is_dir():
                            shutil.rmtree(stale)
                        else:
                            stale.unlink()
        summary = report(results, args)
        judge(summary, args)
    if args.json:
        write_json(args.json, {"machine": info, "summary": summary,
                               "runs": {t: {label_size(s): v for s, v in r.items()}
                                        for t, r in results.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
