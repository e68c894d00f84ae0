"""Load generators from one core: ``shipyard loadtest`` versus Locust, against the same
``shipyard serve``, side by side in one run.

    .venv/bin/python bench/loadtest.py              # 4 rounds x 10 s per generator, ~5 min
    .venv/bin/python bench/loadtest.py --quick      # 2 rounds x 4 s
    .venv/bin/python bench/loadtest.py --concurrency 64 --open-rate 4000 --json out.json
    .venv/bin/python bench/loadtest.py --reinstall  # recreate Locust's environment

The server is ``bench/serving.py``'s model (a 30-feature gradient boosting pipeline as ONNX)
under ``shipyard serve`` on 127.0.0.1, pinned to CPU 0 (``taskset``); each generator runs
pinned to CPU 1, one at a time, closed loop with ``--concurrency`` clients sending the same
requests (the package's reference rows, one per request, in turn):

* ``shipyard loadtest URL --model PKG --concurrency C`` (this checkout's, as a command);
* Locust, headless, ``-u C`` users of ``FastHttpUser`` (geventhttpclient) and of
  ``HttpUser`` (requests), no wait between tasks, from ``bench/.envs/locust`` (created on
  first use with the newest Locust from PyPI; never installed into the project venv);
* ``shipyard loadtest --rate R``: the open loop at a fixed rate, for its latency (from each
  request's due time).

Rounds rotate the order. Each generator's rate is what it counted answered over its
duration; the ratio shipyard/Locust is taken within each round and its median reported. While
each runs, the script samples the CPU seconds of the generator and of the server (their
process trees) and reports, over the middle of the run, the generator's share of its core
and the server's: a generator near 100 % is what limits the rate; one well under it is
waiting for the server, and then ``req/s per generator CPU-second`` (rate / CPU share) is
what it could send from a whole core.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's shipyard

from _timing import machine_info, write_json
from serving import (
    ENDPOINT,
    PROJECT_BIN,
    ROOT,
    Bench,
    PeerEnv,
    Prepared,
    ServerProcess,
    UnavailableError,
    ensure_env,
    env_versions,
    free_port,
    peer_env_vars,
    process_tree,
    wait_ready,
)

LOCUST = PeerEnv("locust", (("locust", ("locust",)),), "import locust",
                 ("locust", "gevent", "geventhttpclient", "requests"))
GENERATORS = ("shipyard", "locust-fast", "locust-http", "shipyard-open")
LABELS = {"shipyard": "shipyard loadtest --concurrency", "locust-fast": "Locust FastHttpUser",
          "locust-http": "Locust HttpUser", "shipyard-open": "shipyard loadtest --rate"}

LOCUSTFILE = '''
import itertools, os
from locust import FastHttpUser, HttpUser, task

BODIES = open(os.environ["BENCH_BODIES"], "rb").read().splitlines()
PATH = os.environ["BENCH_PATH"]
HEADERS = {"Content-Type": "application/json"}
TURN = itertools.count()


class Fast(FastHttpUser):
    @task
    def predict(self):
        self.client.post(PATH, data=BODIES[next(TURN) % len(BODIES)], headers=HEADERS)


class Plain(HttpUser):
    @task
    def predict(self):
        self.client.post(PATH, data=BODIES[next(TURN) % len(BODIES)], headers=HEADERS)
'''


class Sampler:
    """CPU seconds of two process trees every 0.1 s, in a thread, while one runs."""

    def __init__(self, generator: int, server: int) -> None:
        self.samples: list[tuple[float, float, float]] = []
        self._pids = (generator, server)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            gen, srv = (sum(process_tree(pid).values()) for pid in self._pids)
            self.samples.append((time.perf_counter(), gen, srv))
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def shares(self, duration: float) -> tuple[float, float]:
        """(generator, server) CPU share of one core over the run's middle: from 0.8 to 0.2
        of ``duration`` before the generator's last sample (start-up and exit left out)."""
        end = self.samples[-1][0]
        inside = [s for s in self.samples if end - 0.8 * duration <= s[0] <= end - 0.2 * duration]
        if len(inside) < 2:
            return float("nan"), float("nan")
        (t0, g0, s0), (t1, g1, s1) = inside[0], inside[-1]
        return (g1 - g0) / (t1 - t0), (s1 - s0) / (t1 - t0)


def pinned(cpu: int | None, cmd: list[str]) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def run_generator(cmd: list[str], env: dict[str, str], cwd: Path, server: ServerProcess,
                  duration: float, log: Path) -> tuple[str, float, float]:
    """Run one generator to its end; (its stdout, its CPU share, the server's)."""
    with log.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err,
                                text=True)
        sampler = Sampler(proc.pid, server.proc.pid)
        try:
            out, _ = proc.communicate(timeout=duration + 120)
        finally:
            sampler.stop()
    if proc.returncode not in (0, 1):  # Locust exits 1 when any request failed: read on
        raise UnavailableError(f"{cmd[:4]} exited {proc.returncode}: "
                               f"{log.read_text(encoding='utf-8')[-800:]}")
    gen, srv = sampler.shares(duration)
    return out, gen, srv


def shipyard_run(url: str, package: Path, flag: list[str], duration: float, cpu: int | None,
                 root: Path, server: ServerProcess, name: str) -> dict[str, Any]:
    cmd = pinned(cpu, [str(PROJECT_BIN / "shipyard"), "loadtest", url, "--model", str(package),
                       *flag, "--duration", f"{duration:g}s", "--json"])
    env = peer_env_vars({"PYTHONPATH": str(ROOT / "src"), "SHIPYARD_HOME": str(root / "lt")},
                        PROJECT_BIN)
    out, gen, srv = run_generator(cmd, env, root, server, duration, root / f"{name}.log")
    (step,) = json.loads(out)["steps"]
    return {"rate": step["achieved_rate"], "answered": step["answered"],
            "errors": step["errors"] + step["dropped"], "gen_cpu": gen, "server_cpu": srv,
            "latency_ms": step["latency_ms"]}


def locust_run(user: str, base: str, concurrency: int, duration: float, cpu: int | None,
               root: Path, server: ServerProcess, bodies: Path, name: str) -> dict[str, Any]:
    prefix = root / f"{name}-{time.monotonic_ns()}"
    cmd = pinned(cpu, [str(LOCUST.bin / "locust"), "-f", str(root / "locustfile.py"), user,
                       "--headless", "-u", str(concurrency), "-r", "100000",
                       "-t", f"{duration:g}s", "--stop-timeout", "0", "-H", base,
                       "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"])
    env = peer_env_vars({"BENCH_BODIES": str(bodies),
                         "BENCH_PATH": f"/v1/endpoints/{ENDPOINT}/predict"}, LOCUST.bin)
    _, gen, srv = run_generator(cmd, env, root, server, duration, root / f"{name}.log")
    with Path(f"{prefix}_stats.csv").open(encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    count = int(row["Request Count"])
    return {"rate": count / duration, "answered": count, "errors": int(row["Failure Count"]),
            "gen_cpu": gen, "server_cpu": srv,
            "latency_ms": {f"p{p}": float(row[f"{p}%"]) for p in ("50", "90", "99", "99.9")}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds x 4 s")
    parser.add_argument("--rounds", type=int, help="rounds, each running every generator (4)")
    parser.add_argument("--duration", type=float, help="seconds of load per generator (10)")
    parser.add_argument("--concurrency", type=int, default=32, help="clients / users (32)")
    parser.add_argument("--open-rate", type=float, default=2000.0,
                        help="shipyard's open loop: requests a second (2000)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--reinstall", action="store_true", help="recreate Locust's venv")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 4)
    args.duration = args.duration or (4.0 if args.quick else 10.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    installed = ensure_env(LOCUST, args.reinstall)
    if "error" in installed:
        raise SystemExit(f"Locust: {installed['error']}")
    versions = env_versions(LOCUST.python, LOCUST.dists)
    info = machine_info()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, gen_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    load_before = os.getloadavg()
    print("load generators from one core: shipyard loadtest versus Locust")
    print(f"  machine : {info['cpu_count']} CPUs; server on CPU {server_cpu}, each generator "
          f"on CPU {gen_cpu} (taskset); load average {load_before[0]:.2f} before the run")
    print(f"  Locust  : {versions}")
    print(f"  load    : closed loop, {args.concurrency} clients; open loop at "
          f"{args.open_rate:g}/s; {args.rounds} rounds x {args.duration:g} s, rotated order")
    from shipyard.loadtest import reference_bodies

    results: dict[str, list[dict[str, Any]]] = {g: [] for g in GENERATORS}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-lt-") as tmp:
        root = Path(tmp)
        bench = Bench(root, 1, {})
        bench.train()
        bench.package_shipyard()
        bodies = root / "bodies.jsonl"
        bodies.write_bytes(b"\n".join(reference_bodies(str(bench.shipyard_dir))) + b"\n")
        (root / "locustfile.py").write_text(LOCUSTFILE, encoding="utf-8")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/v1/endpoints/{ENDPOINT}/predict"
        cmd = pinned(server_cpu, [str(PROJECT_BIN / "shipyard"), "serve",
                                  str(bench.shipyard_dir), "--port", str(port), "--workers", "1"])
        env = peer_env_vars({"SHIPYARD_HOME": str(root / "home"), "SHIPYARD_ORT_THREADS": "1",
                             "PYTHONPATH": str(ROOT / "src")}, PROJECT_BIN)
        server = ServerProcess(cmd, env, root, root / "serve.log")
        try:
            wait_ready(server, Prepared(cmd, env, root, url, bench.instances_body(), None))

            def one(g: str, seconds: float) -> dict[str, Any]:
                if g.startswith("shipyard"):
                    flag = (["--concurrency", str(args.concurrency)] if g == "shipyard"
                            else ["--rate", f"{args.open_rate:g}"])
                    return shipyard_run(url, bench.shipyard_dir, flag, seconds, gen_cpu, root,
                                        server, g)
                user = "Fast" if g == "locust-fast" else "Plain"
                return locust_run(user, base, args.concurrency, seconds, gen_cpu, root,
                                  server, bodies, g)

            for g in GENERATORS:  # warm-up: imports cached, server's paths warm
                one(g, 2.0)
            for r in range(args.rounds):
                order = GENERATORS[r % len(GENERATORS):] + GENERATORS[:r % len(GENERATORS)]
                line = []
                for g in order:
                    got = one(g, args.duration)
                    results[g].append(got)
                    line.append(f"{g} {got['rate']:.0f} (gen {got['gen_cpu']:.0%})")
                print(f"  round {r + 1}: " + ", ".join(line) + " req/s", flush=True)
        finally:
            server.stop()
    load_after = os.getloadavg()
    summary = report(results, args)
    print(f"load average: {load_before[0]:.2f} before, {load_after[0]:.2f} after "
          f"(1-minute); server on one core, so compare within this run only")
    if args.json:
        write_json(args.json, {"machine": info, "locust": versions, "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "load_average": [load_before, load_after], "runs": results, "summary": summary,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return 0 if summary["met"] else 1


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace
           ) -> dict[str, Any]:
    med = statistics.median
    print(f"\n{'generator (one core)':<36} {'req/s':>7} {'gen CPU':>8} {'server CPU':>10} "
          f"{'req/s per gen CPU-s':>19} {'errors':>6}  p50 / p90 / p99 / p99.9 ms")
    summary: dict[str, Any] = {}
    for g in GENERATORS:
        runs = results[g]
        rate, gen = med(r["rate"] for r in runs), med(r["gen_cpu"] for r in runs)
        srv = med(r["server_cpu"] for r in runs)
        per_cpu = med(r["rate"] / r["gen_cpu"] for r in runs if r["gen_cpu"] > 0)
        lat = {k: med(r["latency_ms"].get(k, float("nan")) for r in runs)
               for k in ("p50", "p90", "p99", "p99.9")}
        label = LABELS[g] + (f" {args.open_rate:g}" if g == "shipyard-open"
                             else f" {args.concurrency}")
        errors = sum(r["errors"] for r in runs)
        print(f"{label:<36} {rate:>7.0f} {gen:>8.0%} {srv:>10.0%} {per_cpu:>19.0f} "
              f"{errors:>6}  " + " / ".join(f"{v:.2f}" for v in lat.values()))
        summary[g] = {"rate": rate, "gen_cpu": gen, "server_cpu": srv, "rate_per_cpu": per_cpu,
                      "latency_ms": lat}
    met = True
    for peer in ("locust-fast", "locust-http"):
        ratios = [a["rate"] / b["rate"] for a, b in zip(results["shipyard"], results[peer],
                                                         strict=True)]
        cpu_ratio = summary["shipyard"]["rate_per_cpu"] / summary[peer]["rate_per_cpu"]
        summary[f"ratio_vs_{peer}"] = med(ratios)
        summary[f"cpu_ratio_vs_{peer}"] = cpu_ratio
        met = met and med(ratios) >= 1
        print(f"shipyard / {LABELS[peer]}: req/s {med(ratios):.2f}x (rounds "
              f"{min(ratios):.2f}..{max(ratios):.2f}), req/s per generator CPU-second "
              f"{cpu_ratio:.1f}x  (target: at least 1x req/s: "
              f"{'met' if med(ratios) >= 1 else 'NOT met'})")
    summary["met"] = met
    return summary


if __name__ == "__main__":
    sys.exit(main())
