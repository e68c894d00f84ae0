"""A/B statistics: planned sample sizes, validity under early looks (mSPRT against a naive
repeated z-test), power at the planned sample size, verdicts and guardrails. Simulations are
seeded and vectorised: each arm's successes are drawn per block of 100 requests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from shipyard.errors import MonitoringError
from shipyard.monitoring.experiments import (
    A_BETTER,
    B_BETTER,
    NO_DIFFERENCE,
    NOT_YET_KNOWN,
    Arm,
    msprt,
    plugin_variance,
    sample_size,
    verdict,
)
from shipyard.monitoring.guardrails import (
    FAIL,
    PASS,
    WAIT,
    error_rate_check,
    guardrails,
    p99_check,
    quantile_bounds,
)

SIMS, BLOCK, ALPHA = 200, 100, 0.05
# Binomial allowance: 200 experiments at a true rate of alpha exceed this count with
# probability < 0.001; a test whose false-positive rate is above alpha shows it.
ALLOWED = int(stats.binom.ppf(0.999, SIMS, ALPHA))


def _cumulative(rng: np.random.Generator, p: float, looks: int) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative successes, cumulative n), shape [SIMS, looks], a look every BLOCK."""
    hits = np.cumsum(rng.binomial(BLOCK, p, size=(SIMS, looks)), axis=1)
    return hits, np.broadcast_to(BLOCK * np.arange(1, looks + 1), hits.shape)


def _msprt_rejects(xa: np.ndarray, xb: np.ndarray, n: np.ndarray, tau: float) -> np.ndarray:
    """Per experiment: did the always-valid p-value reach alpha at any look?"""
    va = plugin_variance("proportion", n, xa / n) / n
    vb = plugin_variance("proportion", n, xb / n) / n
    p, _ = msprt(xb / n - xa / n, va + vb, tau, ALPHA)
    return np.asarray(p.min(axis=1) <= ALPHA)


def test_sample_size_matches_the_textbook_two_proportion_value() -> None:
    # Fleiss, Levin & Paik (2003) section 4.2, no continuity correction: 0.10 vs 0.12, two-
    # sided alpha 0.05, power 0.8: [1.96 sqrt(2 .11 .89) + 0.8416 sqrt(.09 + .1056)]^2 / .02^2
    # = 3840.9 -> 3,841 per arm.
    plan = sample_size("proportion", 0.10, 0.02)
    assert (plan.n_a, plan.n_b) == (3841, 3841)
    # the other direction (0.10 vs 0.08) needs fewer; the plan covers both
    assert sample_size("proportion", 0.90, 0.02).n_a == 3841
    # means: 2 (1.96 + 0.8416)^2 sd^2 / mde^2 = 1569.8 -> 1,570; a 2:1 split puts 1.5x on A
    assert sample_size("mean", 0.0, 0.1, sd=1.0).n_a == 1570
    uneven = sample_size("mean", 0.0, 0.1, sd=1.0, ratio=0.5)
    assert (uneven.n_a, uneven.n_b) == (2355, 1178)
    # the always-valid test pays for its looks: about twice the fixed horizon
    seq = sample_size("proportion", 0.10, 0.02, sequential=True)
    assert 1.6 * 3841 < seq.n_a < 2.3 * 3841 and seq.to_dict()["tau"] == 0.02


@pytest.mark.parametrize("args", [
    ("median", 0.1, 0.02, {}), ("proportion", 1.2, 0.02, {}), ("proportion", 0.1, 0.0, {}),
    ("mean", 0.0, 0.1, {}), ("proportion", 0.1, 0.02, {"alpha": 1.5}),
])
def test_sample_size_refuses_bad_input(args: tuple[str, float, float, dict[str, float]]
                                       ) -> None:
    kind, baseline, mde, kw = args
    with pytest.raises(MonitoringError):
        sample_size(kind, baseline, mde, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("mde", [1e-9, 1e-300])
def test_an_mde_too_small_to_ever_detect_is_refused_by_name(mde: float,
                                                            sequential: bool) -> None:
    # 1e-300 squared underflows to 0; 1e-9 needs ~1e19 requests, past 64-bit JSON integers
    with pytest.raises(MonitoringError, match="larger mde"):
        sample_size("proportion", 0.5, mde, sequential=sequential)


def test_msprt_keeps_alpha_under_early_looks_where_a_naive_z_test_does_not() -> None:
    rng = np.random.default_rng(14)
    looks = 40  # a look every 100 requests per arm, up to 4,000
    xa, n = _cumulative(rng, 0.10, looks)
    xb, _ = _cumulative(rng, 0.10, looks)
    msprt_fp = int(_msprt_rejects(xa, xb, n, tau=0.02).sum())
    pooled = (xa + xb) / (2 * n)
    z = (xb - xa) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    naive_fp = int((np.abs(z) >= stats.norm.ppf(1 - ALPHA / 2)).any(axis=1).sum())
    assert msprt_fp <= ALLOWED, (msprt_fp, ALLOWED)
    assert naive_fp > ALLOWED, (naive_fp, ALLOWED)  # peeking inflates the naive test
    # verdict(), carried from look to look, reaches the same decisions
    plan = sample_size("proportion", 0.10, 0.02, sequential=True)
    decided = 0
    for sim in range(SIMS):
        last = None
        for look in range(looks):
            last = verdict(Arm.from_counts(int(xa[sim, look]), int(n[sim, look])),
                           Arm.from_counts(int(xb[sim, look]), int(n[sim, look])), plan,
                           previous=last)
        assert last is not None
        decided += last.verdict in (A_BETTER, B_BETTER)
    assert decided == msprt_fp


def test_msprt_keeps_alpha_for_means_under_early_looks() -> None:
    rng = np.random.default_rng(15)
    looks = 30
    values = rng.normal(1.0, 2.0, size=(2, SIMS, looks, BLOCK))
    n = BLOCK * np.arange(1, looks + 1)
    sums, squares = np.cumsum(values.sum(-1), -1), np.cumsum((values ** 2).sum(-1), -1)
    means = sums / n
    var = (squares - n * means ** 2) / (n - 1)
    p, _ = msprt(means[1] - means[0], var[0] / n + var[1] / n, 0.2, ALPHA)
    assert int((p.min(axis=1) <= ALPHA).sum()) <= ALLOWED


def test_fixed_horizon_detects_the_planned_difference_at_the_planned_power() -> None:
    plan = sample_size("proportion", 0.10, 0.02)
    rng = np.random.default_rng(16)
    xa = rng.binomial(plan.n_a, 0.10, SIMS)
    xb = rng.binomial(plan.n_b, 0.12, SIMS)
    words = [verdict(Arm.from_counts(int(a), plan.n_a), Arm.from_counts(int(b), plan.n_b),
                     plan).verdict for a, b in zip(xa, xb, strict=True)]
    detected = words.count(B_BETTER) / SIMS
    assert 0.70 <= detected <= 0.90, detected
    assert A_BETTER not in words


def test_msprt_detects_the_planned_difference_by_its_planned_sample() -> None:
    plan = sample_size("proportion", 0.10, 0.02, sequential=True)
    rng = np.random.default_rng(17)
    looks = -(-plan.n_a // BLOCK)
    xa, n = _cumulative(rng, 0.10, looks)
    xb, _ = _cumulative(rng, 0.12, looks)
    detected = _msprt_rejects(xa, xb, n, plan.tau).mean()
    # the last look alone has the planned power; earlier looks only add stops
    assert 0.75 <= detected <= 0.97, detected


def test_fixed_horizon_says_not_yet_known_before_the_planned_sample() -> None:
    plan = sample_size("proportion", 0.10, 0.02)
    # a glaring difference, but only 1,000 of 3,841 requests per arm
    early = verdict(Arm.from_counts(100, 1000), Arm.from_counts(300, 1000), plan)
    assert early.verdict == NOT_YET_KNOWN and early.p_value is None
    assert "1000 and 1000 of the planned 3841" in early.reason
    done = verdict(Arm.from_counts(384, 3841), Arm.from_counts(500, 3841), plan)
    assert done.verdict == B_BETTER and done.p_value is not None and done.p_value < 0.05
    low, high = done.interval or (0.0, 0.0)
    assert low < done.difference < high and low > 0
    # error rate: lower is better, so B's higher rate makes A better
    assert verdict(Arm.from_counts(384, 3841), Arm.from_counts(500, 3841), plan,
                   higher_is_better=False).verdict == A_BETTER
    # planned sample reached, not significant, but a difference of the mde is still possible
    unsure = verdict(Arm.from_counts(384, 3841), Arm.from_counts(415, 3841), plan)
    assert unsure.verdict == NOT_YET_KNOWN and unsure.p_value is not None
    assert unsure.p_value > 0.05 and "as large as the mde" in unsure.reason
    # 20,000 per arm with equal rates: the interval lies within +/- mde
    same = verdict(Arm.from_counts(2000, 20000), Arm.from_counts(2010, 20000), plan)
    assert same.verdict == NO_DIFFERENCE
    d = same.to_dict()
    assert d["planned_n_a"] == 3841 and d["n_b"] == 20000 and len(d["interval"]) == 2
    assert json.loads(json.dumps(d)) == d and json.dumps(plan.to_dict())


def test_sequential_verdict_can_stop_early_and_carries_over_looks() -> None:
    plan = sample_size("mean", 1.0, 0.1, sd=1.0, sequential=True)
    rng = np.random.default_rng(18)
    a, b = rng.normal(1.0, 1.0, 800), rng.normal(1.5, 1.0, 800)
    first = verdict(Arm.from_values(a), Arm.from_values(b), plan, higher_is_better=False)
    assert first.verdict == A_BETTER and first.method == "msprt"  # early, before the plan
    assert first.n_a < plan.n_a
    # a later, noisier look does not undo it: the p-value is a running minimum
    later = verdict(Arm.from_values(a[:50]), Arm.from_values(b[:50]), plan,
                    higher_is_better=False, previous=first)
    assert later.p_value == first.p_value and later.verdict == A_BETTER
    small = verdict(Arm.from_values(a[:1]), Arm.from_values(b[:1]), plan)
    assert small.verdict == NOT_YET_KNOWN and small.interval is None


def test_error_rate_guardrail() -> None:
    assert error_rate_check(1, 100, 50, 100).status == WAIT  # below min_requests
    assert error_rate_check(5, 1000, 80, 1000).status == FAIL
    assert error_rate_check(5, 5000, 6, 5000).status == PASS
    assert error_rate_check(5, 1000, 18, 1000).status == WAIT  # cannot tell yet
    with pytest.raises(MonitoringError):
        error_rate_check(5, 4, 0, 10)


def test_quantile_bounds_cover_the_p99() -> None:
    rng = np.random.default_rng(19)
    draws = rng.exponential(1.0, size=(2000, 1000))
    true = -np.log(0.01)
    lows, highs = zip(*(quantile_bounds(d, 0.99, 0.95) for d in draws), strict=True)
    assert np.mean(np.array(lows) <= true) >= 0.93
    assert np.mean(np.array(highs) >= true) >= 0.93
    assert quantile_bounds(draws[0][:100], 0.99, 0.975)[1] is None  # too few for an upper


def test_p99_guardrail_and_report() -> None:
    rng = np.random.default_rng(20)
    fast, also_fast = rng.lognormal(0, 0.5, 5000), rng.lognormal(0, 0.5, 5000)
    slow = rng.lognormal(0.6, 0.5, 5000)
    assert p99_check(fast, also_fast).status == PASS
    assert p99_check(fast, slow).status == FAIL
    assert p99_check(fast[:200], slow[:200]).status == WAIT  # no p99 bound from 200
    report = guardrails(5, 5000, 6, 5000, fast, slow)
    assert report.status == FAIL and [c.status for c in report.checks] == [PASS, FAIL]
    assert guardrails(5, 5000, 6, 5000, fast, also_fast).to_dict()["status"] == PASS
    assert guardrails(0, 100, 0, 100, fast[:100], also_fast[:100]).status == WAIT
