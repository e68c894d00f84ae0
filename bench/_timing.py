"""Timing helpers shared by the benchmarks (stdlib only: the peers' virtualenvs import it too)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def time_calls(fn: Callable[[], object], iterations: int) -> float:
    """Seconds for ``iterations`` calls of ``fn``, with the garbage collector paused."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def calibrate(fn: Callable[[], object], trial_seconds: float, *, min_calls: int = 1) -> int:
    """Warm up, then the number of calls that makes one trial last about ``trial_seconds``."""
    for _ in range(3):
        fn()
    iterations, elapsed = 1, 0.0
    while True:
        elapsed = time_calls(fn, iterations)
        if elapsed >= trial_seconds / 5 or iterations >= 1_000_000:
            break
        iterations *= 4
    return max(min_calls, round(iterations * trial_seconds / max(elapsed, 1e-9)))


def spread(values: list[float]) -> float:
    """Interquartile range of the trials relative to their median (a noise gauge)."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(values)


def write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def machine_info() -> dict[str, Any]:
    """CPU count, affinity and platform: the header every benchmark prints."""
    return {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
    }


def listed(parser: argparse.ArgumentParser, flag: str, text: str,
           allowed: Sequence[str]) -> list[str]:
    """The comma-separated ``text`` of option ``flag`` as a list; exits through
    ``parser.error`` naming any item not in ``allowed``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = sorted(set(items) - set(allowed))
    if unknown:
        parser.error(f"unknown {flag} {unknown}; choose from {list(allowed)}")
    return items


def tree_pids(root: int) -> list[int]:
    """``root`` and its descendants now, from ``/proc/PID/task/TID/children`` (Linux): a
    few small reads, not a walk of all of ``/proc``, so a sampler calling it every few ms
    does not steal the CPU of what it measures (a full walk cost ~6 ms here)."""
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        found.append(pid)
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                frontier.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and its descendants now."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in tree_pids(root):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total
