"""A/B test statistics (pure): sample size up front, a comparison that stays valid when
people look early, and a plain verdict with the numbers behind it.

The difference is always ``B - A`` of a per-request metric: a proportion (accuracy, error
rate: each request 0 or 1) or a mean (e.g. absolute error). ``mde`` is the smallest absolute
difference the test is planned to detect; ``ratio`` = n_B / n_A (1 for a 50/50 split).

**Fixed horizon** (``sample_size(..., sequential=False)``), two-sided at ``alpha`` with
power ``power`` against a difference of ``mde``; z_a = z(1 - alpha/2), z_b = z(power):

- proportions (Fleiss, Levin & Paik, *Statistical Methods for Rates and Proportions*, 3rd ed.
  2003, section 4.2, without continuity correction), p1 = baseline, p2 = p1 +/- mde,
  p = (p1 + ratio p2) / (1 + ratio):
  n_A = [z_a sqrt(p(1-p)(1 + 1/ratio)) + z_b sqrt(p1(1-p1) + p2(1-p2)/ratio)]^2 / mde^2,
  the larger of the two directions (0.10 vs 0.12: 3,841 per arm);
- means, ``sd`` of one request's value: n_A = (z_a + z_b)^2 sd^2 (1 + 1/ratio) / mde^2.

The test, read once the planned n is reached (before it: "not yet known"): the pooled
two-proportion z-test or Welch's t-test, with the unpooled Wald / Welch interval.

**Always valid** (``sequential=True``): mSPRT with a normal mixture (Johari, Pekelis & Walsh,
"Always valid inference: continuous monitoring of A/B tests", Operations Research 2022).
With the estimate d = mean_B - mean_A, its plug-in variance V = var_A/n_A + var_B/n_B and the
mixing distribution N(theta0, tau^2) over the difference, the likelihood ratio at each look is

    Lambda(theta0) = sqrt(V / (V + tau^2)) exp(tau^2 (d - theta0)^2 / (2 V (V + tau^2)))

a non-negative martingale under theta0, so by Ville's inequality P(ever Lambda >= 1/alpha) <=
alpha however often one looks. The always-valid p-value is the running minimum of
min(1, 1/Lambda(0)); the confidence sequence is {theta0: Lambda(theta0) < 1/alpha}, i.e.
d +/- sqrt(V (V + tau^2) / tau^2 (2 ln(1/alpha) + ln((V + tau^2) / V))), intersected over looks.
**tau = mde**: at the fixed-horizon n, tau^2 / V = (z_a + z_b)^2 (7.85 at 0.05 / 0.8), near
the value (about 8 at alpha 0.05) that makes the sequence narrowest, so the test is tuned to
differences of the planned size. Its planned n is the smallest n_A whose last look alone has
the planned power (d ~ N(mde, V)); stopping at an earlier look only adds power. Variances
are plug-in estimates (a proportion's smoothed to (x + 1) / (n + 2) so no arm has variance
0), which makes the guarantee asymptotic, as in the paper; the A/A simulations in
tests/monitoring/test_experiments.py measure it.

**Verdict**: "A better" / "B better" when the test rejects no difference (direction by the
metric's ``higher_is_better``); "no difference detected" only once the planned n is reached
and the whole interval lies within (-mde, mde); otherwise "not yet known".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from shipyard.errors import MonitoringError
from shipyard.types import Array

MAX_SAMPLE = 10**12
"""Per-variant requests beyond which a plan is refused: an mde that small is never detected
(and the count would not even fit the 64-bit integers JSON readers take)."""

MetricKind = Literal["proportion", "mean"]
A_BETTER, B_BETTER = "A better", "B better"
NO_DIFFERENCE, NOT_YET_KNOWN = "no difference detected", "not yet known"


@dataclass(frozen=True)
class SamplePlan:
    """The planned test: per-variant sample sizes and what they were computed from."""

    metric_kind: MetricKind
    baseline: float
    mde: float
    alpha: float
    power: float
    ratio: float
    sd: float | None
    sequential: bool
    n_a: int
    n_b: int

    @property
    def tau(self) -> float:
        """The mSPRT mixing distribution's standard deviation (= mde)."""
        return self.mde

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tau": self.tau}


@dataclass(frozen=True)
class Arm:
    """One variant's per-request metric: count, mean and (for means) sample variance."""

    n: int
    mean: float
    var: float = 0.0

    @classmethod
    def from_counts(cls, successes: int, n: int) -> Arm:
        """A proportion: ``successes`` of ``n`` requests (correct, or errored)."""
        if n < 0 or not 0 <= successes <= max(n, 0):
            raise MonitoringError(f"need 0 <= successes <= n, got {successes} of {n}")
        p = successes / n if n else 0.0
        return cls(n, p, p * (1.0 - p))

    @classmethod
    def from_values(cls, values: Array | list[float]) -> Arm:
        """A mean over per-request values (e.g. absolute errors)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if not np.isfinite(x).all():
            raise MonitoringError("metric values must be finite numbers")
        var = float(x.var(ddof=1)) if x.size > 1 else 0.0
        return cls(int(x.size), float(x.mean()) if x.size else 0.0, var)


@dataclass(frozen=True)
class Verdict:
    """A plain verdict and the numbers behind it (``difference`` = B - A)."""

    verdict: str
    reason: str
    method: str
    metric_kind: MetricKind
    higher_is_better: bool
    n_a: int
    n_b: int
    estimate_a: float
    estimate_b: float
    difference: float
    interval: tuple[float, float] | None
    p_value: float | None
    alpha: float
    mde: float
    planned_n_a: int
    planned_n_b: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        return out


def _check_plan_inputs(kind: str, baseline: float, mde: float, alpha: float, power: float,
                       ratio: float, sd: float | None) -> None:
    if kind not in ("proportion", "mean"):
        raise MonitoringError(f"metric_kind must be 'proportion' or 'mean', got {kind!r}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise MonitoringError(f"need 0 < alpha < 1 and 0 < power < 1, got {alpha}, {power}")
    if not (mde > 0 and ratio > 0 and math.isfinite(mde) and math.isfinite(ratio)):
        raise MonitoringError(f"need mde > 0 and ratio > 0, got {mde}, {ratio}")
    if kind == "proportion" and not (0 < baseline < 1 and mde < max(baseline, 1 - baseline)):
        raise MonitoringError(f"a proportion's baseline must lie in (0, 1) with room for "
                              f"mde on one side, got {baseline} +/- {mde}")
    if kind == "mean" and (sd is None or not sd > 0 or not math.isfinite(sd)):
        raise MonitoringError("a mean's sample size needs sd > 0 (one request's standard "
                              "deviation)")


def _unit_variances(kind: MetricKind, baseline: float, mde: float, ratio: float,
                    sd: float | None) -> list[tuple[float, float]]:
    """(variance under no difference, under the mde) of n_A * (mean_B - mean_A), per
    direction of the difference."""
    if kind == "mean":
        v = (sd or 0.0) ** 2 * (1 + 1 / ratio)
        return [(v, v)]
    out = []
    for p2 in (baseline + mde, baseline - mde):
        if 0 < p2 < 1:
            pooled = (baseline + ratio * p2) / (1 + ratio)
            out.append((pooled * (1 - pooled) * (1 + 1 / ratio),
                        baseline * (1 - baseline) + p2 * (1 - p2) / ratio))
    return out


def msprt(difference: Array | float, variance: Array | float, tau: float, alpha: float,
          theta0: float = 0.0) -> tuple[Array, Array]:
    """Per look (vectorised): (min(1, 1 / Lambda(theta0)), confidence-sequence half-width).
    Take the running minimum of the first and intersect the intervals over looks."""
    d = np.asarray(difference, dtype=np.float64)
    v = np.maximum(np.asarray(variance, dtype=np.float64), 1e-12 * tau * tau)
    t2 = tau * tau
    log_lambda = 0.5 * np.log(v / (v + t2)) + t2 * (d - theta0) ** 2 / (2 * v * (v + t2))
    p = np.minimum(1.0, np.exp(-log_lambda))
    with np.errstate(divide="ignore"):  # tau too small to square (t2 == 0): an endless interval
        half = np.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + np.log((v + t2) / v)))
    return p, half


def sample_size(metric_kind: MetricKind, baseline: float, mde: float, alpha: float = 0.05,
                power: float = 0.8, ratio: float = 1.0, sd: float | None = None,
                sequential: bool = False) -> SamplePlan:
    """Per-variant sample sizes for a two-sided test of ``mde`` (see the module docstring):
    the fixed-horizon test's, or with ``sequential`` the mSPRT's (about twice as many, the
    price of being allowed to look at every request)."""
    _check_plan_inputs(metric_kind, baseline, mde, alpha, power, ratio, sd)
    z_a, z_b = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    n_a = 0
    for v0, v1 in _unit_variances(metric_kind, baseline, mde, ratio, sd):
        if sequential:
            n_a = max(n_a, _sequential_n(v1, mde, alpha, power))
        elif (z_a * math.sqrt(v0) + z_b * math.sqrt(v1)) / mde > math.sqrt(MAX_SAMPLE):
            n_a = MAX_SAMPLE + 1  # mde ** 2 may underflow to 0: compare before squaring
        else:
            n_a = max(n_a, math.ceil((z_a * math.sqrt(v0) + z_b * math.sqrt(v1)) ** 2
                                     / mde ** 2 - 1e-9))
    n_b = math.ceil(ratio * n_a - 1e-9) if n_a <= MAX_SAMPLE else n_a
    if max(n_a, n_b) > MAX_SAMPLE:
        raise MonitoringError(f"detecting a difference of {mde:g} needs more than "
                              f"{MAX_SAMPLE:.0e} requests per variant: plan a larger mde "
                              "(or a more even split)")
    return SamplePlan(metric_kind, baseline, mde, alpha, power, ratio, sd, sequential,
                      n_a, n_b)


def _sequential_power(n: float, unit_var: float, mde: float, alpha: float) -> float:
    v = unit_var / n
    _, half = msprt(mde, v, mde, alpha)
    sd = math.sqrt(v)
    h = float(half)
    return float(stats.norm.sf((h - mde) / sd) + stats.norm.cdf((-h - mde) / sd))


def _sequential_n(unit_var: float, mde: float, alpha: float, power: float) -> int:
    low, high = 1, 2
    while _sequential_power(high, unit_var, mde, alpha) < power:
        if high > MAX_SAMPLE:
            return high  # refused by sample_size
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if _sequential_power(mid, unit_var, mde, alpha) < power \
            else (low, mid)
    return high


def plugin_variance(kind: MetricKind, n: Array | float, mean: Array | float,
                    var: Array | float = 0.0) -> Array:
    """One request's variance as the tests use it (vectorised): a proportion's from its
    smoothed rate (x + 1) / (n + 2), a mean's sample variance as given."""
    if kind == "proportion":
        n_arr = np.asarray(n, dtype=np.float64)
        p = (np.asarray(mean, dtype=np.float64) * n_arr + 1) / (n_arr + 2)
        return np.asarray(p * (1 - p))
    return np.asarray(var, dtype=np.float64)


def fixed_test(kind: MetricKind, a: Arm, b: Arm, alpha: float) -> tuple[float, float, float]:
    """(two-sided p-value, interval low, interval high) of B - A: pooled two-proportion
    z-test with a Wald interval, or Welch's t-test and interval."""
    d = b.mean - a.mean
    if kind == "proportion":
        pooled = (a.mean * a.n + b.mean * b.n) / (a.n + b.n)
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / a.n + 1 / b.n))
        se = math.sqrt(a.mean * (1 - a.mean) / a.n + b.mean * (1 - b.mean) / b.n)
        p = 1.0 if se0 == 0 else float(2 * stats.norm.sf(abs(d) / se0))
        q = float(stats.norm.ppf(1 - alpha / 2))
        return p, d - q * se, d + q * se
    va, vb = a.var / a.n, b.var / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return (1.0 if d == 0 else 0.0), d, d
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    q = float(stats.t.ppf(1 - alpha / 2, df))
    return float(2 * stats.t.sf(abs(d) / se, df)), d - q * se, d + q * se


def _sequential_test(kind: MetricKind, a: Arm, b: Arm, plan: SamplePlan,
                     previous: Verdict | None) -> tuple[float, float, float]:
    v = (plugin_variance(kind, a.n, a.mean, a.var) / a.n
         + plugin_variance(kind, b.n, b.mean, b.var) / b.n)
    p_arr, half_arr = msprt(b.mean - a.mean, v, plan.tau, plan.alpha)
    d, p, half = b.mean - a.mean, float(p_arr), float(half_arr)
    low, high = d - half, d + half
    if previous is not None and previous.method == "msprt" and previous.interval:
        p = min(p, previous.p_value if previous.p_value is not None else 1.0)
        if max(low, previous.interval[0]) <= min(high, previous.interval[1]):
            low, high = max(low, previous.interval[0]), min(high, previous.interval[1])
    return p, low, high


def verdict(a: Arm, b: Arm, plan: SamplePlan, higher_is_better: bool = True,
            previous: Verdict | None = None) -> Verdict:
    """Compare B with A under ``plan``: mSPRT when ``plan.sequential`` (pass the last look's
    verdict as ``previous`` so the p-value and interval carry over), else the fixed-horizon
    test, which refuses a verdict before the planned sample size."""
    kind = plan.metric_kind
    method = "msprt" if plan.sequential else "fixed"
    reached = a.n >= plan.n_a and b.n >= plan.n_b
    p: float | None = None
    interval: tuple[float, float] | None = None
    enough = a.n >= 2 and b.n >= 2
    if enough and (plan.sequential or reached):
        p, low, high = (_sequential_test(kind, a, b, plan, previous) if plan.sequential
                        else fixed_test(kind, a, b, plan.alpha))
        interval = (low, high)
    if p is None or interval is None:
        word, reason = NOT_YET_KNOWN, (
            f"{a.n} and {b.n} of the planned {plan.n_a} and {plan.n_b} requests"
            if enough else "fewer than 2 requests in a variant")
    elif p <= plan.alpha and (interval[0] > 0 or interval[1] < 0 or not plan.sequential):
        b_higher = interval[0] > 0 if plan.sequential else b.mean > a.mean
        word = B_BETTER if b_higher == higher_is_better else A_BETTER
        reason = f"p = {p:.3g} <= alpha = {plan.alpha}"
    elif reached and -plan.mde < interval[0] and interval[1] < plan.mde:
        word, reason = NO_DIFFERENCE, (f"planned sample reached and the interval lies "
                                       f"within +/- mde = {plan.mde}")
    else:
        word = NOT_YET_KNOWN
        reason = ("interval still holds differences as large as the mde" if reached
                  else f"no significant difference yet; {a.n} and {b.n} of the planned "
                       f"{plan.n_a} and {plan.n_b} requests")
    return Verdict(word, reason, method, kind, higher_is_better, a.n, b.n, a.mean, b.mean,
                   b.mean - a.mean, interval, p, plan.alpha, plan.mde, plan.n_a, plan.n_b)
