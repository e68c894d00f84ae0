"""Outlier score per row against the reference, and a per-window summary.

The model is learned from the reference profile's row sample, so it costs nothing beyond the
profile the package already ships:

- numeric columns become normal scores, z = Phi^-1(F_ref(x)), with F_ref read from the
  reference's quantile sketch (so a skewed column such as spend does not drown the others in
  its long tail); beyond the reference range z keeps growing by (distance past the edge) /
  reference standard deviation. The scores are then combined by Mahalanobis distance under
  a Ledoit-Wolf shrunk covariance (the sample has a few thousand rows; shrinkage keeps the
  inverse stable when columns are nearly collinear). It catches rows whose values are each in
  range but whose combination is not (x2 = -x1 where the reference had x2 = x1);
- categorical and binary columns are scored by rarity: the tail probability of the row's value,
  the reference share of all values at most as frequent as it (1 for the commonest value, about
  1 / n for one never seen).

The parts are combined as p-values (Fisher's method): ``score = -2 (log P(chi2_p >= d²) + sum
log tail)``, so every column counts on one scale. The score is not assumed to follow any
distribution: the model keeps the scores of the reference sample itself, and ``threshold(q)``
is their q-quantile, so a threshold at 0.99 flags about 1% of rows from the reference's own
distribution. A missing value contributes nothing (missingness is the quality check's job).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from shipyard.errors import MonitoringError
from shipyard.profiles import ColumnKind, ColumnProfile, Profile, value_key
from shipyard.profiles.frame import to_columns
from shipyard.types import Array

FloatArray = npt.NDArray[np.float64]

OUTPUT_COLUMNS = ("prediction", "target")
OUTPUT_PREFIX = "proba."
"""Model outputs in the monitoring frame: left out by default (outliers are about inputs)."""
MIN_SHRINKAGE = 1e-3
GRID = 513
"""Reference quantiles kept per numeric column for its normal scores."""


@dataclass(frozen=True, eq=False)
class OutlierModel:
    """Learned state (see the module docstring); build it with ``OutlierModel.fit``."""

    numeric: tuple[str, ...]
    knots: tuple[FloatArray, ...]
    ranks: tuple[FloatArray, ...]
    scale: FloatArray
    edge: FloatArray
    precision: FloatArray
    categorical: tuple[str, ...]
    tails: tuple[dict[str, float], ...]
    unseen: tuple[float, ...]
    reference_scores: FloatArray

    @classmethod
    def fit(cls, reference: Profile, *, columns: Sequence[str] | None = None) -> OutlierModel:
        """Learn from ``reference.sample``; ``columns`` defaults to every column except the
        model outputs (``prediction``, ``target``, ``proba.*``)."""
        names = _columns(reference, columns)
        if not names:
            raise MonitoringError("no columns to learn outliers from")
        sample = reference.sample
        if not sample or not len(next(iter(sample.values()))):
            raise MonitoringError("the reference profile has no row sample to learn outliers from")
        numeric = tuple(n for n in names if reference[n].kind == ColumnKind.NUMERIC)
        categorical = tuple(n for n in names if reference[n].kind != ColumnKind.NUMERIC)
        grids = [_rank_grid(reference[n]) for n in numeric]
        spread = np.sqrt([reference[n].variance or 0.0 for n in numeric])
        partial = cls(
            numeric, tuple(k for k, _ in grids), tuple(r for _, r in grids),
            np.where(spread > 0, spread, 1.0).astype(np.float64),
            np.array([0.5 / (reference[n].non_null + 1) for n in numeric], dtype=np.float64),
            np.eye(len(numeric)), categorical,
            tuple(_tails(reference[n]) for n in categorical),
            tuple(1.0 / (reference[n].non_null + 1) for n in categorical), np.zeros(0))
        z = partial._standardised(sample)
        precision = np.asarray(np.linalg.inv(_shrunk_covariance(z)) if numeric else np.eye(0),
                               dtype=np.float64)
        model = replace(partial, precision=precision)
        return replace(model, reference_scores=np.sort(model.score(sample)))

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def score(self, current: Any) -> FloatArray:
        """One score per row of ``current`` (data ``profile()`` accepts, or a Profile: its row
        sample). Higher is more unusual; compare with ``threshold()``."""
        data = current.sample if isinstance(current, Profile) else to_columns(current)
        missing = [n for n in self.columns if n not in data]
        if missing:
            raise MonitoringError(f"cannot score outliers: columns {missing} are missing")
        rows = len(data[self.columns[0]]) if self.columns else 0
        log_p = np.zeros(rows)
        if self.numeric:
            z = self._standardised(data)
            d2 = np.einsum("ij,jk,ik->i", z, self.precision, z)
            log_p += _chi2_logsf(d2, len(self.numeric))
        for name, tails, unseen in zip(self.categorical, self.tails, self.unseen, strict=True):
            log_p += np.log(_rarity(data[name], tails, unseen))
        return np.asarray(-2.0 * log_p, dtype=np.float64)

    def threshold(self, quantile: float = 0.99) -> float:
        """The ``quantile`` of the reference sample's own scores."""
        if not 0.0 <= quantile <= 1.0:
            raise MonitoringError(f"quantile must lie in [0, 1], got {quantile}")
        return float(np.quantile(self.reference_scores, quantile))

    def _standardised(self, data: Mapping[str, Array]) -> FloatArray:
        """Normal scores of the numeric columns, one column each; a missing value gives 0."""
        out = np.zeros((len(data[self.numeric[0]]) if self.numeric else 0, len(self.numeric)))
        for j, name in enumerate(self.numeric):
            x = _as_float(data[name])
            knots, ranks = self.knots[j], self.ranks[j]
            rank = np.clip(np.interp(x, knots, ranks), self.edge[j], 1.0 - self.edge[j])
            past = (np.maximum(x - knots[-1], 0.0) - np.maximum(knots[0] - x, 0.0)) / self.scale[j]
            z = special.ndtri(rank) + past
            out[:, j] = np.where(np.isnan(z), 0.0, z)
        return out


def _rank_grid(column: ColumnProfile) -> tuple[FloatArray, FloatArray]:
    """Distinct reference quantiles and the mid-rank of each, for ``np.interp`` (mid-ranks
    keep a heavily tied value, say 40% zeros, at the middle of its block)."""
    grid = np.linspace(0.0, 1.0, GRID)
    values = column.quantiles(grid) if column.non_null else np.zeros(GRID)
    knots, first, counts = np.unique(values, return_index=True, return_counts=True)
    mid = (grid[first] + grid[first + counts - 1]) / 2.0
    return knots.astype(np.float64), mid.astype(np.float64)


def _columns(reference: Profile, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return [n for n in reference.columns
                if n not in OUTPUT_COLUMNS and not n.startswith(OUTPUT_PREFIX)]
    unknown = [n for n in columns if n not in reference.columns]
    if unknown:
        raise MonitoringError(f"columns {unknown} are not in the reference profile")
    return list(columns)


def _as_float(values: Array) -> FloatArray:
    """Numbers as floats; a column that arrives as text scores as missing (a type problem
    the quality check reports)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.full(len(values), np.nan)


def _shrunk_covariance(z: FloatArray) -> FloatArray:
    """Ledoit-Wolf (2004) shrinkage towards a scaled identity, at least ``MIN_SHRINKAGE``."""
    n, p = z.shape
    x = z - z.mean(axis=0)
    cov = x.T @ x / n
    mu = float(np.trace(cov)) / p
    if mu <= 0:
        return np.eye(p)
    x2 = x**2
    beta = (float(np.sum(x2.T @ x2)) / n - float(np.sum(cov**2))) / (p * n)
    delta = float(np.sum((cov - mu * np.eye(p)) ** 2)) / p
    shrinkage = 1.0 if delta <= 0 else max(min(beta, delta) / delta, MIN_SHRINKAGE)
    return np.asarray((1.0 - shrinkage) * cov + shrinkage * mu * np.eye(p), dtype=np.float64)


def _chi2_logsf(x: FloatArray, df: int) -> FloatArray:
    """log P(chi2_df >= x); scipy.stats' logsf is 10x slower, and the upper incomplete gamma
    underflows past x ~ 1400, where its leading asymptotic term takes over."""
    a, half = df / 2.0, np.maximum(x, 0.0) / 2.0
    with np.errstate(divide="ignore"):
        direct = np.log(special.gammaincc(a, half))
    asymptotic = (a - 1.0) * np.log(np.maximum(half, 1e-300)) - half - special.gammaln(a)
    return np.asarray(np.where(np.isfinite(direct), direct, asymptotic), dtype=np.float64)


def _tails(column: ColumnProfile) -> dict[str, float]:
    """Per value, the reference share of values at most as frequent (the rarity p-value).
    Values a frequent-items sketch did not keep share the mass it could not account for."""
    counts = column.frequencies()
    total = max(column.non_null, 1)
    unlisted = max(total - sum(counts.values()), 0)
    running, tails = float(unlisted), {}
    for key, n in sorted(counts.items(), key=lambda kv: kv[1]):
        running += n
        tails[key] = running / total
    return tails


def _rarity(values: Array, tails: dict[str, float], unseen: float) -> FloatArray:
    out = np.ones(len(values))
    cache: dict[object, float] = {}
    for i, value in enumerate(values.tolist()):
        tail = cache.get(value)
        if tail is None:
            key = value_key(value)
            tail = cache[value] = 1.0 if key is None else tails.get(key, unseen)
        out[i] = tail
    return np.maximum(out, unseen)


def outlier_summary(scores: Any, threshold: float) -> dict[str, Any]:
    """Share of rows above ``threshold``, and the scores' mean, 99th percentile and maximum."""
    x = np.asarray(scores, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return {"rows": 0, "threshold": threshold, "share_above": None, "mean": None,
                "p99": None, "max": None}
    return {"rows": len(x), "threshold": threshold, "share_above": float(np.mean(x > threshold)),
            "mean": float(np.mean(x)), "p99": float(np.quantile(x, 0.99)), "max": float(x.max())}


__all__ = ["OutlierModel", "outlier_summary"]
