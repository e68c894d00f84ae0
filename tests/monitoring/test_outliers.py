"""Outlier scores: ~1% above the reference 99th percentile in distribution, far more on outliers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf

from shipyard.errors import MonitoringError
from shipyard.monitoring.outliers import OutlierModel, _shrunk_covariance, outlier_summary
from shipyard.profiles import Profile, profile

CITIES = np.array(["paris", "lyon", "nice", "lille", "brest", "metz"], dtype=object)
CITY_SHARES = [0.4, 0.25, 0.15, 0.1, 0.08, 0.02]


def table(rows: int, seed: int) -> dict[str, np.ndarray]:
    """Correlated numbers (x2 follows x1), a skewed one, a category and model outputs."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(10.0, 2.0, rows)
    x2 = 0.9 * (x1 - 10.0) / 2.0 + rng.normal(0.0, 0.45, rows)
    return {
        "x1": x1, "x2": x2, "spend": rng.lognormal(3.0, 0.8, rows),
        "city": rng.choice(CITIES, rows, p=CITY_SHARES),
        "prediction": rng.integers(0, 2, rows),
        "proba.1": rng.random(rows),
    }


@pytest.fixture(scope="module")
def model() -> OutlierModel:
    return OutlierModel.fit(profile(table(20_000, seed=0)))


def test_fits_inputs_only_by_default(model: OutlierModel) -> None:
    assert model.numeric == ("x1", "x2", "spend") and model.categorical == ("city",)
    assert len(model.reference_scores) == 2_000  # the profile's row sample


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_about_one_percent_in_distribution(model: OutlierModel, seed: int) -> None:
    scores = model.score(table(20_000, seed))
    summary = outlier_summary(scores, model.threshold(0.99))
    assert summary["rows"] == 20_000
    assert 0.003 <= summary["share_above"] <= 0.02
    assert outlier_summary(scores, model.threshold(0.9))["share_above"] == pytest.approx(
        0.1, abs=0.02)


def test_injected_outliers_score_high(model: OutlierModel) -> None:
    current = table(10_000, seed=4)
    current["x1"][:200] += 12.0  # 6 sd away
    side = np.where(np.arange(200) % 2, 1.5, -1.5)  # x1 1.5 sd out, x2 1.3 sd the other way:
    current["x1"][200:400] = 10.0 + 2.0 * side  # each in range, together against the trend
    current["x2"][200:400] = -0.9 * side
    current["city"][400:600] = "tokyo"  # never seen
    scores = model.score(current)
    threshold = model.threshold(0.99)
    for rows in (slice(0, 200), slice(200, 400), slice(400, 600)):
        assert np.mean(scores[rows] > threshold) > 0.9
    summary = outlier_summary(scores, threshold)
    assert summary["share_above"] > 0.06
    assert summary["p99"] > threshold and summary["max"] >= summary["p99"]
    assert summary["mean"] > outlier_summary(model.score(table(10_000, 5)), threshold)["mean"]


def test_correlation_matters(model: OutlierModel) -> None:
    """A row whose values are each typical but whose combination is not scores high."""
    ordinary = {"x1": np.array([12.0]), "x2": np.array([0.9]), "spend": np.array([20.0]),
                "city": np.array(["paris"], dtype=object)}
    odd = {**ordinary, "x2": np.array([-0.9])}
    assert model.score(odd)[0] > model.threshold(0.99) > model.score(ordinary)[0]


def test_missing_values_and_profile_windows(model: OutlierModel) -> None:
    current = table(3_000, seed=6)
    current["x1"][:10] = np.nan
    current["city"][:10] = None
    scores = model.score(current)
    assert np.isfinite(scores).all()
    window = profile(current)
    assert len(model.score(window)) == len(window.sample["x1"])
    with pytest.raises(MonitoringError, match="missing"):
        model.score({"x1": np.ones(3)})
    text = {**current, "x1": np.array(["oops"] * 3_000, dtype=object)}
    assert np.isfinite(model.score(text)).all()  # a type problem is the quality check's job


def test_explicit_columns_and_no_sample() -> None:
    reference = profile(table(1_000, seed=7))
    only = OutlierModel.fit(reference, columns=["x1", "city"])
    assert only.columns == ("x1", "city")
    with pytest.raises(MonitoringError, match="no columns"):
        OutlierModel.fit(reference, columns=[])
    with pytest.raises(MonitoringError, match="not in the reference"):
        OutlierModel.fit(reference, columns=["nope"])
    empty = Profile(reference.columns, reference.rows, {})
    with pytest.raises(MonitoringError, match="no row sample"):
        OutlierModel.fit(empty)


def test_shrinkage_matches_sklearn() -> None:
    rng = np.random.default_rng(8)
    z = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    expected, _ = ledoit_wolf(z)
    np.testing.assert_allclose(_shrunk_covariance(z), expected, rtol=1e-10)


def test_summary_of_nothing() -> None:
    assert outlier_summary(np.array([]), 3.0)["share_above"] is None


def test_chi2_tail_matches_scipy_and_stays_finite() -> None:
    from scipy import stats

    from shipyard.monitoring.outliers import _chi2_logsf

    x = np.array([0.0, 0.5, 3.0, 10.0, 100.0, 1000.0, 1400.0])
    for df in (1, 3, 10):
        np.testing.assert_allclose(_chi2_logsf(x, df), stats.chi2.logsf(x, df), rtol=1e-9)
        far = _chi2_logsf(np.array([1500.0, 5000.0, 1e6]), df)  # scipy says -inf here
        assert np.isfinite(far).all() and np.all(np.diff(far) < 0)
