"""The domain classifier on wide data (many columns, one-hot categories): past
``NEWTON_MAX_FEATURES`` it fits the same ridge logistic regression by L-BFGS."""

from __future__ import annotations

import numpy as np

from shipyard.monitoring.multivariate import (
    NEWTON_MAX_FEATURES,
    _logistic,
    _logistic_lbfgs,
    domain_classifier,
)


def test_lbfgs_fits_the_same_model_as_newton() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=400) > 0).astype(float)
    test = rng.normal(size=(50, 12))
    newton = _logistic(x, y, test)
    lbfgs = _logistic_lbfgs(x, y, test, ridge=1.0)
    np.testing.assert_allclose(lbfgs, newton, atol=1e-3)


def test_wide_data_detects_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(1)
    width = NEWTON_MAX_FEATURES + 100  # squares of the numeric ones double it again
    ref = rng.normal(size=(600, width))
    same = rng.normal(size=(600, width))
    shifted = rng.normal(size=(600, width))
    shifted[:, :5] += 1.0
    quiet = domain_classifier(ref, same, np.random.default_rng(2), numeric=width)
    loud = domain_classifier(ref, shifted, np.random.default_rng(2), numeric=width)
    assert loud.p_value is not None and loud.p_value < 1e-6 and loud.statistic > 0.7
    assert quiet.p_value is not None and quiet.p_value > 0.01 and quiet.statistic < 0.6
