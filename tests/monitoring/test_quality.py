"""Each quality check fires on an injected problem and stays quiet on same-distribution data."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from shipyard.errors import MonitoringError
from shipyard.monitoring.quality import QualityThresholds, check_quality
from shipyard.profiles import Profile, profile

CITIES = np.array(["paris", "lyon", "nice", "lille", "brest"], dtype=object)


def table(rows: int, seed: int) -> dict[str, np.ndarray]:
    """Numbers with 2% nulls, ints, text with nulls, a boolean and a skewed category."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, rows)
    x[rng.random(rows) < 0.02] = np.nan
    city = CITIES[rng.integers(0, 5, rows)]
    city[rng.random(rows) < 0.01] = None
    return {
        "x": x,
        "age": rng.integers(18, 80, rows),
        "city": city,
        "vip": rng.random(rows) < 0.3,
        "plan": rng.choice(np.array(["basic", "pro", "team"], dtype=object), rows,
                           p=[0.6, 0.3, 0.1]),
    }


@pytest.fixture(scope="module")
def reference() -> Profile:
    return profile(table(10_000, seed=0))


def flagged(report: Any) -> set[tuple[str, str]]:
    return {(f.column, f.check) for f in report.flagged}


@pytest.mark.parametrize("seed", range(1, 21))
def test_quiet_on_same_distribution(reference: Profile, seed: int) -> None:
    report = check_quality(reference, table(10_000, seed))
    assert flagged(report) == set()
    checks = {(f.column, f.check) for f in report.findings}
    assert ("x", "out_of_range") in checks and ("city", "new_category") in checks
    assert report.get("x", "missing").value == pytest.approx(0.02, abs=0.01)  # type: ignore[union-attr]


def test_quiet_on_small_windows(reference: Profile) -> None:
    for seed in range(30):
        assert flagged(check_quality(reference, table(25, 100 + seed))) == set()


def test_rise_in_missing_values_is_flagged_at_10k_rows(reference: Profile) -> None:
    current = table(10_000, seed=1)
    rng = np.random.default_rng(1)
    current["x"][rng.random(10_000) < 0.08] = np.nan  # 2% -> ~10%
    current["city"][rng.random(10_000) < 0.10] = None  # 1% -> ~11%
    for window in (current, profile(current)):  # raw data and a profile give the same verdict
        report = check_quality(reference, window)
        assert flagged(report) == {("x", "missing"), ("city", "missing")}
        finding = report.get("x", "missing")
        assert finding is not None
        assert finding.value == pytest.approx(0.098, abs=0.01)
        assert finding.reference == pytest.approx(0.02, abs=0.005)
        assert finding.threshold == 0.05 and finding.detail["p_value"] < 1e-6


def test_missing_rise_must_be_material_and_significant(reference: Profile) -> None:
    current = table(10_000, seed=2)
    current["x"][np.random.default_rng(2).random(10_000) < 0.02] = np.nan  # +2 pp: significant
    report = check_quality(reference, current)
    assert report.get("x", "missing").detail["p_value"] < 0.01  # type: ignore[union-attr]
    assert flagged(report) == set()  # ... but not material
    small = table(20, seed=3)
    small["x"][:2] = np.nan  # 10% of 20 rows: material, not significant
    report = check_quality(reference, small)
    assert report.get("x", "missing").value >= 0.1  # type: ignore[operator, union-attr]
    assert ("x", "missing") not in flagged(report)
    strict = check_quality(reference, current, thresholds={"missing_rise": 0.01})
    assert flagged(strict) == {("x", "missing")}


def test_schema_changes(reference: Profile) -> None:
    current = table(2_000, seed=4)
    del current["age"]
    current["coupon"] = np.ones(2_000)
    report = check_quality(reference, current)
    assert flagged(report) == {("age", "missing_column"), ("coupon", "unexpected_column")}
    relaxed = check_quality(reference, current,
                            thresholds=QualityThresholds(flag_unexpected_columns=False))
    assert flagged(relaxed) == {("age", "missing_column")}
    assert relaxed.get("coupon", "unexpected_column") is not None
    only_inputs = check_quality(reference, current, columns=["x", "city"])
    assert flagged(only_inputs) == set()


def test_numbers_arriving_as_text(reference: Profile) -> None:
    current = table(2_000, seed=5)
    current["x"] = np.array([f"{v:.3f}" for v in current["x"]], dtype=object)
    current["city"] = np.arange(2_000)  # and text arriving as numbers
    report = check_quality(reference, current)
    assert flagged(report) == {("x", "type"), ("city", "type")}
    finding = report.get("x", "type")
    assert finding is not None and (finding.value, finding.reference) == ("str", "float64")
    assert report.get("x", "out_of_range") is None  # no range check on the wrong type


def test_out_of_range(reference: Profile) -> None:
    current = table(10_000, seed=6)
    current["x"][:300] *= 10  # ~3% beyond the reference range
    current["age"][:50] = 95  # 0.5%: below the 1% threshold
    for window in (current, profile(current)):
        report = check_quality(reference, window)
        assert flagged(report) == {("x", "out_of_range")}
        share = report.get("x", "out_of_range").value  # type: ignore[union-attr]
        assert 0.015 < share < 0.035  # type: ignore[operator]
        assert report.get("age", "out_of_range").value == pytest.approx(  # type: ignore[union-attr]
            0.005, abs=0.003)
    tight = check_quality(reference, current, thresholds={"out_of_range_share": 0.001})
    assert ("age", "out_of_range") in flagged(tight)


def test_new_categories(reference: Profile) -> None:
    current = table(10_000, seed=7)
    current["city"][:500] = "tokyo"
    current["city"][500:520] = "oslo"
    for window in (current, profile(current)):
        report = check_quality(reference, window)
        assert flagged(report) == {("city", "new_category")}
        finding = report.get("city", "new_category")
        assert finding is not None and finding.value == pytest.approx(520 / 10_000, rel=0.05)
        assert finding.detail["new_values"] == {"tokyo": 500, "oslo": 20}


def test_constant_column(reference: Profile) -> None:
    current = table(500, seed=8)
    current["plan"][:] = "pro"
    current["age"][:] = 40
    report = check_quality(reference, current)
    assert flagged(report) == {("plan", "constant"), ("age", "constant")}
    finding = report.get("plan", "constant")
    assert finding is not None and finding.value == "pro" and finding.reference == 3.0
    # three rows all "basic" (60% of the reference) is just chance
    tiny = table(3, seed=9)
    tiny["plan"][:] = "basic"
    assert ("plan", "constant") not in flagged(check_quality(reference, tiny))


def test_report_is_json_and_thresholds_are_checked(reference: Profile) -> None:
    report = check_quality(reference, table(1_000, seed=10))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["rows_current"] == 1_000 and data["thresholds"]["missing_rise"] == 0.05
    assert {f["check"] for f in data["findings"]} >= {"missing", "type", "out_of_range"}
    with pytest.raises(MonitoringError, match="unknown quality thresholds"):
        check_quality(reference, table(10, seed=0), thresholds={"missing": 0.1})


def test_numbers_profiled_as_categories() -> None:
    """Class labels (ints counted as categories) compare by value, whatever type they arrive as."""
    rng = np.random.default_rng(11)
    reference = profile({"label": rng.integers(0, 4, 5_000)}, kinds={"label": "categorical"})
    same = check_quality(reference, {"label": rng.integers(0, 4, 5_000).astype(float)})
    assert flagged(same) == set()
    as_text = check_quality(reference, {"label": rng.integers(0, 4, 5_000).astype(str)})
    assert flagged(as_text) == set()
    labels = rng.integers(0, 4, 5_000)
    labels[:400] = 7
    report = check_quality(reference, {"label": labels})
    assert flagged(report) == {("label", "new_category")}
    assert report.get("label", "new_category").detail["new_values"] == {"7": 400}  # type: ignore[union-attr]


# ---------------------------------------------------------------- calibrated, never crashing


def test_a_reference_column_that_is_entirely_null_does_not_crash() -> None:
    reference = profile({"x": np.full(100, np.nan), "y": np.arange(100.0)})
    report = check_quality(reference, {"x": np.array([1.0, np.nan, np.nan]),
                                       "y": np.arange(3.0)})
    assert report.get("x", "type") is not None
    assert ("x", "constant") not in flagged(report)


def test_one_value_is_not_a_constant_window() -> None:
    """A window with one non-null value counted as constant (p = 0) on every mostly-null
    continuous column; any single value is trivially 'all equal'."""
    rng = np.random.default_rng(4)
    values = rng.normal(0, 1, 20_000)
    values[rng.random(20_000) < 0.99] = np.nan
    window = np.full(200, np.nan)
    window[17] = 0.123
    report = check_quality(profile({"x": values}), {"x": window})
    assert flagged(report) == set()
    two = np.full(200, np.nan)
    two[[3, 9, 40]] = 0.123  # three equal values of a continuous column: not chance
    report = check_quality(profile({"x": values}), {"x": two})
    assert ("x", "constant") in flagged(report)


def _flag_rate(check: str, make: Any, seeds: int) -> int:
    """Windows (of ``seeds``) whose ``check`` flagged on one column, with no share threshold:
    the p-value alone decides, so its calibration shows."""
    limits = {"out_of_range_share": 0.0, "new_category_share": 0.0}
    hits = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        reference = profile({"x": make(rng, 500)})
        report = check_quality(reference, {"x": make(rng, 200)}, thresholds=limits)
        hits += ("x", check) in flagged(report)
    return hits


def test_out_of_range_accounts_for_the_references_own_sample() -> None:
    """The reference's min and max are random too: at 500 vs 200 rows, treating window values
    as independent trials against them flagged 2.5-3.1% of same-distribution windows at a
    nominal 1%. Binomial bound: more than 8 of 300 has probability < 0.5% at 1%."""
    assert _flag_rate("out_of_range", lambda rng, n: rng.standard_cauchy(n), 300) <= 8


def test_new_categories_account_for_the_references_own_sample() -> None:
    """The chance of an unseen category was the singleton share of a 500-row reference, taken
    as exact: a 2,000-value Zipf column flagged ~10% of same-distribution windows."""
    names = np.array([f"v{i}" for i in range(2_000)], dtype=object)
    weights = 1.0 / np.arange(1, 2_001) ** 1.1
    p = weights / weights.sum()
    assert _flag_rate("new_category", lambda rng, n: names[rng.choice(2_000, n, p=p)],
                      300) <= 8


def test_chance_formulas_match_enumeration() -> None:
    from itertools import combinations

    from shipyard.monitoring.chance import all_equal, outside_range

    for n in range(1, 6):
        for m in range(5):
            pooled = n + m
            for k in range(m + 2):
                spans = [pos[-1] - pos[0] + 1 for pos in combinations(range(pooled), n)]
                want = np.mean([pooled - s >= k for s in spans])
                assert outside_range(n, m, k) == pytest.approx(want, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(30):
        ref = rng.integers(0, 3, int(rng.integers(1, 6))).tolist()
        m, value = int(rng.integers(1, 4)), int(rng.integers(0, 3))
        pooled = ref + [value] * m
        draws = list(combinations(range(len(pooled)), m))
        want = np.mean([len({pooled[i] for i in d}) == 1 for d in draws])
        others = np.array([ref.count(v) for v in set(ref) if v != value])
        assert all_equal(others, ref.count(value), m) == pytest.approx(want, abs=1e-12)


def test_findings_are_corrected_for_the_number_of_checks() -> None:
    report = check_quality(reference_table(), table(2_000, seed=12))
    tested = [f for f in report.findings if "p_value" in f.detail]
    assert tested and all(f.detail["p_adjusted"] >= f.detail["p_value"] for f in tested)


def reference_table() -> Profile:
    return profile(table(10_000, seed=0))
