"""No-drift stress: how often drift, multivariate and quality checks cry wolf together.

    .venv/bin/python bench/null_stress.py          # 200 seeds, every size, both references
    .venv/bin/python bench/null_stress.py --quick  # 40 seeds at 500x200 and 2kx1k
    .venv/bin/python bench/null_stress.py --sizes 10kx1k,100kx1k --seeds 1000 --reference profile
    .venv/bin/python bench/null_stress.py --json out.json

Reference and current windows are independent draws of one distribution of 32 awkward but
common column kinds (tests/null_stress.py: heavy tails, ties, 2,000- and 5,000-value Zipf
categories, rare categories, mostly-null, constant and near-constant columns), so every alarm
is false. A window counts once however many alarms it raised (family-wise). The reference is
the raw data or its stored ``profile()`` (what a package keeps); the current window is raw,
as the monitor reads it from the prediction log. Target: at most 5% of windows at every size.
Sizes are reference x window rows; 100kx1k is the usual production case (a big stored
profile against a small window). Each seed's windows are drawn and profiled once and judged
with every reference kind.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import null_stress
from shipyard.profiles import profile

SIZES = {"500x200": (500, 200), "2kx1k": (2_000, 1_000), "10kx1k": (10_000, 1_000),
         "10kx10k": (10_000, 10_000), "50kx20k": (50_000, 20_000),
         "100kx1k": (100_000, 1_000), "100kx100k": (100_000, 100_000)}
TARGET = 0.05


def run(size: str, kinds: list[null_stress.Reference], seeds: int) -> list[dict[str, Any]]:
    """Every reference kind on the same windows: each seed's data is drawn and profiled once."""
    rows_ref, rows_cur = SIZES[size]
    alarmed: Counter[str] = Counter()
    causes: dict[str, Counter[str]] = {kind: Counter() for kind in kinds}
    seconds: Counter[str] = Counter()
    for seed in range(seeds):
        started = time.perf_counter()
        reference = null_stress.window(rows_ref, 10_000 + seed)
        current = null_stress.window(rows_cur, 20_000 + seed)
        profiled = profile(reference)
        shared = (time.perf_counter() - started) / len(kinds)
        for kind in kinds:
            started = time.perf_counter()
            compared = profiled if kind == "profile" else reference
            found = null_stress.alarms(reference, current, kind, seed=seed, compared=compared,
                                       profiled=profiled)
            alarmed[kind] += bool(found)
            causes[kind].update(found)
            seconds[kind] += time.perf_counter() - started + shared
    return [_cell(size, kind, seeds, alarmed[kind], seconds[kind], causes[kind])
            for kind in kinds]


def _cell(size: str, kind: str, seeds: int, alarmed: int, seconds: float,
          causes: Counter[str]) -> dict[str, Any]:
    # one-sided 95% upper bound of the true rate (Clopper-Pearson)
    upper = 1.0 if alarmed == seeds else float(stats.beta.ppf(0.95, alarmed + 1, seeds - alarmed))
    return {"size": size, "reference": kind, "seeds": seeds, "alarmed": alarmed,
            "rate": alarmed / seeds, "upper95": upper, "seconds": seconds,
            "causes": dict(causes.most_common())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated sizes")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--reference", choices=("raw", "profile", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="40 seeds, the two small sizes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = ["500x200", "2kx1k"] if args.quick else args.sizes.split(",")
    seeds = 40 if args.quick else args.seeds
    kinds: list[null_stress.Reference] = (["raw", "profile"] if args.reference == "both"
                                          else [args.reference])
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; known: {', '.join(SIZES)}")
    print(f"{len(null_stress.COLUMNS)} columns, {seeds} seeds a cell; target <= "
          f"{TARGET:.0%} of windows with any alarm")
    print(f"{'size':>10} {'reference':>9} {'alarmed':>9} {'rate':>6} {'95% upper':>9} "
          f"{'seconds':>8}  causes")
    results = []
    for size in sizes:
        for out in run(size, kinds, seeds):
            results.append(out)
            kind = out["reference"]
            causes = ", ".join(f"{k} {v}" for k, v in list(out["causes"].items())[:6])
            mark = "" if out["rate"] <= TARGET else "  OVER TARGET"
            print(f"{size:>10} {kind:>9} {out['alarmed']:>4}/{seeds:<4} {out['rate']:>6.1%} "
                  f"{out['upper95']:>9.1%} {out['seconds']:>8.1f}  {causes or '-'}{mark}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    worst = max(r["rate"] for r in results)
    sys.exit(0 if worst <= TARGET or math.isnan(worst) else 1)


if __name__ == "__main__":
    main()
