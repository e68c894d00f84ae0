"""``compare(reference, current) -> DriftReport``: which columns drifted, and the dataset.

A column is called drifted only when the change is both *real* and *material*:

    drifted = p_adjusted < alpha  AND  effect_size >= threshold

The p-value alone flags trivial shifts once windows are large (at 1M rows a 0.02 sd shift
has p ~ 1e-40); the effect size alone flags noise when windows are small. P-values are
adjusted across one family, the compared columns and the three multivariate tests together
(Benjamini-Hochberg by default; Bonferroni or none on request): the dataset verdict is one
question, and two families each at ``alpha`` would cry wolf twice as often.

Method per column (override with ``methods={"col": "psi"}``, or by kind:
``methods={"numeric": "psi"}``):

| kind        | default | p-value                          | effect size (default gate)     |
|-------------|---------|----------------------------------|--------------------------------|
| numeric     | ks      | KS (exact when n*m <= 1e4)       | Wasserstein-1 / reference sd (0.1) |
| categorical | chi2    | chi-squared, rare cells pooled   | Jensen-Shannon distance (0.1 *)|
| binary      | ztest   | two-proportion z, Fisher's exact p | Cohen's h (0.1)              |
| any         | psi     | chi-squared approximation of PSI | PSI (0.1 *)                    |

(*) raised by the sampling noise at the actual counts (``_with_noise``): the reported
``threshold`` is the raised one, ``detail["threshold_set"]`` the configured one.

``wasserstein`` (numeric) and ``jensenshannon`` (categorical) report the distance as the
statistic with the KS / chi-squared p-value. A binary column of numbers whose current values
leave the reference's two is compared as numbers (ks), one of text as categories (chi2).

The dataset drifts when at least ``drift_share`` of the tested columns drifted, or when a
multivariate test (MMD, domain classifier, PCA reconstruction: see ``multivariate``) drifted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import MonitoringError
from shipyard.monitoring import multivariate as mv
from shipyard.monitoring.correction import Correction, adjust
from shipyard.monitoring.report import ColumnDrift, DriftReport, MultivariateResult
from shipyard.monitoring.sides import Side
from shipyard.monitoring.statistics import (
    Outcome,
    binary_outcome,
    categorical_outcome,
    numeric_outcome,
)
from shipyard.profiles import ColumnKind

DEFAULT_THRESHOLDS: dict[str, float] = {
    "wasserstein_norm": 0.1,   # 0.1 reference sd of mean shift (scale x1.2 gives ~0.16)
    "jensenshannon": 0.1,      # a 10% new category gives ~0.23; reversed frequencies more
    "cohens_h": 0.1,           # ~0.1 sd of the 0/1 variable (50% -> 55%, 1% -> 2.2%)
    "psi": 0.1,                # the usual "moderate shift" line
    "mmd2": 0.003,             # no-drift MMD^2 stays below ~0.002 at 1000 rows a side
    "auc": 0.55,               # a classifier that separates the windows at all
    "error_shift": 0.2,        # mean reconstruction error moved 0.2 sd of its own spread
}
"""Effect-size gates, keyed by effect name. Override per column or per effect name."""

METHODS_BY_KIND: dict[ColumnKind, tuple[str, ...]] = {
    ColumnKind.NUMERIC: ("ks", "wasserstein", "psi"),
    ColumnKind.CATEGORICAL: ("chi2", "jensenshannon", "psi"),
    ColumnKind.BINARY: ("ztest", "chi2", "jensenshannon", "psi"),
}
METHODS = ("ks", "wasserstein", "psi", "chi2", "jensenshannon", "ztest")
EFFECT_OF_METHOD = {"ks": "wasserstein_norm", "wasserstein": "wasserstein_norm", "psi": "psi",
                    "chi2": "jensenshannon", "jensenshannon": "jensenshannon",
                    "ztest": "cohens_h", "mmd": "mmd2", "domain_classifier": "auc",
                    "pca_reconstruction": "error_shift"}


@dataclass(frozen=True)
class _Settings:
    methods: Mapping[str, str]
    thresholds: Mapping[str, float]
    alpha: float
    correction: Correction
    drift_share: float
    multivariate: bool
    seed: int | None
    sample_size: int
    names: list[str] = field(default_factory=list)


def compare(reference: Any, current: Any, *, methods: Mapping[str, str] | None = None,
            columns: Sequence[str] | None = None, alpha: float = 0.05,
            correction: Correction = "bh", thresholds: Mapping[str, float] | None = None,
            drift_share: float = 0.5, multivariate: bool = True, seed: int | None = 0,
            sample_size: int = 2000) -> DriftReport:
    """Compare two tables column by column and as a whole.

    ``reference`` / ``current``: a ``Profile``, or anything ``profile()`` accepts (a mapping of
    columns, a pandas DataFrame, a pyarrow Table); raw data gives exact statistics, a profile
    its sketches' (see ``statistics``). ``columns``: which to compare (default: those on both
    sides). ``thresholds``: effect gates by column name or effect name (``DEFAULT_THRESHOLDS``).
    ``sample_size``: rows a side for the multivariate tests (a profile brings its own sample).
    ``seed`` makes sampling and permutations reproducible.
    """
    ref, cur = Side.of(reference, "reference"), Side.of(current, "current")
    names = _columns(ref, cur, columns)
    settings = _settings(names, methods, thresholds, alpha, correction, drift_share,
                         multivariate, seed, sample_size)
    outcomes = {name: _column(name, ref, cur, settings) for name in names}
    joint = _multivariate_outcomes(ref, cur, names, settings) if multivariate else []
    # one family: every column test and every multivariate test (see module doc)
    adjusted = adjust({**{("column", n): o.p_value for n, o in outcomes.items()},
                       **{("multivariate", o.method): o.p_value for o in joint}}, correction)
    results = {name: _column_result(name, ref.kind(name), o, adjusted[("column", name)],
                                    settings)
               for name, o in outcomes.items()}
    tested = [r for r in results.values() if "skipped" not in r.detail]
    share = sum(r.drifted for r in tested) / len(tested) if tested else 0.0
    multi = tuple(_multivariate_result(o, adjusted[("multivariate", o.method)], settings)
                  for o in joint)
    dataset = (bool(tested) and share >= drift_share) or any(m.drifted for m in multi)
    return DriftReport(
        columns=results, drift_share=share, dataset_drift=dataset, multivariate=multi,
        rows_reference=ref.rows, rows_current=cur.rows, alpha=alpha, correction=correction,
        share_threshold=drift_share,
        only_reference=tuple(n for n in ref.names if n not in cur.names),
        only_current=tuple(n for n in cur.names if n not in ref.names),
    )


# ---------------------------------------------------------------- inputs


def _columns(ref: Side, cur: Side, columns: Sequence[str] | None) -> list[str]:
    shared = [n for n in ref.names if n in set(cur.names)]
    if columns is None:
        if not shared:
            raise MonitoringError(
                f"the reference and current data share no column (reference: "
                f"{_listing(ref.names)}; current: {_listing(cur.names)})")
        return shared
    names = list(dict.fromkeys(columns))
    missing = [n for n in names if n not in shared]
    if missing:
        raise MonitoringError(f"columns {missing} are not on both sides; shared columns: "
                              f"{_listing(shared)}")
    if not names:
        raise MonitoringError("columns=[] leaves nothing to compare")
    return names


def _settings(names: list[str], methods: Mapping[str, str] | None,
              thresholds: Mapping[str, float] | None, alpha: float, correction: Correction,
              drift_share: float, multivariate: bool, seed: int | None,
              sample_size: int) -> _Settings:
    if correction not in ("bh", "bonferroni", "none"):
        raise MonitoringError(f"unknown correction {correction!r}; use 'bh', 'bonferroni' "
                              "or 'none'")
    if not 0 < alpha < 1:
        raise MonitoringError(f"alpha must lie between 0 and 1, got {alpha}")
    if not 0 < drift_share <= 1:
        raise MonitoringError(f"drift_share must lie in (0, 1], got {drift_share}")
    if sample_size < 2:
        raise MonitoringError(f"sample_size must be at least 2, got {sample_size}")
    kinds = {str(k) for k in ColumnKind}
    for key, method in (methods or {}).items():
        if method not in METHODS:
            raise MonitoringError(f"unknown method {method!r} for {key!r}; methods are "
                                  f"{', '.join(METHODS)}")
        if key not in names and key not in kinds:
            raise MonitoringError(f"methods names {key!r}, which is neither a compared "
                                  f"column nor a kind ({', '.join(sorted(kinds))})")
    effects = set(DEFAULT_THRESHOLDS) | set(EFFECT_OF_METHOD)
    for key, value in (thresholds or {}).items():
        if key not in names and key not in effects:
            raise MonitoringError(f"thresholds names {key!r}, which is neither a compared "
                                  f"column nor an effect or method name "
                                  f"({', '.join(sorted(effects))})")
        if not (isinstance(value, int | float) and value >= 0):
            raise MonitoringError(f"threshold for {key!r} must be a number >= 0, got {value!r}")
    return _Settings(dict(methods or {}), dict(thresholds or {}), alpha, correction,
                     drift_share, multivariate, seed, sample_size, names)


def _listing(names: list[str]) -> str:
    return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


# ---------------------------------------------------------------- one column


def _column(name: str, ref: Side, cur: Side, settings: _Settings) -> Outcome:
    kind = _kind(name, ref, cur)
    chosen = settings.methods.get(name) or settings.methods.get(str(kind))
    for side in (ref, cur):
        if side.non_null(name) == 0:
            method = chosen or METHODS_BY_KIND[kind][0]
            return Outcome(method, math.nan, None, 0.0, EFFECT_OF_METHOD[method],
                           {"skipped": f"no non-null values in the {side.label} data"})
    path, note = _path(name, kind, ref, cur)
    method = chosen or METHODS_BY_KIND[path][0]
    if method not in METHODS_BY_KIND[path]:
        raise MonitoringError(f"method {method!r} does not apply to {path} column {name!r}; "
                              f"use one of {', '.join(METHODS_BY_KIND[path])}")
    if path == ColumnKind.NUMERIC:
        outcome = numeric_outcome(method, ref.numeric(name), cur.numeric(name))
    elif method == "ztest":
        outcome = binary_outcome(ref.counts(name), cur.counts(name))
    else:
        outcome = categorical_outcome(method, ref.counts(name), cur.counts(name))
    if note:
        outcome.detail["note"] = note
    return outcome


def _kind(name: str, ref: Side, cur: Side) -> ColumnKind:
    """A profile's kind (it may have been set on purpose, e.g. class labels as categories),
    the reference's first; else the kind inferred from the reference data."""
    for side in (ref, cur):
        if side.profile is not None:
            return side.kind(name)
    return ref.kind(name)


def _path(name: str, kind: ColumnKind, ref: Side, cur: Side) -> tuple[ColumnKind, str]:
    """Which test family applies, given the column's kind and what each side holds."""
    note = ""
    if kind == ColumnKind.BINARY:
        if ref.two_values_at_most(name) and cur.two_values_at_most(name) and len(
                set(ref.counts(name).counts) | set(cur.counts(name).counts)) <= 2:
            return ColumnKind.BINARY, ""
        numbers = ref.can_rank(name) and cur.can_rank(name)
        kind = ColumnKind.NUMERIC if numbers else ColumnKind.CATEGORICAL
        note = (f"binary, but the values of both sides together are more than two; "
                f"compared as {'numbers' if numbers else 'categories'}")
    for side in (ref, cur):
        if not (side.can_rank(name) if kind == ColumnKind.NUMERIC else side.can_count(name)):
            other = cur if side is ref else ref
            raise MonitoringError(
                f"column {name!r} is {kind} in the {other.label} data but "
                f"{side.kind(name)} ({'numbers' if side.numbers_underneath(name) else 'text'}) "
                f"in the {side.label} data; convert one side (or profile it with "
                "kinds=reference.kinds), or leave the column out with columns=")
    return kind, note


def _threshold(name: str, effect: str, method: str, settings: _Settings) -> float:
    for key in (name, effect, method):
        if key in settings.thresholds:
            return float(settings.thresholds[key])
    return DEFAULT_THRESHOLDS[effect]


def _column_result(name: str, kind: ColumnKind, o: Outcome, p_adjusted: float | None,
                   settings: _Settings) -> ColumnDrift:
    threshold = _with_noise(_threshold(name, o.effect_name, o.method, settings), o)
    drifted = _verdict(p_adjusted, o.effect_size, threshold, settings.alpha)
    return ColumnDrift(name=name, kind=str(kind), method=o.method, statistic=o.statistic,
                       p_value=o.p_value, p_adjusted=p_adjusted, effect_size=o.effect_size,
                       effect_name=o.effect_name, threshold=threshold, drifted=drifted,
                       detail=o.detail)


def _with_noise(threshold: float, o: Outcome) -> float:
    """The gate raised by the effect that same-distribution samples of these counts show on
    average (``detail["noise"]``): a divergence (PSI) adds it, a distance (Jensen-Shannon)
    adds it in quadrature (its square is the divergence). A material change must exceed the
    threshold *beyond* sampling noise: thousands of sparse categories give a noise of the
    threshold's own size (a 2,000-value Zipf column: JS 0.1 at 10k rows a side, p 0.001)."""
    noise = float(o.detail.get("noise", 0.0))
    if noise <= 0 or threshold <= 0:
        return threshold
    raised = threshold + noise if o.effect_name == "psi" else math.hypot(threshold, noise)
    o.detail["threshold_set"] = threshold
    return raised


def _verdict(p_adjusted: float | None, effect: float, threshold: float, alpha: float) -> bool:
    return p_adjusted is not None and p_adjusted < alpha and effect >= threshold


# ---------------------------------------------------------------- multivariate


def _multivariate_outcomes(ref: Side, cur: Side, names: list[str],
                           settings: _Settings) -> list[Outcome]:
    scales = {n: (ref.numeric(n).mean, ref.numeric(n).std) for n in names
              if _kind(n, ref, cur) != ColumnKind.CATEGORICAL
              and ref.can_rank(n) and cur.can_rank(n)}
    names = [n for n in names if ref.in_sample(n) and cur.in_sample(n)]
    size, seed = settings.sample_size, settings.seed
    return list(mv.multivariate_outcomes(ref.sample(names, size, seed),
                                         cur.sample(names, size, None if seed is None
                                                    else seed + 1),
                                         scales, seed))


def _multivariate_result(o: Outcome, p_adjusted: float | None,
                         settings: _Settings) -> MultivariateResult:
    threshold = _threshold(o.method, o.effect_name, o.method, settings)
    drifted = _verdict(p_adjusted, o.effect_size, threshold, settings.alpha)
    return MultivariateResult(
        method=o.method, statistic=o.statistic, p_value=o.p_value, p_adjusted=p_adjusted,
        effect_size=o.effect_size, effect_name=o.effect_name, threshold=threshold,
        drifted=drifted, detail=o.detail)
