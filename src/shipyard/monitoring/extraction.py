"""Model-extraction score per API key: does one key's traffic look like someone copying the
model by querying it? Pure (numpy in, dataclasses out); the monitor feeds it one window's
rows per key (``service/monitor_extraction.py``).

    baseline = ExtractionBaseline.from_profile(reference_profile, inputs)
    report = score_keys([KeyTraffic("alice", inputs, requests=30, proba=p), ...], baseline)
    report.keys["alice"].score, report.keys["alice"].parts, report.flagged

A key is scored once it sent ``min_rows`` rows (default 100) in the window: a handful of
rows says nothing about a pattern, and a tiny key must never raise an alarm. Three parts,
each in [0, 1]:

**volume** (a very high volume of distinct inputs): ``distinct_share * clip(log(distinct /
typical) / log(10), 0, 1)``. ``distinct_share`` is the key's distinct input rows over its
rows (a client re-sending the same few inputs, a dashboard polling, is no copier);
``typical`` is the median distinct rows of the *other* keys of the window, at least
``min_rows`` (with no other key, ``min_rows``). Full at 10x the typical key's volume.

**uniformity** (inputs spread over the input space rather than like the reference): per
numeric input, the reference's decile bins (its quantile sketch; tied edges merged, each
bin's reference mass from the sketch's CDF) and the mass the *uniform* distribution over
the reference ``[min, max]`` puts in the same bins, which is far more in the outer deciles
and in gaps between modes, where a normal client rarely goes. Each of the key's values
scores ``log(uniform mass / reference mass)`` of its bin; the mean ``L`` lies near
``-KL(ref || uniform)`` for a reference-like client and near ``+KL(uniform || ref)`` for a
uniform one, so ``(L - L_ref - 2 sd/sqrt(n)) / (L_uni - L_ref)`` (clipped to [0, 1]) says how
far the key has moved from the first towards the second, beyond chance. That is multiplied by
the *balance* of the two outer deciles' excess over the reference (the smaller over the
larger, each as a share of what uniform gives): a client whose data drifted to one side is
drift, reported as drift; a copier's inputs cover both tails. Features where the reference is
itself close to uniform (``L_uni - L_ref < 0.1``) cannot tell the two apart and are left out;
the others are averaged weighted by that divergence. Categorical inputs are not used.

**boundary** (probing near the decision boundary; classifiers with probabilities): the share
``s`` of the key's answers whose top two class probabilities are within ``MARGIN`` (0.1) of
each other, against the reference sample's share ``r``:
``(s - r - 2 sqrt(r (1 - r) / n)) / (0.5 (1 - r))``, clipped. Full when half of what the
reference leaves is at the boundary: bisecting between two differently-labelled points sends
nearly every query there, a normal client about as many as the reference.

**score** = ``1 - (1 - 0.5 volume) (1 - uniformity) (1 - boundary)`` (a part that cannot be
computed counts 0). Flagged at ``score >= 0.8`` (``FLAG_SCORE``): one shape part at 0.8 or
more alone, or a full volume part with a shape part of 0.6 or more. Volume weighs half: a
busy honest client (many distinct, reference-like inputs) reaches 0.5, never the flag;
volume makes a moderate shape signal count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.profiles import ColumnKind, ColumnProfile, Profile
from shipyard.types import Array

FLAG_SCORE = 0.8
MIN_KEY_ROWS = 100
VOLUME_RATIO = 10.0  # distinct inputs over the typical key's for a full volume part
VOLUME_WEIGHT = 0.5
MARGIN = 0.1  # answers with top-two probabilities closer than this are "at the boundary"
BOUNDARY_FULL = 0.5
MIN_DIVERGENCE = 0.1  # Jeffreys divergence a feature needs to tell uniform from reference
TAIL_ROOM = 0.05  # uniform's outer-decile mass over the reference's for the tail to count
CHANCE_Z = 2.0  # standard errors deducted before a share or mean counts as beyond chance
_SMOOTH = 0.005  # added to each bin's mass: no bin is impossible
_DECILES = np.linspace(0.1, 0.9, 9)


@dataclass(frozen=True, eq=False)
class FeatureBins:
    """One numeric input: its reference decile bins (``edges`` between them; a value ``v``
    is in bin ``b`` when ``edges[b-1] < v <= edges[b]``), each bin's reference and uniform
    mass, and the log-ratio each bin scores."""

    name: str
    edges: Array
    reference: Array
    uniform: Array

    @classmethod
    def from_column(cls, column: ColumnProfile) -> FeatureBins | None:
        """None when the column has no spread (or no numbers) to bin."""
        if column.kind != ColumnKind.NUMERIC or column.non_null < 10 or column.min is None \
                or column.max is None or not column.max > column.min:
            return None
        low, high = float(column.min), float(column.max)
        edges = np.unique(column.quantiles(_DECILES))
        edges = edges[np.isfinite(edges)]
        below = np.asarray(column.cdf(edges), dtype=np.float64)
        reference = np.diff(np.concatenate([[0.0], below, [1.0]])).clip(min=0.0)
        where = (np.clip(edges, low, high) - low) / (high - low)
        uniform = np.diff(np.concatenate([[0.0], where, [1.0]])).clip(min=0.0)
        return cls(column.name, edges, _smooth(reference), _smooth(uniform))

    @property
    def log_ratio(self) -> Array:
        return np.asarray(np.log(self.uniform / self.reference))

    @property
    def reference_mean(self) -> float:
        """The mean log-ratio of a reference-like client: ``-KL(ref || uniform)``."""
        return float(np.dot(self.reference, self.log_ratio))

    @property
    def uniform_mean(self) -> float:
        """The mean log-ratio of a uniform client: ``KL(uniform || ref)``."""
        return float(np.dot(self.uniform, self.log_ratio))

    @property
    def divergence(self) -> float:
        """How far apart the two are (Jeffreys divergence): what a feature can tell."""
        return self.uniform_mean - self.reference_mean

    @property
    def reference_sd(self) -> float:
        mean = self.reference_mean
        return math.sqrt(max(float(np.dot(self.reference, self.log_ratio ** 2)) - mean ** 2,
                             0.0))

    def bins(self, values: Array) -> Array:
        return np.searchsorted(self.edges, values, side="left")


def _smooth(mass: Array) -> Array:
    out = mass + _SMOOTH
    return np.asarray(out / out.sum())


@dataclass(frozen=True, eq=False)
class ExtractionBaseline:
    """What a window's keys are compared with, learned once from the reference profile:
    the numeric inputs' bins and the reference's share of answers within ``MARGIN``
    (None: the reference has no class probabilities)."""

    features: tuple[FeatureBins, ...]
    boundary_share: float | None

    @classmethod
    def from_profile(cls, profile: Profile, inputs: Sequence[str]) -> ExtractionBaseline:
        features = []
        for name in inputs:
            if name in profile.columns:
                bins = FeatureBins.from_column(profile[name])
                if bins is not None and bins.divergence >= MIN_DIVERGENCE:
                    features.append(bins)
        classes = sorted(c for c in profile.sample if c.startswith("proba."))
        share = None
        if len(classes) >= 2:
            proba = np.column_stack([np.asarray(profile.sample[c], dtype=np.float64)
                                     for c in classes])
            found = margins(proba)
            if len(found):
                share = float(np.mean(found < MARGIN))
        return cls(tuple(features), share)


@dataclass(frozen=True)
class KeyTraffic:
    """One key's rows in a window: its inputs (name -> values), how many requests sent
    them, and the answers' class probabilities (rows x classes; None: none logged)."""

    name: str
    inputs: Mapping[str, Array]
    requests: int
    proba: Array | None = None

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values()))) if self.inputs else 0


@dataclass(frozen=True)
class ExtractionParts:
    volume: float
    uniformity: float | None
    boundary: float | None

    def combined(self) -> float:
        """``1 - (1 - 0.5 volume)(1 - uniformity)(1 - boundary)``."""
        keep = (1.0 - VOLUME_WEIGHT * self.volume) * (1.0 - (self.uniformity or 0.0)) \
            * (1.0 - (self.boundary or 0.0))
        return _round(1.0 - keep)


@dataclass(frozen=True)
class KeyScore:
    """A scored key: its score, whether it is flagged, its parts and what they read."""

    key: str
    rows: int
    requests: int
    distinct: int
    score: float
    flagged: bool
    parts: ExtractionParts
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "flagged": self.flagged, "rows": self.rows,
                "requests": self.requests, "distinct": self.distinct,
                "parts": {"volume": self.parts.volume, "uniformity": self.parts.uniformity,
                          "boundary": self.parts.boundary}, **self.detail}


@dataclass(frozen=True)
class ExtractionReport:
    """Every key of a window: the scored ones, and the rows of those below ``min_rows``."""

    keys: dict[str, KeyScore]
    unscored: dict[str, int]
    threshold: float = FLAG_SCORE
    min_rows: int = MIN_KEY_ROWS

    @property
    def max_score(self) -> float | None:
        """The highest key score (None: no key was scored)."""
        return max((k.score for k in self.keys.values()), default=None)

    @property
    def flagged(self) -> list[str]:
        return sorted(name for name, k in self.keys.items() if k.flagged)

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "min_rows": self.min_rows,
                "max_score": self.max_score, "flagged": self.flagged,
                "keys": {name: k.to_dict() for name, k in sorted(self.keys.items())},
                "unscored": dict(sorted(self.unscored.items()))}


def score_keys(traffic: Sequence[KeyTraffic], baseline: ExtractionBaseline, *,
               min_rows: int = MIN_KEY_ROWS, threshold: float = FLAG_SCORE,
               ) -> ExtractionReport:
    """Score every key with at least ``min_rows`` rows (see the module docstring)."""
    distinct = {t.name: distinct_rows(t.inputs) for t in traffic}
    keys, unscored = {}, {}
    for item in traffic:
        if item.rows < min_rows:
            unscored[item.name] = item.rows
            continue
        others = [d for name, d in distinct.items() if name != item.name]
        typical = max(float(np.median(others)) if others else 0.0, float(min_rows))
        volume = volume_part(distinct[item.name], item.rows, typical)
        uniformity, per_feature = uniformity_part(item.inputs, baseline.features)
        boundary, share = (None, None) if item.proba is None \
            or baseline.boundary_share is None else boundary_part(
                margins(item.proba), baseline.boundary_share)
        parts = ExtractionParts(volume, uniformity, boundary)
        score = parts.combined()
        detail: dict[str, Any] = {"distinct_share": _round(distinct[item.name] / item.rows),
                                  "typical_distinct": _round(typical),
                                  "uniformity_by_feature": per_feature}
        if share is not None:
            detail.update(boundary_share=share,
                          reference_boundary_share=_round(baseline.boundary_share or 0.0))
        keys[item.name] = KeyScore(item.name, item.rows, item.requests, distinct[item.name],
                                   score, score >= threshold, parts, detail)
    return ExtractionReport(keys, unscored, threshold, min_rows)


# -- the parts ---------------------------------------------------------------------------------

def distinct_rows(inputs: Mapping[str, Array]) -> int:
    """How many distinct input rows (every column's value equal; NaN equals NaN)."""
    rows = len(next(iter(inputs.values()))) if inputs else 0
    if not rows:
        return 0
    combined = np.zeros(rows, dtype=np.int64)  # each row's code over the columns so far
    for values in inputs.values():
        for column in np.asarray(values).reshape(rows, -1).T:
            keyed = column.astype(str) if column.dtype.kind == "O" else column
            found, codes = np.unique(keyed, return_inverse=True)
            # mixed radix: stays below rows * rows, then is renumbered densely again
            pairs = combined * len(found) + codes.reshape(-1)
            combined = np.unique(pairs, return_inverse=True)[1].reshape(-1)
    return int(combined.max()) + 1


def volume_part(distinct: int, rows: int, typical: float) -> float:
    """``distinct_share * clip(log(distinct / typical) / log(10), 0, 1)``."""
    if rows <= 0 or distinct <= 0 or typical <= 0:
        return 0.0
    ratio = math.log(distinct / typical) / math.log(VOLUME_RATIO)
    return _round(distinct / rows * min(max(ratio, 0.0), 1.0))


def uniformity_part(inputs: Mapping[str, Array], features: Sequence[FeatureBins],
                    ) -> tuple[float | None, dict[str, float]]:
    """The weighted mean of the features' uniformity (None: no feature can tell), and each
    feature's."""
    scores: dict[str, float] = {}
    weights = []
    for bins in features:
        if bins.name not in inputs:
            continue
        values = np.asarray(inputs[bins.name], dtype=np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        scores[bins.name] = feature_uniformity(values, bins)
        weights.append(bins.divergence)
    if not scores:
        return None, {}
    overall = float(np.average(list(scores.values()), weights=weights))
    return _round(overall), scores


def feature_uniformity(values: Array, bins: FeatureBins) -> float:
    """How far ``values`` moved from the reference towards uniform over its range, beyond
    chance, times the balance of the two outer deciles' excess (see the module docstring)."""
    where = bins.bins(values)
    mean = float(np.mean(bins.log_ratio[where]))
    chance = CHANCE_Z * bins.reference_sd / math.sqrt(len(values))
    moved = (mean - bins.reference_mean - chance) / bins.divergence
    return _round(min(max(moved, 0.0), 1.0) * _balance(where, bins))


def _balance(where: Array, bins: FeatureBins) -> float:
    """The smaller outer decile's excess over the larger (1: both tails or neither). Each
    tail's excess over the reference, as a share of uniform's, is read with the chance
    allowance in the key's favour: a tail is "empty" only when it is emptier than chance."""
    last = len(bins.reference) - 1
    excess = []
    for b in (0, last):
        ref = float(bins.reference[b])
        room = float(bins.uniform[b]) - ref
        if room > TAIL_ROOM:  # a tail uniform reaches far more than the reference
            share = float(np.mean(where == b))
            chance = CHANCE_Z * math.sqrt(ref * (1.0 - ref) / len(where))
            excess.append(min(max((share - ref + chance) / room, 0.0), 1.0))
    if len(excess) < 2 or max(excess) == 0.0:
        return 1.0
    return min(excess) / max(excess)


def margins(proba: Array) -> Array:
    """Top class probability minus the second, per row (rows with a NaN left out)."""
    values = np.asarray(proba, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        return np.zeros(0)
    values = values[np.all(np.isfinite(values), axis=1)]
    top = np.sort(values, axis=1)[:, -2:]
    return np.asarray(top[:, 1] - top[:, 0])


def boundary_part(found: Array, reference_share: float) -> tuple[float | None, float | None]:
    """The part, and the key's share of answers within ``MARGIN`` (None: no answers)."""
    if not len(found) or reference_share >= 0.99:  # a reference always at the boundary
        return None, None
    share = float(np.mean(found < MARGIN))
    r = min(max(reference_share, 0.01), 0.99)  # a zero share would make chance zero
    chance = CHANCE_Z * math.sqrt(r * (1.0 - r) / len(found))
    part = (share - reference_share - chance) / (BOUNDARY_FULL * (1.0 - reference_share))
    return _round(min(max(part, 0.0), 1.0)), _round(share)


def _round(value: float) -> float:
    return round(float(value), 4)
