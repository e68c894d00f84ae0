"""No-drift stress, fast: drift, multivariate and quality checks together rarely cry wolf.

32 awkward but common column kinds (tests/null_stress.py; the full run over every size and
200 seeds is bench/null_stress.py). Reference and window are independent draws of one
distribution, so any alarm is false; the family-wise target is at most 5% of windows.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from null_stress import alarms, window
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
