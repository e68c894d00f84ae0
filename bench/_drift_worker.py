"""One drift report by one tool, in its own process: the worker ``bench/drift.py`` starts.

    python bench/_drift_worker.py --tool {shipyard,evidently,alibi-detect} REFERENCE CURRENT

It runs in the tool's interpreter (shipyard: the project venv; Evidently and alibi-detect: their
venvs under ``bench/.envs/``) and needs only numpy and pyarrow besides the tool. A fresh process
per report keeps the peak-memory figure about that one report, and a crash (out of memory, a
timeout) costs only that report.

Steps, each timed on its own: import the tool; read both Parquet files and convert them into the
input the tool takes (a pandas DataFrame for shipyard and Evidently, a label-encoded float matrix
for alibi-detect); one untimed warm-up report on the first ``--warmup-rows`` rows (lazy imports,
caches); then the timed report, with the process's peak RSS (``VmHWM``) reset just before it so
the peak is the report's, data included. The answer is one JSON line on stdout; everything the
tools print goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the protocol owns the real stdout; anything else printed at fd 1 lands on stderr
_PROTOCOL = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr

Frame = Any  # what a tool takes: a DataFrame, a matrix, ...
Compute = Callable[[Frame, Frame], Any]
Extract = Callable[[Any], dict[str, dict[str, Any]]]


# --- memory -------------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- reading the data ---------------------------------------------------------------------


def read_tables(reference: Path, current: Path) -> tuple[Any, Any, list[str], list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ref, cur = pq.read_table(reference), pq.read_table(current)
    numeric = [f.name for f in ref.schema
               if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)]
    categorical = [f.name for f in ref.schema if f.name not in numeric]
    return ref, cur, numeric, categorical


def to_pandas(table: Any, categorical: list[str]) -> Any:
    """A DataFrame as ``pd.read_parquet`` users hold: categories as plain strings (object)."""
    import pyarrow as pa

    table = table.cast(pa.schema([pa.field(f.name, pa.string()) if f.name in categorical else f
                                  for f in table.schema]))
    df = table.to_pandas()
    for name in categorical:
        df[name] = df[name].astype(object)
    return df


def to_frame(table: Any, categorical: list[str]) -> dict[str, Any]:
    """shipyard's monitoring frame: one numpy array per column, categories as object arrays."""
    import pyarrow as pa

    out: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name)
        if name in categorical:
            out[name] = col.cast(pa.string()).to_numpy(zero_copy_only=False)
        else:
            out[name] = col.to_numpy()
    return out


def to_matrix(ref: Any, cur: Any, numeric: list[str], categorical: list[str]) -> tuple[Any, Any]:
    """alibi-detect's input: a float matrix, numeric columns first, then category codes (one
    vocabulary per column over both sides, so a code means the same category in each)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def encode(table: Any, vocab: dict[str, Any]) -> Any:
        cols = [table.column(n).to_numpy().astype(np.float64) for n in numeric]
        cols += [pc.index_in(table.column(n).cast(pa.string()), value_set=vocab[n])
                 .to_numpy(zero_copy_only=False).astype(np.float64) for n in categorical]
        return np.column_stack(cols)

    vocab = {}
    for name in categorical:
        values = pc.unique(pa.chunked_array(
            ref.column(name).cast(pa.string()).chunks + cur.column(name).cast(pa.string()).chunks))
        vocab[name] = values.take(pc.array_sort_indices(values))  # sorted: stable codes
    return encode(ref, vocab), encode(cur, vocab)


def rows(data: Any) -> int:
    return len(next(iter(data.values()))) if isinstance(data, dict) else len(data)


def head(data: Any, n: int) -> Any:
    if isinstance(data, dict):
        return {k: v[:n] for k, v in data.items()}
    if hasattr(data, "iloc"):
        return data.iloc[:n]
    return data[:n]


# --- the tools ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-safe scalar (numpy scalars, inf/nan as strings), or None."""
    if value is None or isinstance(value, bool | str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        return int(value)
    return number if math.isfinite(number) else str(number)


def setup_shipyard(args: argparse.Namespace, numeric: list[str], categorical: list[str]
                   ) -> tuple[Compute, Extract, dict[str, Any]]:
    from shipyard.monitoring import compare

    def extract(report: Any) -> dict[str, dict[str, Any]]:
        out = {}
        for name, col in report.columns.items():
            out[name] = {key: _plain(getattr(col, key, None)) for key in (
                "kind", "method", "statistic", "p_value", "p_adjusted", "effect_size",
                "effect_name", "threshold")}
            out[name]["drifted"] = bool(col.drifted)
        multi = []
        for m in getattr(report, "multivariate", ()):
            fields = getattr(m, "__dataclass_fields__", {})
            multi.append({k: _plain(getattr(m, k)) for k in fields
                          if isinstance(getattr(m, k), int | float | str | bool | type(None))})
        out["__dataset__"] = {"drifted": bool(report.dataset_drift),
                              "drift_share": _plain(report.drift_share), "multivariate": multi}
        return out

    return compare, extract, {"call": "shipyard.monitoring.compare(reference, current)",
                              "input": args.shipyard_input}


def setup_evidently(args: argparse.Namespace, numeric: list[str], categorical: list[str]
                    ) -> tuple[Compute, Extract, dict[str, Any]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)

    def compute(ref: Any, cur: Any) -> Any:
        report = Report([DataDriftPreset()])
        return report.run(current_data=Dataset.from_pandas(cur, data_definition=definition),
                          reference_data=Dataset.from_pandas(ref, data_definition=definition))

    def extract(snapshot: Any) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if config["type"].endswith(":DriftedColumnsCount"):
                value = metric["value"]
                out["__dataset__"] = {"drift_share": value["share"],
                                      "drifted": value["share"] >= config["drift_share"]}
                continue
            if not config["type"].endswith(":ValueDrift"):
                continue
            score, threshold, method = metric["value"], config["threshold"], config["method"]
            # Evidently's p-value tests flag below the threshold, its distances at or above it
            pvalue = "p_value" in method
            out[config["column"]] = {
                "method": method, "score": _plain(score), "threshold": threshold,
                "drifted": bool(score < threshold if pvalue else score >= threshold)}
        return out

    return compute, extract, {"call": "Report([DataDriftPreset()]).run(current, reference), "
                                      "explicit DataDefinition"}


def setup_alibi(args: argparse.Namespace, numeric: list[str], categorical: list[str]
                ) -> tuple[Compute, Extract, dict[str, Any]]:
    from alibi_detect.cd import TabularDrift

    names = numeric + categorical
    cat_index = {len(numeric) + i: None for i in range(len(categorical))}
    split: dict[str, float] = {}

    def compute(ref: Any, cur: Any) -> Any:
        t0 = time.perf_counter()
        detector = TabularDrift(ref, categories_per_feature=cat_index)
        t1 = time.perf_counter()
        preds = detector.predict(cur)
        split.update(init_s=t1 - t0, predict_s=time.perf_counter() - t1)
        return preds

    def extract(preds: Any) -> dict[str, dict[str, Any]]:
        data = preds["data"]
        threshold = float(data["threshold"])
        out: dict[str, dict[str, Any]] = {
            name: {"method": "chi2" if i >= len(numeric) else "ks", "p_value": _plain(p),
                   "statistic": _plain(d), "threshold": threshold, "drifted": bool(p < threshold)}
            for i, (name, p, d) in enumerate(zip(names, data["p_val"], data["distance"],
                                                 strict=True))}
        out["__dataset__"] = {"drifted": bool(data["is_drift"]), "split": dict(split)}
        return out

    return compute, extract, {"call": "TabularDrift(x_ref, categories_per_feature={cat: None})"
                                      ".predict(x)  [p_val=0.05, Bonferroni, drift_type='batch']"}


SETUPS = {"shipyard": setup_shipyard, "evidently": setup_evidently,
          "alibi-detect": setup_alibi}


# --- main ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"tool": args.tool, "pid": os.getpid()}
    t0 = time.perf_counter()
    ref_t, cur_t, numeric, categorical = read_tables(args.reference, args.current)
    read_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    compute, extract, notes = SETUPS[args.tool](args, numeric, categorical)
    result.update(import_s=time.perf_counter() - t1, notes=notes,
                  rss_imported_mib=mib(_status_kib("VmRSS")))  # the Arrow tables included

    t2 = time.perf_counter()
    if args.tool == "alibi-detect":
        ref, cur = to_matrix(ref_t, cur_t, numeric, categorical)
    elif args.tool == "shipyard" and args.shipyard_input == "frame":
        ref, cur = to_frame(ref_t, categorical), to_frame(cur_t, categorical)
    else:
        ref, cur = to_pandas(ref_t, categorical), to_pandas(cur_t, categorical)
    del ref_t, cur_t
    gc.collect()
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # hand the Arrow buffers back before measuring
    result.update(load_s=read_s + time.perf_counter() - t2, read_s=read_s,
                  rows_reference=rows(ref), rows_current=rows(cur),
                  rss_loaded_mib=mib(_status_kib("VmRSS")))

    if args.warmup_rows > 0:
        t3 = time.perf_counter()
        extract(compute(head(ref, args.warmup_rows), head(cur, args.warmup_rows)))
        result["warmup_s"] = time.perf_counter() - t3

    gc.collect()
    peak_reset = reset_peak()
    t4, cpu = time.perf_counter(), time.process_time()
    report = compute(ref, cur)
    seconds, cpu_s = time.perf_counter() - t4, time.process_time() - cpu
    peak = mib(_status_kib("VmHWM")) if peak_reset else None
    t5 = time.perf_counter()
    columns = extract(report)
    result.update(
        seconds=seconds, cpu_s=cpu_s, extract_s=time.perf_counter() - t5,
        peak_mib=peak if peak is not None else maxrss_mib(),
        peak_is="VmHWM reset before the report" if peak is not None else "ru_maxrss (process)",
        maxrss_mib=maxrss_mib(),
        dataset=columns.pop("__dataset__", {}),
        flagged=sorted(name for name, col in columns.items() if col["drifted"]),
        columns=columns)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", choices=sorted(SETUPS), required=True)
    parser.add_argument("--warmup-rows", type=int, default=2000)
    parser.add_argument("--shipyard-input", choices=("pandas", "frame"), default="pandas")
    parser.add_argument("reference", type=Path)
    parser.add_argument("current", type=Path)
    args = parser.parse_args()
    try:
        reply = {"ok": True, **run(args)}
    except BaseException as exc:  # reported to the driver, which goes on
        traceback.print_exc()
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                 "maxrss_mib": maxrss_mib()}
    _PROTOCOL.write(json.dumps(reply) + "\n")
    _PROTOCOL.flush()
    return 0 if reply["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
