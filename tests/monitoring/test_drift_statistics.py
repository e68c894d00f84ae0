"""Acceptance: compare() finds material drift, ignores noise and trivial shifts.

Generated data, seeded. A window has 10k rows of 16 columns: normals, skewed and integer
numbers, categories (8, 4 and 40 values), binaries, and model outputs (prediction, proba.1,
target), which are columns like any other.
"""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.monitoring import DriftReport, compare
from shipyard.profiles import profile

ROWS = 10_000
CITIES = np.array([f"city{i}" for i in range(8)], dtype=object)
CITY_P = np.array([0.30, 0.20, 0.15, 0.12, 0.09, 0.07, 0.05, 0.02])
DEVICES = np.array(["ios", "android", "web", "tv", "watch"], dtype=object)
DEVICE_P = np.array([0.4, 0.35, 0.2, 0.05])
SKUS = np.array([f"sku{i:02d}" for i in range(40)], dtype=object)
SKU_P = (1.0 / np.arange(1, 41)) / np.sum(1.0 / np.arange(1, 41))


def window(seed: int, rows: int = ROWS, *, shift: float = 0.0, scale: float = 1.0,
           skew_shift: float = 0.0, reverse: bool = False, new_device: float = 0.0
           ) -> dict[str, np.ndarray]:
    """One window. Drift knobs: ``shift`` (sd units) on ``income``, ``skew_shift`` on
    ``wait`` (exponential, sd 1), ``scale`` on ``age`` (around its mean), reversed city
    frequencies, and a new device at the given share."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {
        "income": rng.normal(50_000, 12_000, rows) + shift * 12_000,
        "age": 40 + (rng.normal(0, 10, rows) * scale),
        "wait": rng.exponential(1.0, rows) + skew_shift,
        "score": rng.uniform(0, 1, rows),
        "visits": rng.poisson(3, rows),
        "balance": rng.lognormal(3, 1, rows),
        "height": rng.normal(170, 8, rows),
        "city": CITIES[rng.choice(8, rows, p=CITY_P[::-1] if reverse else CITY_P)],
        "device": DEVICES[rng.choice(4, rows, p=DEVICE_P)],
        "sku": SKUS[rng.choice(40, rows, p=SKU_P)],
        "member": rng.random(rows) < 0.3,
        "plan": np.where(rng.random(rows) < 0.6, "free", "paid").astype(object),
    }
    if new_device:
        cols["device"][rng.random(rows) < new_device] = "watch"
    cols["income"][rng.random(rows) < 0.02] = np.nan  # nulls are left to quality checks
    logit = (cols["income"] - 50_000) / 12_000 + (cols["age"] - 40) / 10
    proba = 1 / (1 + np.exp(-np.nan_to_num(logit)))
    cols["proba.1"] = proba
    cols["prediction"] = (proba > 0.5).astype(np.int64)
    cols["target"] = (rng.random(rows) < proba).astype(np.float64)
    return cols


DRIFTED = {"income", "age", "wait", "city", "device"}
OUTPUTS_MOVED = {"proba.1", "prediction", "target"}  # income and age feed the model outputs


def drifted_window(seed: int, rows: int = ROWS) -> dict[str, np.ndarray]:
    return window(seed, rows, shift=0.2, scale=1.2, skew_shift=0.2, reverse=True,
                  new_device=0.1)


def alarms(report: DriftReport) -> list[str]:
    names = report.drifted_columns + [m.method for m in report.multivariate if m.drifted]
    return names + (["dataset"] if report.dataset_drift else [])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_injected_drifts_are_flagged_and_nothing_else(seed: int) -> None:
    ref = window(100 + seed)
    cur = drifted_window(200 + seed)
    report = compare(ref, cur, seed=seed)
    flagged = set(report.drifted_columns)
    assert flagged >= DRIFTED
    assert flagged - DRIFTED <= OUTPUTS_MOVED  # the model outputs follow income and age
    undrifted = set(ref) - DRIFTED - OUTPUTS_MOVED
    assert not flagged & undrifted
    assert report.columns["income"].effect_size >= 0.15
    assert report.columns["city"].method == "chi2"
    assert report.columns["device"].detail["new_categories"] == ["watch"]
    assert any(m.drifted for m in report.multivariate)
    assert report.dataset_drift


@pytest.mark.parametrize(("change", "column"), [
    ({"shift": 0.2}, "income"),
    ({"scale": 1.2}, "age"),
    ({"skew_shift": 0.2}, "wait"),
    ({"reverse": True}, "city"),
    ({"new_device": 0.1}, "device"),
])
def test_each_drift_alone_is_flagged(change: dict[str, float], column: str) -> None:
    ref = window(11)
    cur = window(12, **change)  # type: ignore[arg-type]
    inputs = [n for n in ref if n not in OUTPUTS_MOVED]
    report = compare(ref, cur, columns=inputs)
    assert report.drifted_columns == [column]


def test_same_distribution_false_alarm_rate_is_at_most_five_percent() -> None:
    windows_with_alarm = []
    for seed in range(50):
        report = compare(window(1000 + seed), window(2000 + seed), seed=seed)
        if alarms(report):
            windows_with_alarm.append((seed, alarms(report)))
    assert len(windows_with_alarm) <= 2, windows_with_alarm


def test_same_distribution_against_a_profile_reference() -> None:
    ref = profile(window(7))
    for seed in range(10):
        report = compare(ref, window(3000 + seed), seed=seed)
        assert not alarms(report), (seed, alarms(report))


def test_trivial_shift_on_a_million_rows_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(5)
    rows = 1_000_000
    ref = {"x": rng.normal(0, 1, rows), "y": rng.normal(0, 1, rows)}
    cur = {"x": rng.normal(0.02, 1, rows), "y": rng.normal(0, 1, rows)}
    report = compare(ref, cur)
    x = report.columns["x"]
    assert x.p_value is not None and x.p_value < 1e-10
    assert x.p_adjusted is not None and x.p_adjusted < 1e-10
    assert 0.01 < x.effect_size < 0.03  # reported: 0.02 sd
    assert not x.drifted
    assert not report.dataset_drift
    assert not any(m.drifted for m in report.multivariate)


@pytest.mark.parametrize("scenario", ["same", "drifted"])
def test_profile_reference_gives_the_raw_reference_verdicts(scenario: str) -> None:
    ref = window(21)
    cur = drifted_window(22) if scenario == "drifted" else window(22)
    raw = compare(ref, cur)
    sketched = compare(profile(ref), cur)
    both = compare(profile(ref), profile(cur))
    verdicts = {n: c.drifted for n, c in raw.columns.items()}
    assert {n: c.drifted for n, c in sketched.columns.items()} == verdicts
    assert {n: c.drifted for n, c in both.columns.items()} == verdicts
    assert raw.dataset_drift == sketched.dataset_drift == both.dataset_drift
    assert sketched.columns["income"].detail["computation"] == "sketch"
    for name, col in raw.columns.items():  # the sketches' effects are close to the exact ones
        assert abs(sketched.columns[name].effect_size - col.effect_size) < 0.02, name


def test_bh_flags_at_least_what_bonferroni_flags() -> None:
    # twelve columns with the same small shift in a small window: p-values near alpha,
    # where BH's step-up keeps discoveries that Bonferroni's k * p loses
    rng = np.random.default_rng(8)
    rows = 600
    ref = {f"x{i}": rng.normal(0, 1, rows) for i in range(12)}
    cur = {f"x{i}": rng.normal(0.17, 1, rows) for i in range(12)}
    kw = {"multivariate": False}
    bh = compare(ref, cur, correction="bh", **kw)  # type: ignore[arg-type]
    bonf = compare(ref, cur, correction="bonferroni", **kw)  # type: ignore[arg-type]
    none = compare(ref, cur, correction="none", **kw)  # type: ignore[arg-type]
    assert set(bonf.drifted_columns) <= set(bh.drifted_columns) <= set(none.drifted_columns)
    assert len(bh.drifted_columns) > len(bonf.drifted_columns)
    for name in ref:
        p = none.columns[name].p_value
        assert p is not None
        assert bonf.columns[name].p_adjusted == pytest.approx(min(1.0, 12 * p))
        assert none.columns[name].p_adjusted == p


# ---------------------------------------------------------------- a profile gives raw's verdict

ZIPF = np.array([f"v{i}" for i in range(2_000)], dtype=object)
ZIPF_P = (1.0 / np.arange(1, 2_001) ** 1.1) / np.sum(1.0 / np.arange(1, 2_001) ** 1.1)


def zipf(seed: int, rows: int, *, reverse: bool = False, new: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = ZIPF[rng.choice(ZIPF.size, rows, p=ZIPF_P[::-1] if reverse else ZIPF_P)]
    values[rng.random(rows) < new] = "brand-new"
    return values


def test_thousands_of_categories_against_a_profile_compare_like_with_like() -> None:
    """Past category_cap the profile keeps a frequent-items sketch; the raw window lists every
    value. Compared cell by cell, hundreds of unlisted values looked new: p = 0, JS 0.24 in
    every same-distribution window. Reduced to the values both know, plus "other", the
    profile gives the raw reference's verdict."""
    rows = 60_000
    ref = {"sku": zipf(1, rows)}
    stored = profile(ref)
    assert not stored["sku"].exact  # ~1,900 distinct values: past the cap of 1,000
    for seed in range(2, 6):
        cur = {"sku": zipf(seed, rows)}
        raw = compare(ref, cur, multivariate=False).columns["sku"]
        sketched = compare(stored, cur, multivariate=False).columns["sku"]
        both = compare(stored, profile(cur), multivariate=False).columns["sku"]
        assert not raw.drifted and not sketched.drifted and not both.drifted, seed
        assert sketched.effect_size < 0.1 and both.effect_size < 0.1
        assert sketched.p_value is not None and sketched.p_value > 0.05
        assert sketched.detail["computation"] == "sketch"
        assert "new_categories" not in sketched.detail  # unlisted is not new
    # ... and still sees real change
    for cur in ({"sku": zipf(7, rows, reverse=True)}, {"sku": zipf(8, rows, new=0.1)}):
        for reference in (stored, ref):
            col = compare(reference, cur, multivariate=False).columns["sku"]
            assert col.drifted and col.effect_size > 0.2


def test_a_profile_that_holds_every_value_gives_the_exact_test() -> None:
    """Tiny non-null counts (three values against one) gave p = 0 from a profile (the
    asymptotic KS law at n = 1) where the exact test gives 0.5."""
    ref = {"x": np.array([1.0, 2.0, 3.0, np.nan, np.nan])}
    cur = {"x": np.array([np.nan, 10.0, np.nan])}
    raw = compare(ref, cur, multivariate=False).columns["x"]
    for left, right in ((profile(ref), cur), (ref, profile(cur)), (profile(ref), profile(cur))):
        col = compare(left, right, multivariate=False).columns["x"]
        assert col.p_value == pytest.approx(raw.p_value) == pytest.approx(0.5)
        assert col.detail["computation"] == "exact"
    # a big profile whose quantile sketch still holds each of a rare column's values
    rng = np.random.default_rng(3)
    big = rng.normal(0, 1, 50_000)
    big[rng.random(50_000) < 0.995] = np.nan
    small = rng.normal(0, 1, 40)
    stored = profile({"x": big})
    assert stored["x"].rank_error == 0 and stored["x"].non_null < 400
    exact = compare({"x": big}, {"x": small}, multivariate=False).columns["x"]
    col = compare(stored, {"x": small}, multivariate=False).columns["x"]
    assert col.detail["computation"] == "exact"
    assert col.p_value == pytest.approx(exact.p_value)
