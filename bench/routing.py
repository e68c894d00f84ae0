"""What ``route()`` and ``extract_key()`` cost per call: the routing core on the hot path.

    .venv/bin/python bench/routing.py             # 7 repeats of ~0.2 s per row
    .venv/bin/python bench/routing.py --repeat 15
    PYTHONPATH=OTHER/src .venv/bin/python bench/routing.py   # another checkout, to compare

Each row times one call with ``timeit`` over 10,000 distinct keys (so no cache can help; the
list walk is timed and subtracted) and prints the median and the minimum over the repeats in
nanoseconds per call (a lambda's call, ~40 ns, is included). Keyless rows draw with
``random.random``, as the server would.
"""

from __future__ import annotations

import argparse
import random
import statistics
import timeit
from collections.abc import Callable

from _timing import machine_info
from shipyard.routing import (
    BlueGreen,
    Shadow,
    Single,
    StickyAB,
    Weighted,
    extract_key,
    parse_key_spec,
    route,
)

KEYS = [f"user-{i:06d}" for i in range(10_000)]


def per_call_ns(body: Callable[[str], object], repeat: int, seconds: float) -> list[float]:
    """Nanoseconds per ``body(key)`` over ``repeat`` runs of about ``seconds`` each."""

    def run() -> None:
        for key in KEYS:
            body(key)

    def empty() -> None:
        for _key in KEYS:
            pass

    laps = max(1, round(seconds / max(timeit.timeit(run, number=1), 1e-9)))
    walk = min(timeit.repeat(empty, number=laps, repeat=3))
    return [max(t - walk, 0.0) / (laps * len(KEYS)) * 1e9
            for t in timeit.repeat(run, number=laps, repeat=repeat)]


def rows() -> dict[str, Callable[[str], object]]:
    single = Single("v1")
    blue = BlueGreen("v1", "v2", live="green")
    canary = Weighted.canary("v1", "v2", 5, salt="rollout-1")
    ab = StickyAB("v1", "v2", split=50, salt="exp-1")
    shadow = Shadow("v1", "v2", percent=100)
    header = parse_key_spec("header:X-Routing-Key")
    field = parse_key_spec("json:user.id")
    headers = {"x-routing-key": "user-000001"}
    body = {"user": {"id": "user-000001"}, "inputs": {"x": [1.0]}}
    draw = random.random
    return {
        "single": lambda k: route(single, k),
        "blue-green": lambda k: route(blue, k),
        "canary 95/5, keyed": lambda k: route(canary, k),
        "canary 95/5, keyless": lambda k: route(canary, None, draw),
        "sticky A/B 50/50, keyed": lambda k: route(ab, k),
        "shadow 100%, keyed": lambda k: route(shadow, k),
        "extract header key": lambda k: extract_key(header, header=headers.get),
        "extract json:user.id": lambda k: extract_key(field, body=body),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.2, help="per repeat and row")
    args = parser.parse_args()
    info = machine_info()
    print(f"{info['processor']}, {info['affinity']} CPUs usable; ns per call over "
          f"{len(KEYS)} keys, {args.repeat} repeats")
    print(f"{'row':28} {'median':>9} {'min':>9}")
    for name, body in rows().items():
        times = per_call_ns(body, args.repeat, args.seconds)
        print(f"{name:28} {statistics.median(times):9.0f} {min(times):9.0f}")


if __name__ == "__main__":
    main()
