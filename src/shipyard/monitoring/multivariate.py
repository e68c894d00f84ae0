"""Multivariate drift on row samples: MMD, a domain classifier, PCA reconstruction error.

Column tests miss drift that lives between columns (a correlation that flips, a new cluster
in an empty corner); these three tests look at whole rows, on the reservoir samples (at most
``sample_size`` rows a side, so memory and time are bounded whatever the window size).

Rows are encoded once (``encode``): numbers standardised by the reference's mean and standard
deviation (nulls -> 0, the reference mean; values clipped to +-10 sd so one wild value cannot
own a kernel or a principal axis); each text column one-hot over its ``TOP_CATEGORIES`` most
frequent values in the pooled samples (others and nulls -> all zeros). Columns more than half
null on a side are left out (missing values are a quality finding, not drift).

- ``mmd``: squared maximum mean discrepancy, unbiased, RBF kernel with the median heuristic
  (k = exp(-d^2 / median d^2)) on up to ``MMD_ROWS`` rows a side; p-value from
  ``PERMUTATIONS`` label permutations, all computed with one matrix product. Effect: MMD^2.
- ``domain_classifier``: a ridge logistic regression on the features and the squares of the
  numeric ones learns to tell reference rows from current rows on half of each sample and
  scores the other half; the AUC there, and the one-sided Mann-Whitney p-value (the AUC is
  U / (n*m)). A held-out half rather than K-fold cross-validation: folds share training rows,
  which correlates their U statistics and made 14% of no-drift p-values fall below 0.05.
  Numpy only, deterministic, ~40 ms; scikit-learn's gradient boosting would see interactions
  but took seconds on two cores (MMD covers what a linear model misses).
- ``pca_reconstruction``: principal axes explaining ``PCA_VARIANCE`` of the variance of half
  the reference sample; the other half and the current sample are projected and rebuilt, and
  their reconstruction errors compared (both halves are out of sample, so an unchanged
  distribution gives equal errors). p-value: two-sided Mann-Whitney. Effect: the shift of the
  mean error in standard deviations of the held-out reference errors.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from shipyard.monitoring.statistics import Outcome
from shipyard.profiles import value_key
from shipyard.types import Array, Columns, num_rows

TOP_CATEGORIES = 10
MMD_ROWS = 1000
PERMUTATIONS = 200
WIDTH_PAIRS = 20_000
PCA_VARIANCE = 0.9
MIN_ROWS = 20
CLIP = 10.0
METHODS = ("mmd", "domain_classifier", "pca_reconstruction")
EFFECT_NAMES = {"mmd": "mmd2", "domain_classifier": "auc", "pca_reconstruction": "error_shift"}


def multivariate_outcomes(ref: Columns, cur: Columns, scales: Mapping[str, tuple[float, float]],
                          seed: int | None) -> list[Outcome]:
    """The three tests on two row samples. ``scales`` holds (mean, std) of the reference for
    numeric columns; every other column is encoded as text."""
    x, y, numeric, columns_used = encode(ref, cur, scales)
    rng = np.random.default_rng(seed)
    base = {"rows_reference": int(x.shape[0]), "rows_current": int(y.shape[0]),
            "columns_used": columns_used}
    reason = _too_small(x, y)
    if reason:
        return [_skipped(method, reason, base) for method in METHODS]
    with _one_blas_thread():
        outcomes = [mmd(x, y, rng), domain_classifier(x, y, rng, numeric)]
        if x.shape[1] >= 2:
            outcomes.append(pca_reconstruction(x, y, rng))
        else:
            outcomes.append(_skipped("pca_reconstruction", "fewer than two features", {}))
    return [_with(outcome, base) for outcome in outcomes]


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread for these small products (when threadpoolctl is installed): on a
    busy machine OpenBLAS's spinning worker threads made the tests 10-25x slower, and in
    the server they would compete with inference threads."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


@functools.cache
def _blas_controller() -> Any:
    try:
        return importlib.import_module("threadpoolctl").ThreadpoolController()
    except ImportError:
        return None


def encode(ref: Columns, cur: Columns,
           scales: Mapping[str, tuple[float, float]]) -> tuple[Array, Array, int, int]:
    """Reference and current samples as float matrices with the same features: standardised
    numbers first, then one-hot text. Returns both matrices, the number of numeric
    features, and the number of source columns used."""
    numbers_x: list[Array] = []
    numbers_y: list[Array] = []
    hot_x: list[Array] = []
    hot_y: list[Array] = []
    used = 0
    for name, a in ref.items():
        b = cur[name]
        if _mostly_null(a) or _mostly_null(b):
            continue
        used += 1
        if name in scales:
            mean, std = scales[name]
            std = std if std > 0 else 1.0
            numbers_x.append(_standardise(a, mean, std))
            numbers_y.append(_standardise(b, mean, std))
        else:
            a, b = _as_keys(a), _as_keys(b)
            top = _top_values(a, b)
            hot_x.append(_one_hot(a, top))
            hot_y.append(_one_hot(b, top))
    x = _stack(numbers_x, hot_x, num_rows(ref))
    y = _stack(numbers_y, hot_y, num_rows(cur))
    if x.shape[1] == 0 or len(x) + len(y) == 0:
        return x, y, 0, used
    varied = np.concatenate([x, y]).std(axis=0) > 0
    numeric = int(np.count_nonzero(varied[: len(numbers_x)]))
    return x[:, varied], y[:, varied], numeric, used


def _stack(numbers: list[Array], hot: list[Array], rows: int) -> Array:
    blocks = [np.stack(numbers, axis=1)] if numbers else []
    blocks += hot
    return np.hstack(blocks) if blocks else np.empty((rows, 0))


def mmd(x: Array, y: Array, rng: np.random.Generator) -> Outcome:
    """Unbiased MMD^2 with an RBF kernel (median heuristic) and a permutation p-value.

    Float32 kernel (a 2000 x 2000 kernel and 200 permutations take ~60 ms); the median
    squared distance is taken over ``WIDTH_PAIRS`` random pairs."""
    x, y = _subsample(x, MMD_ROWS, rng), _subsample(y, MMD_ROWS, rng)
    z = np.concatenate([x, y]).astype(np.float32)
    n, m, total = len(x), len(y), len(x) + len(y)
    sq = np.einsum("ij,ij->i", z, z)
    kernel = z @ z.T
    kernel *= -2.0
    kernel += sq[:, None]
    kernel += sq[None, :]
    np.maximum(kernel, 0.0, out=kernel)
    i, j = rng.integers(0, total, WIDTH_PAIRS), rng.integers(0, total, WIDTH_PAIRS)
    width = float(np.median(kernel[i[i != j], j[i != j]]))
    kernel *= np.float32(-1.0 / (width if width > 0 else 1.0))
    np.exp(kernel, out=kernel)
    labels = np.zeros((total, PERMUTATIONS + 1), dtype=np.float32)
    labels[:n, 0] = 1.0
    shuffled = np.argsort(rng.random((PERMUTATIONS, total)), axis=1)[:, :n]
    labels[shuffled, np.arange(1, PERMUTATIONS + 1)[:, None]] = 1.0
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    inner = np.einsum("ij,ij->j", labels, kernel @ labels, dtype=np.float64)  # s'Ks
    cross = labels.T.astype(np.float64) @ row_sums                           # s'K1
    grand = float(row_sums.sum())
    xx = (inner - n) / (n * (n - 1))
    yy = (grand - 2.0 * cross + inner - m) / (m * (m - 1))
    xy = (cross - inner) / (n * m)
    values = xx + yy - 2.0 * xy
    observed = float(values[0])
    p = float((1 + np.count_nonzero(values[1:] >= observed)) / (PERMUTATIONS + 1))
    detail = {"kernel_width": width, "rows_used": [n, m], "permutations": PERMUTATIONS}
    return Outcome("mmd", observed, p, observed, "mmd2", detail)


def domain_classifier(x: Array, y: Array, rng: np.random.Generator, numeric: int = 0) -> Outcome:
    """AUC of a reference-vs-current classifier on held-out rows, with a one-sided p-value.

    The classifier (a ridge logistic regression on the features plus the squares of the
    first ``numeric``, standardised numeric, features: a change of spread shows as well as a
    change of location) learns on one half of each sample and scores the other half. Its
    AUC there is the Mann-Whitney U over n*m, so the Mann-Whitney test gives an exact-size
    p-value. (K-fold cross-validation makes folds share training rows, which correlates the
    folds' U statistics: measured 14% of p-values below 0.05 with no drift.)"""
    z = np.concatenate([x, y])
    z = np.hstack([z, np.square(z[:, :numeric])])
    target = np.concatenate([np.zeros(len(x)), np.ones(len(y))])
    test = _stratified_folds(target, 2, rng) == 1
    scores = _logistic(z[~test], target[~test], z[test])
    is_current = target[test] == 1
    res = stats.mannwhitneyu(scores[is_current], scores[~is_current], alternative="greater")
    auc = float(res.statistic) / (int(is_current.sum()) * int((~is_current).sum()))
    return Outcome("domain_classifier", auc, float(res.pvalue), auc, "auc",
                   {"model": "ridge logistic regression (features and squares)",
                    "rows_scored": int(test.sum())})


def pca_reconstruction(x: Array, y: Array, rng: np.random.Generator) -> Outcome:
    """Compare reconstruction errors of held-out reference rows and current rows.

    Effect: the shift of the mean error in standard deviations of the held-out reference
    errors (a size that does not depend on how many dimensions the residual has)."""
    order = rng.permutation(len(x))
    fit, held = x[order[: len(x) // 2]], x[order[len(x) // 2:]]
    centre = fit.mean(axis=0)
    _, singular, axes = np.linalg.svd(fit - centre, full_matrices=False)
    share = np.cumsum(singular**2) / max(float(np.sum(singular**2)), 1e-300)
    keep = int(min(np.searchsorted(share, PCA_VARIANCE) + 1, max(1, x.shape[1] - 1)))
    basis = axes[:keep]

    def errors(rows: Array) -> Array:
        centred = rows - centre
        rebuilt = (centred @ basis.T) @ basis
        return np.asarray(np.sum((centred - rebuilt) ** 2, axis=1))

    e_ref, e_cur = errors(held), errors(y)
    spread = float(e_ref.std())
    shift = float(e_cur.mean() - e_ref.mean())
    effect = abs(shift) / spread if spread > 0 else (0.0 if shift == 0 else math.inf)
    p = float(stats.mannwhitneyu(e_cur, e_ref, alternative="two-sided").pvalue)
    detail = {"components": keep, "mean_error_reference": float(e_ref.mean()),
              "mean_error_current": float(e_cur.mean())}
    return Outcome("pca_reconstruction", shift / spread if spread > 0 else 0.0, p, effect,
                   "error_shift", detail)


# ---------------------------------------------------------------- classifiers


NEWTON_MAX_FEATURES = 256  # beyond: L-BFGS (a Newton step solves a features^2 system)


def _logistic(train_x: Array, train_y: Array, test_x: Array, ridge: float = 1.0,
              steps: int = 25) -> Array:
    """Ridge logistic regression by Newton's method (a few dozen features: cheap), or by
    L-BFGS on the same objective when there are many (1,000 columns with one-hot categories
    made ~10,000 features, and Newton's solves took ~50 s)."""
    if train_x.shape[1] > NEWTON_MAX_FEATURES:
        return _logistic_lbfgs(train_x, train_y, test_x, ridge)
    design = np.hstack([train_x, np.ones((len(train_x), 1))])
    weights = np.zeros(design.shape[1])
    penalty = ridge * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    for _ in range(steps):
        prob = special.expit(design @ weights)  # no overflow warning at large margins
        grad = design.T @ (prob - train_y) + penalty @ weights
        hess = (design * (prob * (1 - prob))[:, None]).T @ design + penalty
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(weights)), grad)
        weights -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return np.asarray(np.hstack([test_x, np.ones((len(test_x), 1))]) @ weights)


def _logistic_lbfgs(train_x: Array, train_y: Array, test_x: Array, ridge: float) -> Array:
    """The same ridge logistic regression (intercept not penalised), fitted by L-BFGS:
    each step costs one pass over the rows, whatever the number of features."""
    design = np.hstack([train_x, np.ones((len(train_x), 1))])
    mask = np.ones(design.shape[1])
    mask[-1] = 0.0

    def loss(w: Array) -> tuple[float, Array]:
        margin = design @ w
        # log(1 + e^m) - y m, stably
        value = float(np.sum(np.logaddexp(0.0, margin) - train_y * margin)
                      + 0.5 * ridge * np.sum(mask * w * w))
        grad = design.T @ (special.expit(margin) - train_y) + ridge * mask * w
        return value, np.asarray(grad)

    fitted = optimize.minimize(loss, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B",
                               options={"maxiter": 150, "gtol": 1e-5})
    return np.asarray(np.hstack([test_x, np.ones((len(test_x), 1))]) @ fitted.x)


# ---------------------------------------------------------------- helpers


def _stratified_folds(target: Array, folds: int, rng: np.random.Generator) -> Array:
    out = np.empty(len(target), dtype=np.int64)
    for value in (0.0, 1.0):
        idx = np.flatnonzero(target == value)
        out[rng.permutation(idx)] = np.arange(len(idx)) % folds
    return out


def _standardise(a: Array, mean: float, std: float) -> Array:
    z = (np.asarray(a, dtype=np.float64) - mean) / std
    z[~np.isfinite(z)] = 0.0
    return np.asarray(np.clip(z, -CLIP, CLIP))


def _as_keys(a: Array) -> Array:
    """Category values as ``value_key`` text (numbers profiled as categories meet text)."""
    if a.dtype.kind == "O" and all(v is None or isinstance(v, str) for v in a.tolist()):
        return a
    return np.array([value_key(v) for v in a.tolist()], dtype=object)


def _top_values(a: Array, b: Array) -> list[str]:
    counts = Counter(v for v in a.tolist() + b.tolist() if v is not None)
    return [v for v, _ in counts.most_common(TOP_CATEGORIES)]


def _one_hot(a: Array, top: list[str]) -> Array:
    """One column per value in ``top`` (a value not in it, or None: all zeros); each value
    looked up once, not compared with every one of ``top`` (object comparisons cost ~1 s
    at 200 categorical columns)."""
    index = {v: i for i, v in enumerate(top)}
    codes = np.fromiter((index.get(v, -1) for v in a.tolist()), dtype=np.int64,
                        count=len(a))
    hot: Array = (codes[:, None] == np.arange(len(top))[None, :]).astype(np.float64)
    return hot


def _mostly_null(a: Array) -> bool:
    if a.dtype.kind == "f":
        return bool(np.count_nonzero(np.isnan(a)) * 2 > len(a))
    return sum(v is None for v in a.tolist()) * 2 > len(a)


def _subsample(a: Array, size: int, rng: np.random.Generator) -> Array:
    return a if len(a) <= size else a[rng.choice(len(a), size=size, replace=False)]


def _too_small(x: Array, y: Array) -> str | None:
    if x.shape[1] == 0:
        return "no column usable for multivariate tests"
    if min(len(x), len(y)) < MIN_ROWS:
        return f"fewer than {MIN_ROWS} sampled rows on a side"
    return None


def _skipped(method: str, reason: str, base: dict[str, Any]) -> Outcome:
    return Outcome(method, float("nan"), None, 0.0, EFFECT_NAMES[method],
                   {**base, "skipped": reason})


def _with(outcome: Outcome, base: dict[str, Any]) -> Outcome:
    return Outcome(outcome.method, outcome.statistic, outcome.p_value, outcome.effect_size,
                   outcome.effect_name, {**base, **outcome.detail})
