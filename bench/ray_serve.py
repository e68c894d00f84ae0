"""Serving on Ray Serve: ``shipyard serve --engine ray`` versus a hand-written Ray Serve
deployment of the same scikit-learn model with ``@serve.batch`` (the anchor), the same
replicas, loaded by ``wrk`` on 127.0.0.1; shipyard's local server beside them for reference.

    .venv/bin/python bench/ray_serve.py                 # 3 s warm-up + 10 s of load per server
    .venv/bin/python bench/ray_serve.py --quick         # 2 s + 5 s
    .venv/bin/python bench/ray_serve.py --replicas 2 --json out.json

The model, the request and the load are ``bench/serving.py``'s (its helpers are reused):
``StandardScaler`` + ``GradientBoostingClassifier`` on 30 features, a single-row JSON POST,
2 wrk threads and 64 connections. Each server runs alone, on a local Ray it starts itself
(``ray.init`` with this machine's CPUs); its whole process tree (Ray's GCS, raylet, Serve
controller, HTTP proxy and replicas) counts in ``srv cores``.

* shipyard on Ray: ``shipyard serve DIR --engine ray --replicas N``, default config (adaptive
  batching 32 rows / 2 ms, validation, prediction log at 100 %, probabilities in every answer),
  through Ray Serve's HTTP proxy; and the same with ``--ray-http direct`` (each replica serves
  HTTP on the port itself, Ray's proxy off);
* anchor: ``bench/_ray_anchor.py``, ``@serve.batch(max_batch_size=32,
  batch_wait_timeout_s=0.002)`` around ``model.predict`` on the joblib file, labels only, no
  validation, no log; the same Ray Serve options (replicas, 256 ongoing requests, access log
  off);
* references: shipyard on Ray with ``inference: thread`` (the model in the replica, no
  inference process), and shipyard's local server (``shipyard serve DIR``, uvicorn, one
  process).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _timing import machine_info, write_json
from serving import (
    ENDPOINT,
    HERE,
    MAX_BATCH_MS,
    MAX_BATCH_SIZE,
    PROJECT_BIN,
    ROOT,
    Bench,
    Outcome,
    Prepared,
    Server,
    bench_server,
    count_logged,
    ensure_wrk,
    fmt_ratio,
    free_port,
    peer_env_vars,
)

TARGET_VS_ANCHOR = 3.0
PEERS = ("shipyard-ray", "shipyard-ray-direct", "shipyard-ray-thread", "anchor",
         "shipyard-local")


def _env(home: Path) -> dict[str, str]:
    """The project venv's environment, this checkout's ``src`` first (Ray's workers inherit
    it), shipyard's home in the run's folder."""
    return peer_env_vars({"SHIPYARD_HOME": str(home), "PYTHONPATH": str(ROOT / "src"),
                          "RAY_USAGE_STATS_ENABLED": "0"}, PROJECT_BIN)


def serve_config(bench: Bench, inference: str) -> list[str]:
    """``shipyard serve``'s model arguments: the package, in a serve.yaml when the inference
    mode is not the default."""
    if inference == "process":
        return [str(bench.shipyard_dir)]
    path = bench.root / f"serve-{inference}.yaml"
    path.write_text(json.dumps({"endpoints": [{"name": ENDPOINT, "model": str(
        bench.shipyard_dir), "inference": inference}]}), encoding="utf-8")
    return ["--config", str(path)]


def servers(bench: Bench, replicas: int, inference: str) -> list[Server]:
    n = str(replicas)
    body = bench.instances_body()
    model = serve_config(bench, inference)

    def shipyard_ray(mode: str = inference, http: str = "proxy") -> Prepared:
        port = free_port()
        cmd = [str(PROJECT_BIN / "shipyard"), "serve", *serve_config(bench, mode), "--engine",
               "ray", "--replicas", n, "--ray-http", http, "--port", str(port)]
        return Prepared(cmd, _env(bench.root / f"home-ray-{mode}-{http}"), bench.root,
                        f"http://127.0.0.1:{port}/v1/endpoints/{ENDPOINT}/predict", body,
                        lambda r: r["predictions"][0], 300)

    def anchor() -> Prepared:
        port = free_port()
        cmd = [sys.executable, str(HERE / "_ray_anchor.py"), "--model",
               str(bench.joblib_path), "--port", str(port), "--replicas", n]
        return Prepared(cmd, _env(bench.root / "home-anchor"), bench.root,
                        f"http://127.0.0.1:{port}/", body, lambda r: r["predictions"][0], 300)

    def shipyard_local() -> Prepared:
        port = free_port()
        cmd = [str(PROJECT_BIN / "shipyard"), "serve", *model, "--port", str(port)]
        return Prepared(cmd, _env(bench.root / "home-local"), bench.root,
                        f"http://127.0.0.1:{port}/v1/endpoints/{ENDPOINT}/predict", body,
                        lambda r: r["predictions"][0], 120)

    return [
        Server("shipyard-ray", "shipyard on Ray, --ray-http proxy", f"--replicas {n}",
               shipyard_ray),
        Server("shipyard-ray-direct", "shipyard on Ray (default: direct)", f"--replicas {n}",
               lambda: shipyard_ray(http="direct")),
        Server("shipyard-ray-thread", "  shipyard on Ray, inference: thread", f"--replicas {n}",
               lambda: shipyard_ray("thread"), primary=False),
        Server("anchor", "Ray Serve + @serve.batch (anchor)", f"num_replicas={n}", anchor),
        Server("shipyard-local", "  shipyard local (uvicorn)", "--workers 1", shipyard_local,
               primary=False),
    ]


def print_table(outcomes: list[Outcome]) -> dict[str, Any]:
    rps = {o.server.key: o.result["rps"] for o in outcomes if o.result}
    anchor = rps.get("anchor")
    headers = ["server", "replicas", "procs", "req/s", "p50 ms", "p99 ms", "non-2xx",
               "sock err", "srv cores", "vs anchor"]
    rows = []
    for o in outcomes:
        r = o.result
        rows.append([o.server.label, o.server.workers] + (["", "", "", "", "", "", "", ""]
                    if not r else [
            str(r["processes"]), f"{r['rps']:.0f}", f"{r['p50_us'] / 1e3:.1f}",
            f"{r['p99_us'] / 1e3:.1f}", str(r["non_2xx"]), str(r["socket_errors"]),
            f"{r['server_cores']:.2f}", fmt_ratio(r["rps"] / anchor) if anchor else "-"]))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for o, row in zip(outcomes, rows, strict=True):
        if not o.result:
            print(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  "
                  f"{o.status.splitlines()[0]}")
        else:
            print("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    ours, direct, local = (rps.get(k) for k in ("shipyard-ray", "shipyard-ray-direct",
                                                  "shipyard-local"))
    ratios = {"shipyard_ray_vs_anchor": ours / anchor if ours and anchor else None,
              "shipyard_ray_direct_vs_anchor": direct / anchor if direct and anchor else None,
              "shipyard_local_vs_ray": local / ours if ours and local else None}
    print()
    for key, label in (("shipyard_ray_vs_anchor", "shipyard on Ray (Ray's proxy)"),
                       ("shipyard_ray_direct_vs_anchor", "shipyard on Ray (default, direct)")):
        vs = ratios[key]
        verdict = "n/a" if vs is None else "met" if vs >= TARGET_VS_ANCHOR else "NOT MET"
        print(f"{label} / anchor: {'-' if vs is None else f'{vs:.2f}x'} (target >= "
              f"{TARGET_VS_ANCHOR:g}x: {verdict})")
    ratio = ratios["shipyard_local_vs_ray"]
    print(f"shipyard local / shipyard on Ray (proxy): {'-' if ratio is None else f'{ratio:.2f}x'}")
    return ratios


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s warm-up + 5 s of load")
    parser.add_argument("--replicas", type=int, default=1, help="replicas of both Ray servers")
    parser.add_argument("--duration", type=float, help="seconds of timed load per server")
    parser.add_argument("--warmup", type=float, help="seconds of untimed load first")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated subset of {','.join(PEERS)}")
    parser.add_argument("--inference", choices=("process", "thread"), default="process",
                        help="shipyard's inference mode (serve.yaml inference:) in the main "
                             "and the local rows")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args(argv)
    args.duration = args.duration or (5.0 if args.quick else 10.0)
    args.warmup = args.warmup or (2.0 if args.quick else 3.0)
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if args.replicas < 1:
        parser.error("--replicas must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import ray

    wrk = ensure_wrk()
    info = machine_info()
    started = time.perf_counter()
    print("Serving on Ray Serve: shipyard vs a hand-written @serve.batch deployment (anchor)")
    print(f"  machine  : {info['cpu_count']} CPUs (affinity {info['affinity']}); wrk shares "
          "them with the server: compare rows within one run")
    print(f"  load     : {args.threads} wrk threads, {args.connections} connections, "
          f"single-row JSON POST, {args.warmup:g} s warm-up + {args.duration:g} s timed")
    print(f"  Ray      : {ray.__version__}, a local Ray per server, {args.replicas} "
          f"replica(s) of 1 CPU, batching {MAX_BATCH_SIZE} rows / {MAX_BATCH_MS:g} ms both; "
          f"shipyard inference: {args.inference}")
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-ray-") as tmp:
        bench = Bench(Path(tmp), 1, {})
        bench.train()
        bench.package_shipyard()
        bench.shipyard_logs = bench.root / f"home-ray-{args.inference}-proxy" / "logs"
        for srv in servers(bench, args.replicas, args.inference):
            if srv.key in args.peers:
                outcomes.append(bench_server(srv, bench, wrk, args))
                if srv.key == "shipyard-ray" and outcomes[-1].result:
                    logged = count_logged(bench)
                    outcomes[-1].result["logged_rows"] = logged
                    print(f"  prediction log: {logged} rows written by the replicas", flush=True)
    print()
    ratios = print_table(outcomes)
    elapsed = time.perf_counter() - started
    print(f"\ntotal wall time {elapsed:.0f} s")
    if args.json:
        write_json(args.json, {
            "machine": info, "ray": ray.__version__, "replicas": args.replicas,
            "config": {"duration_s": args.duration, "warmup_s": args.warmup,
                       "connections": args.connections, "threads": args.threads},
            "servers": [{"key": o.server.key, "label": o.server.label.strip(),
                         "status": o.status, **o.result} for o in outcomes],
            "ratios": ratios, "wall_seconds": elapsed, "pid": os.getpid()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
