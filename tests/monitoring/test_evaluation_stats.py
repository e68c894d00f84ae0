"""The statistics of an offline evaluation (issue 18, first step): intervals cover the truth
at about their level, McNemar and the paired bootstrap find a planted difference and stay
quiet at about alpha when there is none."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from shipyard.errors import MonitoringError
from shipyard.monitoring.evaluation_stats import (
    bootstrap,
    exact_proportion,
    mcnemar,
    paired_bootstrap,
)


@pytest.mark.parametrize(("rate", "n"), [(0.5, 40), (0.93, 150), (0.99, 500), (0.2, 1000)])
def test_the_exact_interval_covers_at_least_its_level(rate: float, n: int) -> None:
    """Coverage computed exactly: the probability of every count, times whether its
    interval holds the true rate."""
    covered = 0.0
    for k in range(n + 1):
        interval = exact_proportion(k, n)
        if interval.low <= rate <= interval.high:
            covered += float(stats.binom.pmf(k, n, rate))
    assert 0.95 <= covered <= 0.995, covered
    same = stats.binomtest(int(rate * n), n).proportion_ci(0.95, method="exact")
    mine = exact_proportion(int(rate * n), n)
    assert (mine.low, mine.high) == pytest.approx((same.low, same.high))


def test_the_bootstrap_interval_covers_about_its_level() -> None:
    rng = np.random.default_rng(7)
    truth = np.sqrt(2 / np.pi)  # the mean absolute error of standard normal errors
    hits = 0
    runs = 200
    for run in range(runs):
        errors = np.abs(rng.normal(size=300))
        interval = bootstrap(lambda i, e=errors: float(np.mean(e[i])), len(errors),
                             count=400, seed=run)
        assert interval is not None
        hits += interval.low <= truth <= interval.high
    assert 0.9 <= hits / runs <= 0.99, hits / runs


def test_mcnemar_finds_a_planted_difference_and_is_quiet_without_one() -> None:
    rng = np.random.default_rng(3)
    better = rng.random(600) < 0.9
    worse = rng.random(600) < 0.8
    found = mcnemar(better, worse)
    assert found.significant(0.001), found
    assert found.interval is not None and found.interval.low > 0
    assert found.interval.low <= 0.1 <= found.interval.high
    assert found.difference == pytest.approx(better.mean() - worse.mean())
    rejected = 0
    runs = 400
    for _ in range(runs):
        a, b = rng.random(300) < 0.85, rng.random(300) < 0.85
        rejected += mcnemar(a, b).significant(0.05)
    assert 0.01 <= rejected / runs <= 0.07, rejected / runs  # exact: at most alpha, about


def test_paired_bootstrap_finds_a_planted_difference_and_is_quiet_without_one() -> None:
    rng = np.random.default_rng(11)
    truth = rng.normal(size=400)
    good = truth + rng.normal(scale=0.5, size=400)
    bad = truth + rng.normal(scale=0.7, size=400)

    def mae(pred: np.ndarray) -> object:
        return lambda i: float(np.mean(np.abs(pred[i] - truth[i])))

    found = paired_bootstrap(mae(bad), mae(good), 400, count=500)
    assert found.significant(0.01) and found.difference > 0
    assert found.interval is not None and found.interval.low > 0
    rejected = 0
    runs = 150
    for run in range(runs):
        y = rng.normal(size=200)
        a = y + rng.normal(scale=0.5, size=200)
        b = y + rng.normal(scale=0.5, size=200)
        result = paired_bootstrap(lambda i, a=a, y=y: float(np.mean(np.abs(a[i] - y[i]))),
                                  lambda i, b=b, y=y: float(np.mean(np.abs(b[i] - y[i]))),
                                  200, count=300, seed=run)
        rejected += result.significant(0.05)
    assert 0.01 <= rejected / runs <= 0.1, rejected / runs


def test_undefined_metrics_and_bad_input() -> None:
    one_class = np.zeros(50)

    def needs_two(i: np.ndarray) -> float | None:
        seen = one_class[i]
        return None if len(np.unique(seen)) < 2 else float(np.mean(seen))

    assert bootstrap(needs_two, 50) is None
    with pytest.raises(MonitoringError, match="level"):
        bootstrap(lambda i: 0.0, 10, level=95)
    with pytest.raises(MonitoringError, match="shapes"):
        mcnemar([True, False], [True])
    with pytest.raises(MonitoringError, match="successes"):
        exact_proportion(5, 3)
    same = mcnemar([True, False, True], [True, False, True])
    assert (same.p_value, same.difference) == (1.0, 0.0)
