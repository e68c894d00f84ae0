"""What an answer may show: labels only, rounding, noise that never changes the label."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.defences import OutputPolicy, OutputPolicyError, defend
from shipyard.defences.outputs import noisy

SECRET = b"0123456789abcdef-server-secret"


def _classifier(rows: int, classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * rng.uniform(0.1, 4, size=(rows, 1))
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    return {"label": np.argmax(proba, axis=1), "probabilities": proba}


def test_labels_only_drops_the_probabilities() -> None:
    outputs = _classifier(5, 3)
    shown = defend(outputs, OutputPolicy(labels_only=True))
    assert list(shown) == ["label"]
    assert shown["label"] is outputs["label"]
    assert "probabilities" in outputs  # the given mapping is untouched


def test_labels_only_keeps_a_regressors_value() -> None:
    outputs = {"value": np.array([1.23456, 2.5])}
    assert defend(outputs, OutputPolicy(labels_only=True)) == outputs


def test_round_rounds_probabilities_and_scores_not_labels() -> None:
    outputs = {"label": np.array([1.23456, 2.0]), "probabilities": np.array([[0.123456, 0.876544],
                                                                         [0.5, 0.5]]),
               "value": np.array([3.14159, 2.71828])}
    shown = defend(outputs, OutputPolicy(round=2))
    assert shown["probabilities"].tolist() == [[0.12, 0.88], [0.5, 0.5]]
    assert shown["value"].tolist() == [3.14, 2.72]
    assert shown["label"].tolist() == [1.23456, 2.0]
    assert outputs["probabilities"][0, 0] == 0.123456


def test_noise_never_changes_the_label_over_many_rows() -> None:
    for classes in (2, 3, 10):
        outputs = _classifier(20_000, classes, seed=classes)
        # near-ties too: where noise would flip the winner most easily
        outputs["probabilities"][:500] = 1.0 / classes
        outputs["probabilities"][:500, classes - 1] += 1e-6
        outputs["probabilities"][:500] /= outputs["probabilities"][:500].sum(
            axis=1, keepdims=True)
        proba = outputs["probabilities"]
        for sigma in (0.01, 0.1, 0.5):
            shown = defend(outputs, OutputPolicy(noise=sigma), SECRET)["probabilities"]
            assert (np.argmax(shown, axis=1) == np.argmax(proba, axis=1)).all()
            assert np.allclose(shown.sum(axis=1), 1.0)
            assert shown.min() >= 0.0 and shown.max() <= 1.0
            changed = np.abs(shown - proba).max(axis=1)
            assert np.median(changed) > sigma / 10  # it did add noise


def test_noise_is_the_same_for_the_same_question_and_keyed_by_the_secret() -> None:
    outputs = _classifier(50, 4)
    first = noisy(outputs["probabilities"], 0.05, SECRET)
    again = noisy(outputs["probabilities"].copy(), 0.05, SECRET)
    assert np.array_equal(first, again)  # a repeated query cannot average it out
    # per row: a row gets the same noise alone as in a batch
    alone = noisy(outputs["probabilities"][7:8], 0.05, SECRET)
    assert np.array_equal(alone[0], first[7])
    other = noisy(outputs["probabilities"], 0.05, b"another secret, as long as it is")
    assert not np.allclose(first, other)


def test_noise_needs_a_secret() -> None:
    with pytest.raises(OutputPolicyError, match="secret"):
        defend(_classifier(2, 2), OutputPolicy(noise=0.1), b"")


def test_an_inactive_policy_returns_the_outputs_as_they_are() -> None:
    outputs = _classifier(3, 2)
    assert defend(outputs, OutputPolicy()) is outputs


@pytest.mark.parametrize("options", [{"labels_only": "yes"}, {"round": -1}, {"round": 1.5},
                                     {"round": True}, {"noise": -0.1}, {"noise": 2},
                                     {"noise": "0.1"}])
def test_invalid_policies_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(OutputPolicyError):
        OutputPolicy(**options)  # type: ignore[arg-type]
