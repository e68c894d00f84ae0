"""The no-drift stress data: 32 awkward but common column kinds, and the family-wise alarms.

Shared by the fast test (tests/monitoring/test_null_stress.py) and the full benchmark
(bench/null_stress.py, which puts this directory on its path). Reference and current windows
are independent draws of one distribution, so every alarm they raise is a false one.

    ref, cur = window(rows=500, seed=1), window(rows=200, seed=2)
    alarms(ref, cur, "profile")   # [] when nothing cried wolf

Column kinds: heavy tails (Cauchy, Pareto, Student t, lognormal), ties (small integers,
rounded values, zero-inflated), a 2,000-value and a 5,000-value Zipf category (past a
profile's ``category_cap`` of 1,000), rare categories, mostly-null, constant and
near-constant columns, one column that is entirely null, binaries rare and common.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from shipyard.monitoring import check_quality, compare
from shipyard.profiles import Profile, profile

Reference = Literal["raw", "profile"]
Generator = Callable[[np.random.Generator, int], np.ndarray]


def _nulls(values: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    out = values.astype(np.float64) if values.dtype.kind in "iub" else values.copy()
    out[rng.random(values.size) < share] = None if out.dtype == object else np.nan
    return out


def _zipf(values: int, exponent: float = 1.1) -> tuple[np.ndarray, np.ndarray]:
    weights = 1.0 / np.arange(1, values + 1) ** exponent
    names = np.array([f"v{i}" for i in range(values)], dtype=object)
    return names, weights / weights.sum()


_ZIPF_2K = _zipf(2_000)
_ZIPF_5K = _zipf(5_000, 1.0)
_RARE = (np.array([f"r{i}" for i in range(60)], dtype=object),
         np.r_[np.full(10, 0.0999), np.full(50, 0.001 / 50)])
_FIVE = np.array(["a", "b", "c", "d", "e"], dtype=object)


def _pick(table: tuple[np.ndarray, np.ndarray]) -> Generator:
    names, p = table
    return lambda rng, n: names[rng.choice(names.size, n, p=p / p.sum())]


def _near_constant_text(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.full(n, "main", dtype=object)
    rare = rng.random(n)
    out[rare < 0.01] = "other"
    out[rare < 0.002] = "third"
    return out


def _near_constant_number(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.full(n, 5.0)
    odd = rng.random(n) < 0.005
    x[odd] = rng.normal(5.0, 1.0, int(odd.sum()))
    return x


COLUMNS: dict[str, Generator] = {
    "normal": lambda rng, n: rng.normal(0, 1, n),
    "lognormal": lambda rng, n: rng.lognormal(0, 2, n),
    "cauchy": lambda rng, n: rng.standard_cauchy(n),
    "pareto": lambda rng, n: rng.pareto(1.1, n),
    "student_t2": lambda rng, n: rng.standard_t(2, n),
    "exponential": lambda rng, n: rng.exponential(1.0, n),
    "uniform": lambda rng, n: rng.uniform(0, 1, n),
    "bimodal": lambda rng, n: np.where(rng.random(n) < 0.3, rng.normal(-3, 0.5, n),
                                       rng.normal(2, 1, n)),
    "poisson": lambda rng, n: rng.poisson(3, n),
    "small_ints": lambda rng, n: rng.integers(0, 5, n),
    "rounded": lambda rng, n: np.round(rng.normal(10, 1, n), 1),
    "zero_inflated": lambda rng, n: np.where(rng.random(n) < 0.9, 0.0, rng.lognormal(0, 1, n)),
    "big_ids": lambda rng, n: rng.integers(0, 1_000_000, n),
    "large_scale": lambda rng, n: 1e9 + rng.normal(0, 1e3, n),
    "half_null": lambda rng, n: _nulls(rng.normal(0, 1, n), rng, 0.5),
    "mostly_null": lambda rng, n: _nulls(rng.gamma(2, 1, n), rng, 0.95),
    "rarely_set": lambda rng, n: _nulls(rng.normal(0, 1, n), rng, 0.995),
    "constant": lambda rng, n: np.full(n, 7.0),
    "near_constant": _near_constant_number,
    "all_null": lambda rng, n: np.full(n, np.nan),
    "coin": lambda rng, n: rng.random(n) < 0.5,
    "rare_flag": lambda rng, n: rng.random(n) < 0.01,
    "ints_01": lambda rng, n: (rng.random(n) < 0.2).astype(np.int64),
    "five": lambda rng, n: _FIVE[rng.integers(0, 5, n)],
    "zipf40": _pick(_zipf(40)),
    "zipf2000": _pick(_ZIPF_2K),
    "zipf5000": _pick(_ZIPF_5K),
    "rare_categories": _pick(_RARE),
    "text_mostly_null": lambda rng, n: _nulls(_FIVE[rng.integers(0, 3, n)], rng, 0.9),
    "text_constant": lambda rng, n: np.full(n, "same", dtype=object),
    "text_near_constant": _near_constant_text,
    "text_some_null": lambda rng, n: _nulls(_pick(_zipf(12))(rng, n), rng, 0.2),
}
assert len(COLUMNS) == 32


def window(rows: int, seed: int) -> dict[str, np.ndarray]:
    """One window of ``rows`` rows: every column kind, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return {name: make(rng, rows) for name, make in COLUMNS.items()}


def alarms(reference: dict[str, np.ndarray], current: dict[str, np.ndarray],
           kind: Reference, seed: int = 0, compared: Any = None,
           profiled: Profile | None = None) -> list[str]:
    """Every alarm drift, multivariate and quality checks raise: ``column:check`` strings.

    ``kind`` "profile" compares against ``profile(reference)`` (what production stores in a
    package), "raw" against the reference data itself. ``compared`` passes a prepared
    reference (e.g. a profile built once for many windows), ``profiled`` the reference's
    profile when it is already built (the quality checks read one whatever ``kind`` is).
    """
    if profiled is None and (kind == "raw" or compared is None):
        profiled = profile(reference)
    ref: Any = compared if compared is not None else (
        profiled if kind == "profile" else reference)
    drift = compare(ref, current, seed=seed)
    out = [f"{name}:drift" for name in drift.drifted_columns]
    out += [f"multivariate:{m.method}" for m in drift.multivariate if m.drifted]
    if drift.dataset_drift:
        out.append("dataset")
    # quality checks always compare with a profile (a raw reference is profiled first)
    quality = check_quality(ref if kind == "profile" else profiled, current)
    out += [f"{f.column}:{f.check}" for f in quality.flagged]
    return out
