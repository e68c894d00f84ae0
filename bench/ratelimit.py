"""What rate limiting costs: req/s on the bench model with no limit, with the in-memory
limiter and with the Redis limiter (127.0.0.1:6379), side by side in one run.

    .venv/bin/python bench/ratelimit.py              # 5 rounds x 8 s per server, ~3 min
    .venv/bin/python bench/ratelimit.py --quick      # 2 rounds x 4 s
    .venv/bin/python bench/ratelimit.py --json results.json

The model, the request and the load are ``bench/serving.py``'s (a 30-feature gradient
boosting pipeline as ONNX, one single-row JSON POST, ``wrk`` with 2 threads and 64
connections). Three ``shipyard serve`` processes run at once, the same package and config but
for the limits: none; ``rate_limits`` per key and per endpoint with buckets in memory; the
same in Redis (``rate_limit_store``). The limits are set far above what the box can do
(nothing is refused: a refusal would be a cheap answer and flatter the limiter), so each
request pays the whole check: two buckets, and with Redis one EVALSHA round trip.

The servers are loaded one at a time in rounds, each round in a rotated order, and each
limiter's req/s is divided by the no-limit server's in the same round; the medians of
those ratios are what the targets read (at most 5 % slower in memory, 15 % with Redis).
On a shared, loaded box those ratios swing by tens of percent from round to round, so the
run also measures each server's CPU per request (its processes' CPU seconds over the
requests answered), and the limiter's own CPU per check in this process (64 concurrent
callers, the bench's limits), which other load hardly moves: that, as a share of the
no-limit server's CPU per request, is the steadiest estimate of the cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's shipyard

from _timing import machine_info, write_json
from serving import (
    ENDPOINT,
    LUA,
    PROJECT_BIN,
    ROOT,
    Bench,
    Prepared,
    ServerProcess,
    UnavailableError,
    ensure_wrk,
    free_port,
    peer_env_vars,
    run_wrk,
    wait_ready,
)

REDIS = "redis://127.0.0.1:6379/0"
HIGH = {"rate": 1_000_000, "burst": 1_000_000}  # nothing is ever refused
VARIANTS = ("none", "memory", "redis")
TARGETS = {"memory": 0.05, "redis": 0.15}  # the most req/s each may cost


def serve_config(variant: str, package: Path, prefix: str) -> dict[str, Any]:
    config: dict[str, Any] = {"endpoints": [{"name": ENDPOINT, "model": str(package)}]}
    if variant != "none":
        config["rate_limits"] = {"per_key": HIGH, "per_endpoint": HIGH}
    if variant == "redis":
        config["rate_limit_store"] = REDIS
        config["rate_limit_prefix"] = prefix
        config["rate_limit_on_store_error"] = "closed"  # a failing Redis shows as errors
    return config


def prepare(bench: Bench, variant: str, prefix: str) -> Prepared:
    home = bench.root / f"home-{variant}"
    config = bench.root / f"serve-{variant}.yaml"
    config.write_text(yaml.safe_dump(serve_config(variant, bench.shipyard_dir, prefix)),
                      encoding="utf-8")
    port = free_port()
    cmd = [str(PROJECT_BIN / "shipyard"), "serve", "--config", str(config), "--port",
           str(port)]
    # this checkout's shipyard, whichever one the venv has installed
    env = peer_env_vars({"SHIPYARD_HOME": str(home), "PYTHONPATH": str(ROOT / "src")},
                        PROJECT_BIN)
    return Prepared(cmd, env, bench.root,
                    f"http://127.0.0.1:{port}/v1/endpoints/{ENDPOINT}/predict",
                    bench.instances_body(), lambda r: r["predictions"][0])


def check_cost(store: str | None, checks: int = 64_000, concurrency: int = 64) -> float:
    """The limiter's CPU microseconds per check, in this process (``store``: None for the
    buckets in memory, else Redis's URL)."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from shipyard.service.config import EndpointConfig, ServeConfig
    from shipyard.service.rate_limiter import RateLimiter

    config = ServeConfig((EndpointConfig(ENDPOINT, "/unused"),),
                         rate_limits={"per_key": HIGH, "per_endpoint": HIGH},
                         rate_limit_store=store,
                         rate_limit_prefix=f"shipyard-bench:{uuid.uuid4().hex}:")

    async def run() -> float:
        limiter = RateLimiter(config, CollectorRegistry())

        async def caller(n: int) -> None:
            for _ in range(n):
                await limiter.check(ENDPOINT, None, "127.0.0.1")

        await caller(1000)  # warm: connection, script loaded
        started = time.process_time()
        await asyncio.gather(*(caller(checks // concurrency) for _ in range(concurrency)))
        used = time.process_time() - started
        await limiter.close()
        return used / checks * 1e6

    return asyncio.run(run())


def check_redis() -> None:
    try:
        import redis

        redis.Redis.from_url(REDIS, socket_timeout=2).ping()
    except Exception as exc:
        raise SystemExit(f"this benchmark needs Redis at {REDIS}: {exc}") from exc


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds x 4 s")
    parser.add_argument("--rounds", type=int, help="rounds (5)")
    parser.add_argument("--duration", type=float, help="seconds of load per server a round (8)")
    parser.add_argument("--warmup", type=float, default=3.0, help="untimed seconds first")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.duration = args.duration or (4.0 if args.quick else 8.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    check_redis()
    info = machine_info()
    print("rate-limit cost: shipyard serve with no limit, memory limiter, Redis limiter")
    print(f"  machine : {info['cpu_count']} CPUs (affinity {info['affinity']}); wrk shares "
          "them with the server: compare within this run only")
    print(f"  load    : wrk {args.threads} threads, {args.connections} connections, single-row "
          f"JSON POST; {args.rounds} rounds x {args.duration:g} s per server, rotated order")
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-rl-") as tmp:
        bench = Bench(Path(tmp), 1, {})
        bench.train()
        bench.package_shipyard()
        prefix = f"shipyard-bench:{uuid.uuid4().hex}:"
        preps = {v: prepare(bench, v, prefix) for v in VARIANTS}
        procs: dict[str, ServerProcess] = {}
        rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
        p99: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpu_us: dict[str, list[float]] = {v: [] for v in VARIANTS}  # server CPU a request
        try:
            for v, prep in preps.items():
                procs[v] = ServerProcess(prep.cmd, prep.env, prep.cwd, bench.root / f"{v}.log")
            scripts = {}
            for v, prep in preps.items():
                _, payload = wait_ready(procs[v], prep)
                if int(payload["predictions"][0]) != bench.expected:
                    raise UnavailableError(f"{v}: wrong label {payload}")
                scripts[v] = bench.root / f"{v}.lua"
                scripts[v].write_text(LUA.format(body=prep.body.decode()), encoding="utf-8")
                run_wrk(wrk, prep.url, scripts[v], args.warmup, args)
            for r in range(args.rounds):
                order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
                line = []
                for v in order:
                    before = procs[v].tree()
                    stats = run_wrk(wrk, preps[v].url, scripts[v], args.duration, args)
                    after = procs[v].tree()
                    used = sum(after.values()) - sum(c for pid, c in before.items()
                                                     if pid in after)
                    errors = stats["non_2xx"] + stats["connect"] + stats["read"] + \
                        stats["write"] + stats["timeout"]
                    if errors:
                        raise UnavailableError(f"{v}: {errors} errors (non-2xx "
                                               f"{stats['non_2xx']})\n{procs[v].log_tail()}")
                    rps[v].append(stats["requests"] / (stats["duration_us"] / 1e6))
                    p99[v].append(stats["p99_us"] / 1e3)
                    cpu_us[v].append(used / stats["requests"] * 1e6)
                    line.append(f"{v} {rps[v][-1]:.0f}")
                print(f"  round {r + 1}: " + ", ".join(line) + " req/s", flush=True)
        finally:
            for proc in procs.values():
                proc.stop()
    results: dict[str, Any] = {"machine": info, "rounds": args.rounds,
                               "duration_s": args.duration, "rps": rps, "p99_ms": p99,
                               "server_cpu_us_per_request": cpu_us,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"\n{'limiter':<8} {'median req/s':>13} {'p99 ms':>7} {'vs none (median of rounds)':>28}"
          f"  {'CPU us/req':>10} {'vs none':>8}  target (req/s)")
    ok = True
    for v in VARIANTS:
        ratios = [a / b for a, b in zip(rps[v], rps["none"], strict=True)]
        cost = 1 - float(np.median(ratios))
        cpu_ratio = float(np.median([a / b for a, b in zip(cpu_us[v], cpu_us["none"],
                                                             strict=True)]))
        results[f"{v}_cost"] = cost
        results[f"{v}_cpu_cost"] = cpu_ratio - 1
        target = TARGETS.get(v)
        verdict = "" if target is None else \
            f"cost <= {target:.0%}: {'met' if cost <= target else 'NOT met'}"
        ok = ok and (target is None or cost <= target)
        shown = "-" if v == "none" else f"{-cost:+.1%} ({min(ratios) - 1:+.1%} .. " \
            f"{max(ratios) - 1:+.1%})"
        cpu_shown = "-" if v == "none" else f"{cpu_ratio - 1:+.1%}"
        print(f"{v:<8} {np.median(rps[v]):>13.0f} {np.median(p99[v]):>7.1f} {shown:>28}  "
              f"{np.median(cpu_us[v]):>10.0f} {cpu_shown:>8}  {verdict}")
    print("CPU us/req: the server's processes (HTTP + inference process), not Redis's own.")
    base = float(np.median(cpu_us["none"]))
    print(f"\nthe limiter alone (in this process, 64 concurrent callers; share of the no-limit "
          f"server's {base:.0f} CPU us per request):")
    for v, store in (("memory", None), ("redis", REDIS)):
        cost = float(np.median([check_cost(store) for _ in range(3)]))
        results[f"{v}_check_cpu_us"] = cost
        target = TARGETS[v]
        print(f"  {v:<7} {cost:6.1f} CPU us per check = {cost / base:5.1%} of a request "
              f"(target {target:.0%}: {'met' if cost / base <= target else 'NOT met'})")
    if args.json:
        write_json(args.json, results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
