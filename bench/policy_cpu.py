"""Where a traffic policy's cost goes: CPU seconds per 10,000 requests of the server process
and of each inference process, and model calls per request, for one version, a 50/50 sticky
A/B test and a 95/5 canary (the rows of ``rollouts.py``). A split's requests are answered
by its joint inference process (``service/joint.py``), shown as ``joint``; the versions' own
processes (``child N``) then take none.

    .venv/bin/python bench/policy_cpu.py               # 2 rounds of 4 s per row, ~1.5 min
    .venv/bin/python bench/policy_cpu.py --rounds 3 --duration 5

CPU per request (``/proc/PID/stat`` utime + stime, before and after each ``wrk`` run, divided
by the requests it made) does not depend on how busy the shared machine is, where req/s does.
Model calls come from the servers' ``shipyard_batch_size_rows`` histogram (its count per
version: one raw batch is one call here, each request being one row).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from rollouts import ROWS, Served, load, prepare, settle, start
from serving import Bench, ensure_wrk

CALLS = re.compile(r'^shipyard_batch_size_rows_count\{[^}]*version="(\d+)"[^}]*\} (\S+)$', re.M)


def calls(s: Served) -> dict[str, float]:
    """Model calls so far per version (the batch-size histogram's count)."""
    url = s.prep.url.split("/v1/")[0] + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {v: float(n) for v, n in CALLS.findall(text)}


def roles(s: Served) -> dict[int, str]:
    """pid -> "server", "child N" (the versions' inference processes, in start order) or
    "joint" (the process holding every version of a split: one spool per version)."""
    assert s.proc is not None
    tree = sorted(s.proc.tree())
    out, n = {}, 0
    for pid in tree:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if any(b"raw_child" in part or b"runtimes.worker" in part for part in cmd):
            if cmd.count(b"--spool") > 1:
                out[pid] = "joint"
                continue
            n += 1
            out[pid] = f"child {n}"
        elif any(b"shipyard" in part for part in cmd):
            out[pid] = "server"
    return out


def measured(s: Served, wrk: str, args: argparse.Namespace) -> dict[str, Any]:
    assert s.proc is not None
    who = roles(s)
    cpu0, calls0 = s.proc.tree(), calls(s)
    stats = load(s, wrk, args.duration, args)
    cpu1, calls1 = s.proc.tree(), calls(s)
    n = stats["requests"]
    per = defaultdict(float)
    for pid, role in who.items():
        per[role] += (cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0)) / n * 10_000
    made = {v: calls1.get(v, 0) - calls0.get(v, 0) for v in calls1}
    per["wrk"] = stats["wrk_cpu_s"] / n * 10_000
    return {"rps": stats["rps"], "requests": n, "cpu": dict(per),
            "calls_per_request": sum(made.values()) / n,
            "calls": made, "errors": stats["errors"], "p99_ms": stats["p99_us"] / 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    rows = [r for r in ROWS if r.key in ("single", "ab", "canary")]
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-policycpu-") as tmp:
        bench = Bench(Path(tmp), args.workers, {})
        bench.train()
        bench.package_shipyard()
        served = [prepare(bench, row, args) for row in rows]
        results: dict[str, list[dict[str, Any]]] = defaultdict(list)
        try:
            start(served, bench)
            settle(served, args)
            for s in served:
                load(s, wrk, args.warmup, args)
            for _ in range(args.rounds):
                for s in served:
                    results[s.row.key].append(measured(s, wrk, args))
        finally:
            for s in served:
                if s.proc is not None:
                    s.proc.stop()
    print(f"CPU seconds per 10,000 requests (median of {args.rounds} runs of "
          f"{args.duration:g} s), model calls per request")
    for key, runs in results.items():
        roles_ = sorted({r for run in runs for r in run["cpu"]})
        cpu = {r: statistics.median(run["cpu"].get(r, 0.0) for run in runs) for r in roles_}
        total = sum(cpu.values())
        label = next(r.label for r in rows if r.key == key)
        print(f"  {label:<18} total {total:5.2f} s  "
              + "  ".join(f"{r} {c:5.2f}" for r, c in cpu.items())
              + f"  | calls/req {statistics.median(r['calls_per_request'] for r in runs):.3f}"
              f"  req/s {statistics.median(r['rps'] for r in runs):6.0f}"
              f"  p99 {statistics.median(r['p99_ms'] for r in runs):5.1f} ms"
              f"  errors {sum(r['errors'] for r in runs)}"
              f"  calls by version {runs[-1]['calls']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
