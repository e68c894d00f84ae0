"""No-drift stress, fast: drift, multivariate and quality checks together rarely cry wolf.

32 awkward but common column kinds (tests/null_stress.py; the full run over every size and
200 seeds is bench/null_stress.py). Reference and window are independent draws of one
distribution, so any alarm is false; the family-wise target is at most 5% of windows.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from null_stress import COLUMNS, alarms, window
from shipyard.monitoring import compare
from shipyard.profiles import profile

CELLS = [(500, 200, seed) for seed in range(24)] + [(2_000, 1_000, seed) for seed in range(8)]
ALLOWED = 5
"""At a true rate of 5%, more than 5 of 32 windows alarm with probability < 1%."""


def test_no_drift_windows_rarely_alarm_with_a_raw_or_a_profile_reference() -> None:
    assert stats.binom.sf(ALLOWED, len(CELLS), 0.05) < 0.01
    alarmed = []
    for i, (rows_ref, rows_cur, seed) in enumerate(CELLS):
        kind = "profile" if i % 2 else "raw"
        found = alarms(window(rows_ref, 10_000 + seed), window(rows_cur, 20_000 + seed),
                       kind, seed=seed)
        if found:
            alarmed.append((rows_ref, seed, kind, found))
    assert len(alarmed) <= ALLOWED, alarmed


@pytest.mark.parametrize("kind", ["raw", "profile"])
def test_moderate_real_changes_are_still_found(kind: str) -> None:
    """Calibration bought with power would be no fix: a 0.3 sd shift, a 5% new category and
    3% of values beyond the reference's range are each found at 2,000 x 1,000 rows."""
    reference = window(2_000, 1)
    current = window(1_000, 2)
    rng = np.random.default_rng(3)
    current["normal"] = current["normal"] + 0.3
    current["five"][rng.random(1_000) < 0.05] = "f"
    current["uniform"][rng.random(1_000) < 0.03] = 1.5
    found = set(alarms(reference, current, kind))  # type: ignore[arg-type]
    assert {"normal:drift", "five:new_category", "uniform:out_of_range"} <= found
    prepared = profile(reference) if kind == "profile" else reference
    assert not alarms(reference, window(1_000, 2), kind, compared=prepared)  # type: ignore[arg-type]


def _column(name: str, rows: int, seed: int) -> np.ndarray:
    return COLUMNS[name](np.random.default_rng(seed), rows)


def test_a_big_profile_against_a_small_window_compares_like_with_like() -> None:
    """100k reference rows of a 5,000-value Zipf column, stored as a profile (a frequent-items
    sketch past 1,000 values), against 1,000-row windows of the same distribution: each of
    the window's rare values was set against the sketch's error bound and the unlisted tail
    against nothing (86% of 200 windows drifted, chi-squared p ~ 1e-10). The profile gives
    the raw reference's verdict, and still sees a value that is new and common."""
    reference = {"sku": _column("zipf5000", 100_000, 1)}
    stored = profile(reference)
    assert not stored["sku"].exact
    for seed in range(2, 6):
        window_ = {"sku": _column("zipf5000", 1_000, seed)}
        raw = compare(reference, window_, multivariate=False).columns["sku"]
        sketched = compare(stored, window_, multivariate=False).columns["sku"]
        assert not sketched.drifted and sketched.p_value is not None, seed
        assert sketched.p_value > 0.01 and raw.p_value is not None
        assert abs(sketched.effect_size - raw.effect_size) < 0.03
    # a sketch that still lists every value it saw (error 0) against a window as large: the
    # window's values the reference never saw are rare and join "other", as its own rare do
    reference = {"sku": _column("zipf2000", 10_000, 1)}
    assert not profile(reference)["sku"].exact
    for seed in (2, 3):
        window_ = {"sku": _column("zipf2000", 10_000, seed)}
        assert not compare(profile(reference), window_, multivariate=False).columns["sku"].drifted
    reference = {"sku": _column("zipf5000", 100_000, 1)}
    changed = {"sku": _column("zipf5000", 1_000, 9)}
    changed["sku"][np.random.default_rng(9).random(1_000) < 0.1] = "brand-new"
    assert compare(stored, changed, multivariate=False).columns["sku"].drifted
    assert compare(reference, changed, multivariate=False).columns["sku"].drifted


def test_the_jensen_shannon_gate_allows_for_the_noise_of_many_sparse_categories() -> None:
    """A 2,000-value Zipf column at 10k rows a side: same-distribution windows reach JS 0.10
    at p 0.001 (the chi-squared over ~200 cells), so the fixed 0.1 gate filtered nothing.
    The gate now rises by the noise those cell counts give; a real change passes it."""
    drifted = []
    for seed in range(20, 45):  # the bench's windows; 22 and 42 drifted (p ~ 0.001, JS 0.10)
        ref = window(10_000, 10_000 + seed)["zipf2000"]
        cur = window(10_000, 20_000 + seed)["zipf2000"]
        col = compare({"c": ref}, {"c": cur}, multivariate=False).columns["c"]
        if col.drifted:
            drifted.append((seed, col.p_value, col.effect_size, col.threshold))
    assert not drifted
    assert col.threshold > col.detail["threshold_set"] == 0.1
    moved = _column("zipf2000", 10_000, 7)
    moved[np.random.default_rng(7).random(10_000) < 0.1] = "brand-new"
    col = compare({"c": _column("zipf2000", 10_000, 8)}, {"c": moved},
                  multivariate=False).columns["c"]
    assert col.drifted and col.effect_size > col.threshold


def test_a_rare_flag_gets_an_exact_p_value() -> None:
    """A 1% flag seen 73 times in 10k reference rows and 22 times in a 1k window (one of the
    bench's same-distribution windows): the normal approximation gave p 1.7e-6, small
    enough to decide a family of 30 columns; Fisher's exact test gives 3e-5."""
    ref = np.zeros(10_000, dtype=bool)
    ref[:73] = True
    cur = np.zeros(1_000, dtype=bool)
    cur[:22] = True
    col = compare({"flag": ref}, {"flag": cur}, multivariate=False).columns["flag"]
    exact = stats.fisher_exact([[73, 10_000 - 73], [22, 1_000 - 22]]).pvalue
    assert col.p_value == pytest.approx(exact) and col.p_value > 1e-5
    assert col.detail["p_method"] == "fisher_exact"
