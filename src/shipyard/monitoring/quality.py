"""Data quality of a window against the reference: is the data still well-formed?

Checks, per column (``check`` name in the findings):

- ``missing_column`` / ``unexpected_column``: the schema changed.
- ``type``: numbers arrive as text or text as numbers (int <-> float is not a change: a numeric
  column that gains NaNs becomes float).
- ``missing``: the null share rose. Flagged when the rise is both material (at least
  ``missing_rise``, 5 percentage points by default) and significant (one-sided two-proportion
  z-test, Fisher's exact test for small counts, at ``alpha``), so neither a tiny window's
  noise nor a huge window's 0.1 pp wobble alarms.
- ``out_of_range`` (numeric columns): share of values outside the reference [min, max].
- ``new_category`` (text columns): share of rows whose value the reference never saw.
- ``constant``: the window holds a single value where the reference held several.

The last three compare against what chance alone would give on same-distribution data, since
a finite reference has not seen everything and its min, max and categories are themselves
drawn from the data: ``chance.py`` gives exact p-values under exchangeability (the reference's
n values and the window's m values one shuffled sample): ``outside_range`` (at least k window
values outside the reference's [min, max]), ``new_values`` (at least s rows whose value the
reference lacks) and ``all_equal`` (a window of one value, 1 for a single row). A finding is
flagged when the share passes its threshold *and* its p-value, adjusted with
Benjamini-Hochberg across every test of the window (``correction.py``), is below ``alpha``.

Shares are exact when the window is raw data; when it is a Profile, out-of-range shares come from
its quantile sketch (within its rank error) and new-category shares from its frequencies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from shipyard.errors import MonitoringError
from shipyard.monitoring.chance import all_equal, new_values, outside_range
from shipyard.monitoring.correction import adjust
from shipyard.profiles import ColumnKind, ColumnProfile, Profile, profile, value_key
from shipyard.profiles.frame import to_columns
from shipyard.types import Array

MIN_EXPECTED = 5.0
"""Below this expected count in a cell, the missing-share test is exact (Fisher)."""


@dataclass(frozen=True)
class QualityThresholds:
    """When a finding is flagged. Override any field: ``check_quality(..., thresholds={...})``."""

    alpha: float = 0.01
    """Significance level of every test (one-sided)."""
    missing_rise: float = 0.05
    """Smallest rise in the null share (absolute, 0.05 = 5 percentage points) that is flagged."""
    out_of_range_share: float = 0.01
    """Share of non-null values outside the reference [min, max] above which it is flagged."""
    new_category_share: float = 0.01
    """Share of non-null rows with a value unseen in the reference above which it is flagged."""
    flag_unexpected_columns: bool = True
    """Whether a column the reference lacks is flagged (it is always reported)."""


@dataclass(frozen=True)
class QualityFinding:
    """One check on one column: the window's number, the reference's, and the verdict."""

    column: str
    check: str
    value: float | str | None
    reference: float | str | None
    threshold: float | None
    flagged: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QualityReport:
    """Every finding (flagged or not), in column order."""

    findings: tuple[QualityFinding, ...]
    rows_reference: int
    rows_current: int
    thresholds: QualityThresholds

    @property
    def flagged(self) -> tuple[QualityFinding, ...]:
        return tuple(f for f in self.findings if f.flagged)

    def get(self, column: str, check: str) -> QualityFinding | None:
        """The finding of ``check`` on ``column`` (e.g. the ``missing`` share for an alert)."""
        return next((f for f in self.findings if f.column == column and f.check == check), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_reference": self.rows_reference, "rows_current": self.rows_current,
            "flagged": len(self.flagged), "thresholds": asdict(self.thresholds),
            "findings": [asdict(f) for f in self.findings],
        }


def check_quality(
    reference: Profile | Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    thresholds: QualityThresholds | Mapping[str, Any] | None = None,
) -> QualityReport:
    """Check ``current`` against ``reference``: each a Profile, or data ``profile()``
    accepts (a raw reference is profiled first).

    ``columns`` limits the checks to those columns (e.g. the model's inputs).
    """
    limits = _thresholds(thresholds)
    if not isinstance(reference, Profile):
        reference = profile(reference)
    raw: dict[str, Array] | None = None
    if isinstance(current, Profile):
        window = current
    else:
        raw = to_columns(current)
        window = profile(raw, kinds=_categories(reference, raw))
    names = list(reference.columns) if columns is None else list(columns)
    findings: list[QualityFinding] = []
    for name in names:
        ref = reference.columns.get(name)
        cur = window.columns.get(name)
        if ref is None or cur is None:
            if ref is not None:
                findings.append(QualityFinding(name, "missing_column", None, ref.dtype, None,
                                               True))
            continue
        values = None if raw is None else raw[name]
        held = reference.held_values(name) if ref.quantile_sketch is not None else None
        findings.extend(_column_findings(ref, cur, values, held, limits))
    for name in window.columns:
        if name not in reference.columns and (columns is None or name in columns):
            findings.append(QualityFinding(name, "unexpected_column", window[name].dtype, None,
                                           None, limits.flag_unexpected_columns))
    return QualityReport(_corrected(findings, limits.alpha), reference.rows, window.rows,
                         limits)


def _corrected(findings: list[QualityFinding], alpha: float) -> tuple[QualityFinding, ...]:
    """A finding with a p-value is flagged when it is material (its own ``flagged`` so far)
    and its p-value, adjusted by Benjamini-Hochberg across the window's tests, is below
    ``alpha``: dozens of columns times four checks would otherwise alarm on chance alone."""
    tests = {i: f.detail["p_value"] for i, f in enumerate(findings) if "p_value" in f.detail}
    adjusted = adjust(tests, "bh")
    out = []
    for i, finding in enumerate(findings):
        p = adjusted.get(i)
        if p is not None:
            finding = replace(finding, flagged=finding.flagged and p < alpha,
                              detail={**finding.detail, "p_adjusted": p})
        out.append(finding)
    return tuple(out)


def _categories(reference: Profile, raw: Mapping[str, Array]) -> dict[str, ColumnKind]:
    """Columns the reference counts as categories are counted so in the window too (numbers
    as class labels); other kinds are inferred afresh, so a type change shows."""
    return {name: ColumnKind.CATEGORICAL for name, col in reference.columns.items()
            if col.kind == ColumnKind.CATEGORICAL and name in raw}


def _thresholds(given: QualityThresholds | Mapping[str, Any] | None) -> QualityThresholds:
    if given is None or isinstance(given, QualityThresholds):
        return given or QualityThresholds()
    unknown = set(given) - set(QualityThresholds.__dataclass_fields__)
    if unknown:
        raise MonitoringError(f"unknown quality thresholds {sorted(unknown)}; known: "
                              f"{sorted(QualityThresholds.__dataclass_fields__)}")
    return replace(QualityThresholds(), **given)


def _column_findings(ref: ColumnProfile, cur: ColumnProfile, values: Array | None,
                     held: Array | None, limits: QualityThresholds) -> list[QualityFinding]:
    out = [_missing(ref, cur, limits)]
    # numbers counted as categories (class labels) compare by key, whatever type they arrive as
    labels = ref.kind == ColumnKind.CATEGORICAL and ref.is_numeric
    type_changed = ref.is_numeric != cur.is_numeric and cur.non_null > 0 and not labels
    out.append(QualityFinding(ref.name, "type", cur.dtype, ref.dtype, None, type_changed))
    if type_changed or cur.non_null == 0:
        return out
    if ref.kind != ColumnKind.CATEGORICAL and ref.min is not None and ref.max is not None:
        out.append(_out_of_range(ref, cur, values, limits))
    elif not ref.is_numeric or labels:
        out.append(_new_categories(ref, cur, limits))
    constant = _constant(ref, cur, held)
    if constant is not None:
        out.append(constant)
    return out


def _missing(ref: ColumnProfile, cur: ColumnProfile, limits: QualityThresholds
             ) -> QualityFinding:
    """One-sided test for a rise in the null share: two-proportion z-test, or Fisher's exact
    test when a cell is expected fewer than 5 times (the z-test is too eager there)."""
    p0, p1 = ref.null_share, cur.null_share
    total = ref.count + cur.count
    pooled = (ref.nulls + cur.nulls) / max(total, 1)
    expected = min(ref.count, cur.count) * min(pooled, 1 - pooled)
    if p1 <= p0:
        p_value = 1.0
    elif expected < MIN_EXPECTED:
        table = [[cur.nulls, cur.non_null], [ref.nulls, ref.non_null]]
        p_value = float(stats.fisher_exact(table, alternative="greater").pvalue)
    else:
        se = np.sqrt(pooled * (1 - pooled) * (1 / ref.count + 1 / cur.count))
        p_value = float(stats.norm.sf((p1 - p0) / se))
    flagged = p1 - p0 >= limits.missing_rise
    return QualityFinding(ref.name, "missing", p1, p0, limits.missing_rise, flagged,
                          {"p_value": p_value, "rise": p1 - p0, "nulls": cur.nulls})


def _out_of_range(ref: ColumnProfile, cur: ColumnProfile, values: Array | None,
                  limits: QualityThresholds) -> QualityFinding:
    assert ref.min is not None and ref.max is not None
    low, high = ref.min, ref.max
    if values is not None:
        x = values.astype(np.float64)
        x = x[~np.isnan(x)]
        below, above = float(np.mean(x < low)), float(np.mean(x > high))
    else:
        below = above = 0.0
        if cur.min is not None and cur.min < low:
            below = float(cur.cdf(np.nextafter(low, -np.inf)))
        if cur.max is not None and cur.max > high:
            above = 1.0 - float(cur.cdf(high))
    share = below + above
    chance = 2.0 / (ref.non_null + 1)
    p_value = outside_range(ref.non_null, cur.non_null, round(share * cur.non_null))
    flagged = share > limits.out_of_range_share
    return QualityFinding(
        ref.name, "out_of_range", share, f"[{low:g}, {high:g}]", limits.out_of_range_share,
        flagged, {"below": below, "above": above, "p_value": p_value, "chance": chance,
                  "exact": values is not None or (below == 0 and above == 0)})


def _new_categories(ref: ColumnProfile, cur: ColumnProfile, limits: QualityThresholds
                    ) -> QualityFinding:
    skipped = None
    if not ref.exact:
        skipped = "the reference has too many categories to know them all (frequent items)"
    elif cur.counts is None and cur.items_sketch is None:
        skipped = "the window was profiled as numbers: pass it with the reference's kinds"
    if skipped:
        return QualityFinding(ref.name, "new_category", None, None, limits.new_category_share,
                              False, {"skipped": skipped})
    seen = ref.frequencies()
    counts = cur.frequencies()
    new = {k: n for k, n in counts.items() if k not in seen}
    if cur.exact:
        share = sum(new.values()) / cur.non_null
    else:  # the window's rarest values are not listed: infer the new share from the known
        share = max(0.0, 1.0 - sum(n for k, n in counts.items() if k in seen) / cur.non_null)
    # the p-value counts only the listed new rows (all of them when the window is exact)
    p_value, expected = new_values(seen, counts)
    chance = expected / cur.non_null
    flagged = share > limits.new_category_share
    top = sorted(new.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return QualityFinding(ref.name, "new_category", share, float(len(seen)),
                          limits.new_category_share, flagged,
                          {"new_values": dict(top), "p_value": p_value, "chance": chance,
                           "exact": cur.exact})


def _constant(ref: ColumnProfile, cur: ColumnProfile, held: Array | None
              ) -> QualityFinding | None:
    """Only reported when the window is constant; flagged unless the reference makes
    ``cur.non_null`` equal values likely (one value alone is never flagged)."""
    value = _single_value(cur)
    if value is None or ref.non_null == 0 or _single_value(ref) is not None:
        return None
    own, others = _value_counts(ref, value, held)
    p_value = all_equal(others, own, cur.non_null)
    return QualityFinding(ref.name, "constant", value, _distinct(ref), None, True,
                          {"reference_share_of_value": own / ref.non_null, "p_value": p_value})


def _value_counts(ref: ColumnProfile, value: str, held: Array | None) -> tuple[float, Array]:
    """How often the reference holds ``value``, and its counts of every other value (upper
    bounds where the reference estimates them)."""
    if ref.kind != ColumnKind.NUMERIC:
        counts = ref.frequencies()
        error = ref.frequency_error
        own = counts.pop(value, error)
        return float(own), np.array(list(counts.values()), dtype=np.float64)
    if held is not None:
        values, tally = np.unique(held, return_counts=True)
    else:
        values, tally = ref.atoms()
    mine = values == float(value)
    return float(tally[mine].sum()), tally[~mine].astype(np.float64)


def _single_value(col: ColumnProfile) -> str | None:
    """The column's only value (as text) when it has exactly one, else None."""
    if col.non_null == 0:
        return None
    if col.kind == ColumnKind.NUMERIC:
        return value_key(col.min) if col.min == col.max else None
    counts = col.frequencies()
    return next(iter(counts)) if col.exact and len(counts) == 1 else None


def _distinct(col: ColumnProfile) -> float | str | None:
    if col.kind == ColumnKind.NUMERIC:
        return None if col.min is None else f"[{col.min:g}, {col.max:g}]"
    return None if col.distinct is None else float(col.distinct)


__all__ = ["QualityFinding", "QualityReport", "QualityThresholds", "check_quality"]
