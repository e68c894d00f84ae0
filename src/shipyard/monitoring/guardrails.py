"""Guardrails of a comparison (pure): is variant B's error rate or p99 latency worse than
A's? Each check answers "pass" (shown not worse beyond its tolerance), "fail" (shown worse
beyond it) or "wait" (the data cannot tell yet: too little traffic is never a pass).

- **Error rate**: the Agresti-Caffo interval of p_B - p_A (each arm's rate taken as
  (x + 1) / (n + 2), Wald variance on those; Agresti & Caffo, The American Statistician
  2000). Fail when its one-sided lower bound at level 1 - alpha exceeds
  ``max_error_increase``; pass when its upper bound is at most that; each decision errs with
  probability at most alpha. Below ``min_requests`` in either arm: wait.
- **p99 latency**: distribution-free order-statistic bounds on each arm's 99th percentile
  (the k-th smallest of n values lies below the quantile q with probability
  P(Binomial(n, q) >= k)), each at level 1 - alpha/2 so both hold together with
  probability 1 - alpha (Bonferroni). Fail when B's lower bound exceeds ``max_p99_ratio``
  times A's upper bound; pass when B's upper bound is at most the ratio times A's lower
  bound. An upper bound needs 0.99^n <= alpha/2 (367 values at alpha 0.05); with fewer: wait.

The overall status is fail if any check fails, else wait if any waits, else pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
from scipy import stats

from shipyard.errors import MonitoringError
from shipyard.types import Array

PASS: Final = "pass"
FAIL: Final = "fail"
WAIT: Final = "wait"


@dataclass(frozen=True)
class GuardrailCheck:
    """One check: its status, each arm's value (error rate, p99) and the bounds it decided
    on (None where the data give none yet): for the error rate, on p_B - p_A; for the p99,
    on B's p99. ``limit``: ``max_error_increase`` or ``max_p99_ratio``."""

    name: str
    status: str
    value_a: float | None
    value_b: float | None
    lower: float | None
    upper: float | None
    limit: float
    reason: str


@dataclass(frozen=True)
class GuardrailReport:
    status: str
    checks: tuple[GuardrailCheck, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [asdict(c) for c in self.checks]}


def error_rate_check(errors_a: int, requests_a: int, errors_b: int, requests_b: int,
                     max_error_increase: float = 0.01, alpha: float = 0.05,
                     min_requests: int = 500) -> GuardrailCheck:
    """B's error rate against A's plus ``max_error_increase`` (absolute)."""
    for x, n in ((errors_a, requests_a), (errors_b, requests_b)):
        if n < 0 or not 0 <= x <= max(n, 0):
            raise MonitoringError(f"need 0 <= errors <= requests, got {x} of {n}")
    rate_a = errors_a / requests_a if requests_a else None
    rate_b = errors_b / requests_b if requests_b else None
    if min(requests_a, requests_b) < min_requests:
        return GuardrailCheck("error_rate", WAIT, rate_a, rate_b, None, None,
                              max_error_increase,
                              f"{requests_a} and {requests_b} requests, "
                              f"{min_requests} needed in each")
    pa, pb = (errors_a + 1) / (requests_a + 2), (errors_b + 1) / (requests_b + 2)
    se = math.sqrt(pa * (1 - pa) / (requests_a + 2) + pb * (1 - pb) / (requests_b + 2))
    z = float(stats.norm.ppf(1 - alpha))
    low, high = pb - pa - z * se, pb - pa + z * se
    if low > max_error_increase:
        status, reason = FAIL, "B's error rate is higher than A's beyond the tolerance"
    elif high <= max_error_increase:
        status, reason = PASS, "B's error rate is within the tolerance of A's"
    else:
        status, reason = WAIT, "the interval straddles the tolerance"
    return GuardrailCheck("error_rate", status, rate_a, rate_b, low, high,
                          max_error_increase, reason)


def quantile_bounds(values: Array, q: float, confidence: float) -> tuple[float | None,
                                                                         float | None]:
    """One-sided distribution-free bounds (lower, upper) on the q-quantile, each holding with
    probability >= ``confidence``; None where n is too small for one to exist."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    # upper: the u-th smallest (1-based) with P(Binomial(n, q) <= u - 1) >= confidence
    u = int(stats.binom.ppf(confidence, n, q)) + 1 if n else n + 1
    # lower: the largest l with P(Binomial(n, q) <= l - 1) <= 1 - confidence
    k = np.arange(n + 1)
    ok = np.flatnonzero(stats.binom.cdf(k, n, q) <= 1 - confidence)
    lo = int(ok[-1]) + 1 if ok.size else 0
    return (float(x[lo - 1]) if lo >= 1 else None, float(x[u - 1]) if u <= n else None)


def p99_check(latencies_a: Array, latencies_b: Array, max_p99_ratio: float = 1.2,
              alpha: float = 0.05) -> GuardrailCheck:
    """B's p99 latency against ``max_p99_ratio`` times A's."""
    a, b = (np.asarray(v, dtype=np.float64).ravel() for v in (latencies_a, latencies_b))
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise MonitoringError("latencies must be finite numbers")
    low_a, high_a = quantile_bounds(a, 0.99, 1 - alpha / 2)
    low_b, high_b = quantile_bounds(b, 0.99, 1 - alpha / 2)
    p99_a = float(np.quantile(a, 0.99)) if a.size else None
    p99_b = float(np.quantile(b, 0.99)) if b.size else None
    if low_b is not None and high_a is not None and low_b > max_p99_ratio * high_a:
        status, reason = FAIL, "B's p99 exceeds the allowed multiple of A's"
    elif high_b is not None and low_a is not None and high_b <= max_p99_ratio * low_a:
        status, reason = PASS, "B's p99 is within the allowed multiple of A's"
    else:
        status, reason = WAIT, ("too few requests for a p99 bound"
                                if None in (low_a, high_a, low_b, high_b)
                                else "the bounds overlap the allowed multiple")
    return GuardrailCheck("p99_latency", status, p99_a, p99_b, low_b, high_b, max_p99_ratio,
                          reason)


def guardrails(errors_a: int, requests_a: int, errors_b: int, requests_b: int,
               latencies_a: Array, latencies_b: Array, *, max_error_increase: float = 0.01,
               max_p99_ratio: float = 1.2, alpha: float = 0.05,
               min_requests: int = 500) -> GuardrailReport:
    """Both checks of B against A; fail if any fails, else wait if any waits, else pass."""
    checks = (error_rate_check(errors_a, requests_a, errors_b, requests_b,
                               max_error_increase, alpha, min_requests),
              p99_check(latencies_a, latencies_b, max_p99_ratio, alpha))
    statuses = {c.status for c in checks}
    status = FAIL if FAIL in statuses else WAIT if WAIT in statuses else PASS
    return GuardrailReport(status, checks)
