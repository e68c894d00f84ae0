"""What a traffic policy costs the server: shipyard serving one version, a 95/5 canary, a 50/50
sticky A/B test and a 100 % shadow, side by side in one run, loaded in turn by ``wrk``.

    .venv/bin/python bench/rollouts.py            # 3 rounds of 6 s per policy row, ~3.5 min
    .venv/bin/python bench/rollouts.py --quick    # 2 rounds of 4 s, ~2-2.5 min
    .venv/bin/python bench/rollouts.py --json results.json

Every row is a ``shipyard serve`` of its own, on the model ``bench/serving.py`` trains, with a
SQLite registry under its own ``SHIPYARD_HOME``: the package registered twice (``bench/1``
and ``bench/2``, alias ``prod`` on version 1), the row's policy stored with
``Registry.deployments.set_policy``, and the server started on ``models:/bench@prod`` with a
short ``poll_interval_s``. Every request carries an ``X-User-Id`` header drawn from
``--users`` ids (the A/B test's routing key; the other rows get the same requests).

The four servers run side by side and are loaded one at a time, single version between every
policy run (S C S A S H S C ...): each policy run is divided by the mean of the single-version
runs just before and after it, so a drift of this shared machine's speed cancels out of the
ratio; the targets read the median of those ratios. Afterwards the script asks each server
which version answers some user ids (twice: sticky?) and reads each row's prediction log back:
the share of answers per version, and the shadow copies logged. A row whose observed split
does not match its policy is flagged, and its targets are not judged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _timing import listed, machine_info, write_json
from serving import (
    ENDPOINT,
    LUA,
    PROJECT_BIN,
    ROOT,
    Bench,
    Prepared,
    ServerProcess,
    UnavailableError,
    describe_versions,
    ensure_wrk,
    free_port,
    peer_env_vars,
    project_versions,
    run_wrk,
    wait_ready,
)
from shipyard.routing import Policy, Shadow, Single, StickyAB, Weighted, extract_key, route

TARGET_RPS = 0.85  # canary and A/B: at least this share of single-version req/s
TARGET_P99 = 1.5  # canary, A/B and shadow's primary: p99 at most this multiple of single's
USER_HEADER = "X-User-Id"
V1, V2 = f"{ENDPOINT}/1", f"{ENDPOINT}/2"
SPLIT_TOLERANCE = 0.02  # observed share of a version within 2 points of the policy's
SHADOW_COPIES_MIN = 0.95  # shadow rows per primary answer below this: copies were dropped

# per thread: draws one of USERS prepared requests per request, each with its own user id
KEYED_LUA = """
local users = __USERS__
local requests = {}
local threads = 0

setup = function(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

init = function(args)
  math.randomseed(thread_number * 7919)
  for i = 1, users do
    wrk.headers["__HEADER__"] = string.format("user-%05d", i)
    requests[i] = wrk.format()
  end
end

request = function()
  return requests[math.random(users)]
end
"""


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    policy: Policy
    answers: dict[str, float]  # version -> share of the answers the policy gives it
    described: str  # the policy as the script builds it
    shadow: str | None = None  # the version that gets a copy of every request


ROWS = (
    Row("single", "single version", Single(V1), {V1: 1.0}, f"Single({V1})"),
    Row("canary", "canary 95/5", Weighted.canary(V1, V2, 5), {V1: 0.95, V2: 0.05},
        f"Weighted.canary({V1}, {V2}, 5)"),
    Row("ab", "sticky A/B 50/50", StickyAB(V1, V2, 50, key=f"header:{USER_HEADER}"),
        {V1: 0.5, V2: 0.5}, f"StickyAB({V1}, {V2}, 50, key='header:{USER_HEADER}')"),
    Row("shadow", "shadow 100 %", Shadow(V1, V2, 100), {V1: 1.0},
        f"Shadow({V1}, {V2}, 100)", shadow=V2),
)


@dataclass
class Served:
    """One row's server: how to reach it, where its registry and log live, what it did."""

    row: Row
    home: Path
    prep: Prepared
    script: Path
    proc: ServerProcess | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)


# --- set-up ---------------------------------------------------------------------------------


def prepare(bench: Bench, row: Row, args: argparse.Namespace) -> Served:
    """Registry with two versions and the row's policy, serve.yaml, wrk script."""
    from shipyard.registry import Registry
    from shipyard.settings import Settings

    home = bench.root / f"home-{row.key}"
    with Registry(settings=Settings.from_env({"SHIPYARD_HOME": str(home)})) as registry:
        registry.register(bench.shipyard_dir, name=ENDPOINT, alias="prod",
                          description="bench version 1")
        registry.register(bench.shipyard_dir, name=ENDPOINT,
                          description="bench version 2 (the same model bytes)")
        registry.deployments.set_policy(ENDPOINT, row.policy, reason="bench")
    config = home / "serve.yaml"  # JSON is YAML
    config.write_text(json.dumps({
        "poll_interval_s": args.poll_interval,
        "endpoints": [{"name": ENDPOINT, "model": f"models:/{ENDPOINT}@prod"}]}),
        encoding="utf-8")
    port = free_port()
    cmd = [str(PROJECT_BIN / "shipyard"), "serve", "--config", str(config), "--port", str(port),
           "--workers", str(args.workers)]
    # the server runs this checkout's shipyard, whatever the venv's install points at
    env = peer_env_vars({"SHIPYARD_HOME": str(home), "PYTHONPATH": str(ROOT / "src")},
                        PROJECT_BIN)
    body = bench.instances_body()
    prep = Prepared(cmd, env, bench.root,
                    f"http://127.0.0.1:{port}/v1/endpoints/{ENDPOINT}/predict", body,
                    lambda r: r["predictions"][0])
    script = bench.root / f"{row.key}.lua"
    script.write_text(LUA.format(body=body.decode()) + KEYED_LUA.replace(
        "__USERS__", str(args.users)).replace("__HEADER__", USER_HEADER), encoding="utf-8")
    return Served(row, home, prep, script)


def start(served: list[Served], bench: Bench) -> None:
    for s in served:
        s.proc = ServerProcess(s.prep.cmd, s.prep.env, s.prep.cwd,
                               bench.root / f"{s.row.key}.log")
    for s in served:
        assert s.proc is not None
        ready_s, payload = wait_ready(s.proc, s.prep)
        got = s.prep.label_of(payload) if s.prep.label_of else None
        if got is None or int(float(got)) != bench.expected:
            raise UnavailableError(f"{s.row.key}: wrong prediction {got!r}, scikit-learn says "
                                   f"{bench.expected}")
        print(f"  {s.row.label:<18} ready in {ready_s:.1f} s on {s.prep.url}", flush=True)


def settle(served: list[Served], args: argparse.Namespace) -> None:
    """Wait (10 poll intervals at most) until each row whose policy answers with another
    version than the alias's has done so once: its stored policy is applied."""
    users = [f"user-{i:05d}" for i in range(1, 41)]
    pending = [s for s in served if set(s.row.answers) - {V1}]
    t0 = time.monotonic()
    while pending and time.monotonic() - t0 < max(10 * args.poll_interval, 5.0):
        for s in list(pending):
            if any(answered_version(s.prep.url, s.prep.body, u) != V1 for u in users):
                print(f"  {s.row.label:<18} applies its policy ({V2} answered) after "
                      f"{time.monotonic() - t0:.1f} s", flush=True)
                pending.remove(s)
        time.sleep(args.poll_interval / 4)
    for s in pending:
        print(f"  WARNING: {s.row.label} still answers only with {V1} after "
              f"{time.monotonic() - t0:.0f} s: its stored policy is not applied", flush=True)


# --- load -----------------------------------------------------------------------------------


def errors_of(stats: dict[str, Any]) -> int:
    return int(stats["non_2xx"] + stats["connect"] + stats["read"] + stats["write"]
               + stats["timeout"])


def load(s: Served, wrk: str, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    stats = run_wrk(wrk, s.prep.url, s.script, seconds, args)
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["errors"] = errors_of(stats)
    del stats["wrk_output"]
    return stats


def paired_runs(served: list[Served], wrk: str, args: argparse.Namespace) -> None:
    """S X1 S X2 S X3 S X1 ... S: every policy run between two single-version runs."""
    base, others = served[0], served[1:]
    order = [base]
    for _ in range(args.rounds):
        for s in others:
            order += [s, base]
    print(f"\nloading in turn: {len(order)} runs of {args.duration:g} s "
          f"({' '.join(s.row.key for s in order[:2 * len(others) + 1])} ...)", flush=True)
    for s in order:
        stats = load(s, wrk, args.duration, args)
        if s is not base:  # the single-version runs around it: base.runs[slot], [slot + 1]
            stats["slot"] = len(base.runs) - 1
        s.runs.append(stats)
        print(f"  {s.row.key:<7} {stats['rps']:7.0f} req/s  p50 {stats['p50_us'] / 1e3:5.1f} ms"
              f"  p99 {stats['p99_us'] / 1e3:5.1f} ms"
              + (f"  ERRORS {stats['errors']}" if stats["errors"] else ""), flush=True)


def paired_ratios(base: Served, other: Served) -> dict[str, list[float]]:
    """Each run of ``other`` against the mean of the single-version runs around it."""
    rps, p99 = [], []
    for stats in other.runs:
        before, after = base.runs[stats["slot"]], base.runs[stats["slot"] + 1]
        rps.append(stats["rps"] / ((before["rps"] + after["rps"]) / 2))
        p99.append(stats["p99_us"] / ((before["p99_us"] + after["p99_us"]) / 2))
    return {"rps": rps, "p99": p99}


# --- what was routed where ------------------------------------------------------------------


def answered_version(url: str, body: bytes, user: str) -> str:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", USER_HEADER: user})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # counted as a wrong version, never a crash
        return f"HTTP {exc.code}"
    return f"{payload['model']}/{payload['version']}"


def probe(s: Served, users: int) -> dict[str, Any]:
    """Ask for ``users`` ids twice each: where the policy decides by the id (not by a random
    draw), is each answered both times by the version ``route()`` gives?"""
    ids = [f"user-{i:05d}" for i in range(1, users + 1)]
    first = [answered_version(s.prep.url, s.prep.body, u) for u in ids]
    second = [answered_version(s.prep.url, s.prep.body, u) for u in ids]
    expected = [expected_version(s.row.policy, u) for u in ids]
    judged = [(e, a, b) for e, a, b in zip(expected, first, second, strict=True)
              if e is not None]
    return {"requests": 2 * users, "versions": dict(Counter(first + second)),
            "unsticky": sum(a != b for _, a, b in judged),
            "judged": len(judged), "as_routed": sum(e == a == b for e, a, b in judged)}


def expected_version(policy: Policy, user: str) -> str | None:
    """The version ``policy`` answers a request from ``user`` with (None: a random draw)."""
    spec = getattr(policy, "key", None)  # Single has no key
    key = None if spec is None else extract_key(spec, header={USER_HEADER.lower(): user}.get)
    if key is None and isinstance(policy, Weighted):
        return None
    return route(policy, key).version


def read_counts(home: Path, kind: str) -> tuple[Counter[str], Counter[str]]:
    """Rows of the log of ``kind`` per version, and per variant (where the log has them)."""
    from shipyard.stores.predictions import NothingLoggedError, read_log

    try:
        table = read_log(home / "logs", ENDPOINT, kind=kind)
    except NothingLoggedError:
        return Counter(), Counter()
    models = table.column("model").to_pylist()
    versions = table.column("version").to_pylist()
    variants = table.column("variant").to_pylist() if "variant" in table.column_names else []
    return (Counter(f"{m}/{v}" for m, v in zip(models, versions, strict=True)),
            Counter(v or '""' for v in variants))


def check_log(s: Served) -> dict[str, Any]:
    """The row's prediction log (read after its server stopped and flushed): answers per
    version against the policy's shares, and the shadow copies."""
    (answers, variants), (copies, _) = (read_counts(s.home, "predictions"),
                                        read_counts(s.home, "shadow"))
    total = sum(answers.values())
    share = {v: n / total for v, n in sorted(answers.items())} if total else {}
    problems = [f"{v}: {share.get(v, 0):.1%} of answers, the policy says {want:.0%}"
                for v, want in s.row.answers.items()
                if abs(share.get(v, 0.0) - want) > SPLIT_TOLERANCE]
    problems += [f"{v} answered {share[v]:.1%}, the policy never routes to it"
                 for v in share if v not in s.row.answers]
    copied = sum(copies.values())
    if s.row.shadow is not None:
        if copied == 0:
            problems.append(f"no shadow rows: {s.row.shadow} got no copies")
        elif set(copies) != {s.row.shadow}:
            problems.append(f"shadow rows from {dict(copies)}, the policy says {s.row.shadow}")
    elif copied:
        problems.append(f"{copied} shadow rows, the policy shadows nothing")
    if s.probe and s.probe["as_routed"] != s.probe["judged"]:
        problems.append(f"{s.probe['judged'] - s.probe['as_routed']} of {s.probe['judged']} "
                        f"probed user ids answered by another version than route() gives")
    if s.probe and s.probe["unsticky"]:
        problems.append(f"{s.probe['unsticky']} probed user ids changed version")
    per_answer = copied / total if total else 0.0
    notes = [f"shadow rows are {per_answer:.0%} of the answers: copies were dropped (the "
             "server counts them)"] if copied and per_answer < SHADOW_COPIES_MIN else []
    return {"answers": dict(answers), "share": share, "variants": dict(variants),
            "shadow_rows": dict(copies),
            "expect_shadow": s.row.shadow is not None, "shadow_per_answer": per_answer,
            "routed_as_configured": not problems, "problems": problems, "notes": notes}


# --- reporting ------------------------------------------------------------------------------


def summarise(served: list[Served]) -> dict[str, dict[str, Any]]:
    base = served[0]
    out: dict[str, dict[str, Any]] = {}
    for s in served:
        runs = s.runs
        entry: dict[str, Any] = {
            "policy": s.row.described, "runs": runs,
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1e3,
            "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1e3,
            "errors": sum(r["errors"] for r in runs), "probe": s.probe, "log": s.log}
        if s is not base:
            ratios = paired_ratios(base, s)
            entry.update(rps_ratios=ratios["rps"], p99_ratios=ratios["p99"],
                         rps_ratio=statistics.median(ratios["rps"]),
                         p99_ratio=statistics.median(ratios["p99"]))
        out[s.row.key] = entry
    return out


def fmt_split(log: dict[str, Any]) -> str:
    text = " / ".join(f"{v} {p:.1%}" for v, p in log["share"].items()) or "no rows"
    if log["shadow_rows"] or log["expect_shadow"]:
        text += f"; shadow rows {log['shadow_per_answer']:.0%} of answers"
    return text


def print_table(summary: dict[str, dict[str, Any]]) -> None:
    headers = ["row", "req/s", "p50 ms", "p99 ms", "req/s vs single", "p99 vs single",
               "errors", "observed split (prediction log)"]
    rows = []
    for key, e in summary.items():
        label = next(r.label for r in ROWS if r.key == key)
        vs = ("1 (baseline)", "1 (baseline)") if "rps_ratio" not in e else (
            f"{e['rps_ratio']:.0%} ({min(e['rps_ratios']):.0%}-{max(e['rps_ratios']):.0%})",
            f"{e['p99_ratio']:.2f}x ({min(e['p99_ratios']):.2f}-{max(e['p99_ratios']):.2f})")
        rows.append([label, f"{e['rps']:.0f}", f"{e['p50_ms']:.1f}", f"{e['p99_ms']:.1f}",
                     *vs, str(e["errors"]), fmt_split(e["log"])])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for cells in [headers, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) if i in (0, 7) else c.rjust(w)
                        for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip())


def print_targets(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets; a row that did not route as configured is not judged (None)."""
    checks: dict[str, tuple[bool | None, str]] = {}
    for key, what in (("canary", "canary 95/5"), ("ab", "sticky A/B 50/50"),
                      ("shadow", "shadow 100 %")):
        e = summary.get(key)
        if e is None:
            continue
        routed = e["log"]["routed_as_configured"]
        if key != "shadow":
            checks[f"{what}: req/s >= {TARGET_RPS:.0%} of single"] = (
                e["rps_ratio"] >= TARGET_RPS if routed else None, f"{e['rps_ratio']:.0%}")
        primary = "primary " if key == "shadow" else ""
        checks[f"{what}: {primary}p99 <= {TARGET_P99:g}x single"] = (
            e["p99_ratio"] <= TARGET_P99 if routed else None, f"{e['p99_ratio']:.2f}x")
    errors = sum(e["errors"] for e in summary.values())
    checks["no non-2xx answers or socket errors"] = (errors == 0, f"{errors} errors")
    print("targets from issue 14 (paired medians, every row on the same bench model):")
    for name, (ok, value) in checks.items():
        verdict = "n/a: routing NOT applied" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {name:<44} {value:>10}   {verdict}")
    return {name: {"pass": ok, "value": value} for name, (ok, value) in checks.items()}


def print_routing(served: list[Served]) -> None:
    print("routing, as observed:")
    for s in served:
        p = s.probe
        log = s.log
        print(f"  {s.row.label:<18} {s.row.described}")
        print(f"    log: {sum(log['answers'].values())} answers: {fmt_split(log)}"
              + (f" ({sum(log['shadow_rows'].values())} shadow rows)" if s.row.shadow else "")
              + (f"; variants {log['variants']}" if log["variants"] else "; no variant column"))
        if p:
            judged = (f"both times the version route() gives: {p['as_routed']}/{p['judged']}, "
                      f"changed version {p['unsticky']}" if p["judged"]
                      else "random draws, not judged")
            print(f"    probe: {p['requests']} requests for {p['requests'] // 2} user ids "
                  f"(each twice): {dict(sorted(p['versions'].items()))}; {judged}")
        for problem in log["problems"]:
            print(f"    WARNING: not routed as configured: {problem}")
        for note in log["notes"]:
            print(f"    note: {note}")
    if any(s.log["problems"] for s in served):
        print("  WARNING: at least one row did not route as its policy says (a server that "
              "ignores stored policies serves the alias's version to everyone);")
        print("           its figures measure that, not the policy, and its targets are not "
              "judged.")


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds of 4 s per policy row (default 3 rounds of 6 s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--rounds", type=int, help="runs per policy row (3; --quick 2)")
    parser.add_argument("--duration", type=float, help="seconds per run (6; --quick 4)")
    parser.add_argument("--warmup", type=float, help="seconds of untimed load per server "
                                                      "(3; --quick 2)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--users", type=int, default=10_000,
                        help=f"distinct {USER_HEADER} values wrk draws from (10000)")
    parser.add_argument("--probe-users", type=int, default=100,
                        help="user ids asked twice each after the load (100)")
    parser.add_argument("--poll-interval", type=float, default=1.0,
                        help="the servers' poll_interval_s (1)")
    parser.add_argument("--rows", default="canary,ab,shadow",
                        help="policy rows beside single version (canary,ab,shadow)")
    args = parser.parse_args(argv)
    args.rows = ["single", *listed(parser, "--rows", args.rows, ("canary", "ab", "shadow"))]
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.duration = args.duration or (4.0 if args.quick else 6.0)
    args.warmup = args.warmup or (2.0 if args.quick else 3.0)
    if min(args.rounds, args.workers, args.connections, args.threads, args.users) < 1 \
            or args.duration < 1 or args.probe_users < 0 or not args.poll_interval > 0:
        parser.error("--rounds, --workers, --connections, --threads, --users must be >= 1, "
                     "--duration >= 1, --probe-users >= 0, --poll-interval > 0")
    return args


def measure(bench: Bench, wrk: str, args: argparse.Namespace
            ) -> tuple[list[Served], dict[str, dict[str, Any]]]:
    """Set up, start, load and check the four rows on ``bench``'s trained model."""
    served = [prepare(bench, row, args) for row in ROWS
              if row.key in getattr(args, "rows", [r.key for r in ROWS])]
    print(f"registries ready: {V1} and {V2} in each, alias prod -> 1, one policy per "
          "server", flush=True)
    try:
        start(served, bench)
        settle(served, args)
        for s in served:
            load(s, wrk, args.warmup, args)
        paired_runs(served, wrk, args)
        for s in served:
            if args.probe_users:
                s.probe = probe(s, args.probe_users)
    finally:
        for s in served:
            if s.proc is not None:
                s.proc.stop()
    for s in served:
        s.log = check_log(s)
    return served, summarise(served)


def run_rows(bench: Bench, wrk: str, args: argparse.Namespace) -> dict[str, Any]:
    """Measure the four rows on ``bench`` (trained and packaged) and print what was routed,
    the table and the targets; also what ``serving.py --rollouts`` runs."""
    try:
        served, summary = measure(bench, wrk, args)
    except UnavailableError as exc:
        print(f"the policy rows failed: {exc}", file=sys.stderr)
        return {"error": str(exc)}
    print()
    print_routing(served)
    print()
    print_table(summary)
    print("\nreq/s, p50, p99: medians over the row's runs; vs single: the median (range) of "
          "each run divided by the mean of the single-version runs just before and after it")
    print()
    return {"rows": summary, "targets": print_targets(summary)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    started = time.perf_counter()
    info, ours = machine_info(), project_versions()
    print("traffic-policy benchmark: shipyard serving one version, a canary, an A/B test and a "
          "shadow, side by side")
    print(f"  machine : {info['cpu_count']} CPUs (affinity {info['affinity']}), "
          f"{info['platform']}; wrk shares the cores with the servers")
    print(f"  load    : {args.threads} threads, {args.connections} connections, single-row "
          f"JSON POST with {USER_HEADER} drawn from {args.users} ids; {args.warmup:g} s warm-up"
          f" per server, then {args.rounds} rounds of {args.duration:g} s per policy row, "
          "single version between each")
    print(f"  shipyard: {describe_versions(ours)}; server from {ROOT / 'src'}, "
          f"--workers {args.workers}, poll_interval_s {args.poll_interval:g}", flush=True)
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-rollouts-") as tmp:
        bench = Bench(Path(tmp), args.workers, {})
        bench.train()
        bench.package_shipyard()
        print(f"model: trained in {bench.setup['train_s']:.1f} s, packaged in "
              f"{bench.setup['shipyard_package_s']:.1f} s (runtime "
              f"{bench.shipyard_runtime!r})", flush=True)
        result = run_rows(bench, wrk, args)
    elapsed = time.perf_counter() - started
    print(f"\ntotal wall time {elapsed:.0f} s")
    if args.json:
        write_json(args.json, {
            "machine": info, "shipyard_env": ours,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "setup": bench.setup, **result, "wall_seconds": elapsed})
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
