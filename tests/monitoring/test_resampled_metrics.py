"""``ResampledClassification`` (the evaluation's fast bootstrap) gives, resample by resample,
the values ``classification_metrics`` gives on the resampled rows: binary and three classes,
ties in the scores, labels the model does not know, missing labels and predictions, and
resamples where a class is absent (AUC undefined for it)."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.monitoring.evaluation_stats import resamples
from shipyard.monitoring.performance import classification_metrics
from shipyard.monitoring.resampled_metrics import NAMES, ResampledClassification


def _case(classes: int, rows: int, seed: int) -> tuple[object, object, object, list[int]]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(classes), size=rows).round(1)  # rounded: tied scores
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1).astype(object)
    truth = rng.integers(0, classes, size=rows).astype(object)
    truth[:3] = classes + 5  # a label the model does not know
    truth[3] = None  # no label
    pred[4] = None  # no prediction
    return truth, pred, proba, list(range(classes))


@pytest.mark.parametrize(("classes", "rows"), [(2, 60), (3, 90), (3, 12)])
def test_every_resample_equals_the_metrics_of_the_resampled_rows(classes: int,
                                                                 rows: int) -> None:
    truth, pred, proba, names = _case(classes, rows, seed=classes * rows)
    fast = ResampledClassification(truth, pred, proba, names)
    t, p, pr = np.asarray(truth), np.asarray(pred), np.asarray(proba)
    one_class = np.flatnonzero(t == 0)  # every row of one class: AUC undefined
    undefined = 0
    for indices in [np.arange(rows), one_class, *resamples(rows, 40, seed=1)]:
        slow = classification_metrics(t[indices], p[indices], pr[indices], names)
        got = fast(indices)
        for name in NAMES:
            if slow[name] is None:
                undefined += 1
                assert got[name] is None, (name, indices)
            else:
                assert got[name] == pytest.approx(slow[name], rel=1e-12, abs=1e-12), name
    assert undefined >= 1  # the one-class resample took the undefined path


def test_without_probabilities_only_the_rates() -> None:
    truth, pred, _, names = _case(3, 50, seed=3)
    fast = ResampledClassification(truth, pred, None, names)
    indices = resamples(50, 1, seed=2)[0]
    slow = classification_metrics(np.asarray(truth)[indices], np.asarray(pred)[indices],
                                  None, names)
    got = fast(indices)
    assert {n: got[n] for n in ("f1", "precision", "recall")} == pytest.approx(
        {n: slow[n] for n in ("f1", "precision", "recall")})
    assert got["roc_auc"] is got["log_loss"] is got["calibration_error"] is None
