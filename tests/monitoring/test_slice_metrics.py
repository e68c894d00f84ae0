"""Slice metrics (issue 18): intervals per slice, small slices never eligible, the worst
slice judged on its favourable bound so an unlucky slice does not fire, and the slice forms
of alert rules."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, mean_absolute_error

from shipyard.errors import MonitoringError
from shipyard.monitoring.alert_metrics import check_metric_names, check_slice_columns
from shipyard.monitoring.alert_rules import AlertError, AlertRuleError, parse_rule
from shipyard.monitoring.alerts import AlertEvaluator
from shipyard.monitoring.evaluation_stats import exact_proportion
from shipyard.monitoring.slice_metrics import (
    Outcomes,
    column_slices,
    slice_metrics,
)


def _classifier(correct: dict[str, tuple[int, int]]) -> tuple[np.ndarray, Outcomes]:
    """Slice -> (rows, right): binary rows of class 1, the first ``right`` predicted
    right."""
    labels, true, pred = [], [], []
    for name, (rows, right) in correct.items():
        labels += [name] * rows
        true += [1] * rows
        pred += [1] * right + [0] * (rows - right)
    n = len(labels)
    return np.array(labels), Outcomes("classification", np.ones(n, dtype=bool),
                                      np.array(true), np.array(pred), 2)


def test_each_slice_has_its_counts_and_an_exact_interval() -> None:
    labels, outcomes = _classifier({"a": (200, 190), "b": (50, 30), "c": (8, 2)})
    found = column_slices("cut", labels, outcomes)
    by_name = {s.slice: s for s in found.slices}
    assert [s.slice for s in found.slices] == ["a", "b", "c"]
    b = by_name["b"]
    assert (b.rows, b.labelled, b.eligible) == (50, 50, True)
    accuracy = b.metrics["accuracy"]
    assert accuracy is not None
    exact = exact_proportion(30, 50)
    assert (accuracy.estimate, accuracy.low, accuracy.high) == (0.6, exact.low, exact.high)
    c = by_name["c"]
    assert not c.eligible and c.metrics["accuracy"] is not None  # reported, not judged
    worst = found.worst["accuracy"]
    assert worst is not None and worst.slice == "b" and worst.bound == exact.high
    metrics = slice_metrics({"cut": found})
    assert metrics["accuracy(slice=cut:b)"] == 0.6
    assert metrics["accuracy(slice=cut:c)"] is None  # too small for rules
    assert metrics["worst_slice_accuracy(cut)"] == exact.high


def test_an_unlucky_slice_does_not_fire_a_confident_one_does() -> None:
    """40 rows at 80% (the model's true rate may well be 90%) stay above 0.85 on their
    upper bound; 200 rows at 75% do not."""
    labels, outcomes = _classifier({"big": (400, 380), "unlucky": (40, 32)})
    quiet = slice_metrics({"cut": column_slices("cut", labels, outcomes)})
    assert quiet["accuracy(slice=cut:unlucky)"] == 0.8
    bound = quiet["worst_slice_accuracy(cut)"]
    assert bound is not None and bound > 0.85
    rule = parse_rule("worst_slice_accuracy(cut) < 0.85")
    assert AlertEvaluator([rule]).evaluate(quiet, _at(1)) == []
    labels, outcomes = _classifier({"big": (400, 380), "bad": (200, 150)})
    loud = slice_metrics({"cut": column_slices("cut", labels, outcomes)})
    (event,) = AlertEvaluator([rule]).evaluate(
        loud, _at(1), details={"worst_slice_accuracy(cut)": "cut=bad"})
    assert event.detail == "cut=bad" and event.to_dict()["detail"] == "cut=bad"


def _at(hour: int) -> object:
    from datetime import UTC, datetime

    return datetime(2024, 1, 1, hour, tzinfo=UTC)


def test_f1_per_slice_matches_scikit_learn_on_the_classes_the_slice_shows() -> None:
    rng = np.random.default_rng(3)
    true = rng.integers(0, 5, 600)
    pred = np.where(rng.random(600) < 0.8, true, rng.integers(0, 5, 600))
    labels = np.where(true < 2, "low", "high")  # "low" only ever shows classes 0 and 1
    found = column_slices("x", labels, Outcomes("classification", np.ones(600, dtype=bool),
                                                true, pred, 5))
    for result in found.slices:
        mask = labels == result.slice
        present = np.union1d(true[mask], pred[mask])
        expected = f1_score(true[mask], pred[mask], average="macro", labels=present)
        f1 = result.metrics["f1"]
        assert f1 is not None and f1.estimate == pytest.approx(expected)
        assert f1.low < f1.estimate < f1.high


def test_a_regressor_is_judged_on_the_lower_bound_of_its_error() -> None:
    rng = np.random.default_rng(4)
    true = rng.normal(size=900)
    noise = np.r_[rng.normal(0, 0.1, 600), rng.normal(0, 1.0, 300)]
    labels = np.array(["calm"] * 600 + ["rough"] * 300)
    labelled = np.ones(900, dtype=bool)
    labelled[::10] = False  # rows without a label yet count as rows, not labelled
    found = column_slices("sea", labels, Outcomes("regression", labelled, true, true + noise))
    rough = next(s for s in found.slices if s.slice == "rough")
    assert (rough.rows, rough.labelled) == (300, 270)
    mae = rough.metrics["mae"]
    rows = (labels == "rough") & labelled
    assert mae is not None and mae.estimate == pytest.approx(
        mean_absolute_error(true[rows], (true + noise)[rows]))
    worst = found.worst["mae"]
    assert worst is not None and worst.slice == "rough" and worst.bound == mae.low
    assert slice_metrics({"sea": found})["worst_slice_rmse(sea)"] is not None


def test_only_the_largest_slices_are_kept_and_the_rest_counted() -> None:
    labels = np.array([f"k{i}" for i in range(60) for _ in range(i + 1)])
    n = len(labels)
    outcomes = Outcomes("classification", np.ones(n, dtype=bool), np.zeros(n, dtype=int),
                        np.zeros(n, dtype=int), 2)
    found = column_slices("k", labels, outcomes, max_slices=50)
    assert len(found.slices) == 50 and found.omitted_slices == 10
    assert found.omitted_rows == sum(range(1, 11))
    assert found.to_dict()["omitted"] == {"slices": 10, "rows": 55}


def test_estimates_per_slice_are_the_mean_expected_hit() -> None:
    labels, outcomes = _classifier({"a": (40, 40), "b": (40, 20)})
    hits = np.r_[np.full(40, 0.9), np.full(40, 0.6)]
    found = column_slices("cut", labels, outcomes,
                          estimates={"estimated_accuracy": hits})
    assert [s.estimated["estimated_accuracy"] for s in found.slices] == pytest.approx(
        [0.9, 0.6])
    assert slice_metrics({"cut": found})["estimated_accuracy(slice=cut:b)"] == \
        pytest.approx(0.6)


def test_outcomes_refuse_mismatched_rows() -> None:
    with pytest.raises(MonitoringError, match="as many labels"):
        Outcomes("classification", np.ones(3, dtype=bool), np.zeros(3), np.zeros(2))
    with pytest.raises(MonitoringError, match="has 2 labels for 3 rows"):
        column_slices("x", np.array(["a", "b"]), Outcomes(
            "regression", np.ones(3, dtype=bool), np.zeros(3), np.zeros(3)))


# -- the rules' slice forms -----------------------------------------------------------------

@pytest.mark.parametrize(("text", "key"), [
    ("accuracy(slice=cut:Fair) < 0.8", "accuracy(slice=cut:Fair)"),
    ("accuracy( slice = cut : Very Good ) < 0.8", "accuracy(slice=cut:Very Good)"),
    ("accuracy(slice=carat:[0.4, 0.7)) < 0.8 for 2 windows", "accuracy(slice=carat:[0.4, 0.7))"),
    ("mae(slice=carat:< 0.4)>3", "mae(slice=carat:< 0.4)"),
    ("f1(slice=carat:>= 0.7) <= 0.5", "f1(slice=carat:>= 0.7)"),
    ("worst_slice_accuracy(cut) < 0.8", "worst_slice_accuracy(cut)"),
])
def test_slice_rules_parse_to_the_keys_the_monitor_writes(text: str, key: str) -> None:
    rule = parse_rule(text)
    assert rule.key == key
    assert parse_rule(rule.text) == rule  # the canonical text reads back the same
    check_metric_names([rule])


@pytest.mark.parametrize(("text", "message", "caret"), [
    ("accuracy(slice=cut) < 0.8", "no ':' after the column", 15),
    ("accuracy(slice=:Fair) < 0.8", "empty slice column before ':'", 15),
    ("accuracy(slice=cut:) < 0.8", "empty slice name after 'cut:'", 19),
    ("accuracy(slice=cut:Fair < 0.8", "'(' is never closed", 8),
])
def test_bad_slice_forms_point_at_the_mistake(text: str, message: str, caret: int) -> None:
    with pytest.raises(AlertRuleError) as error:
        parse_rule(text)
    assert message in error.value.reason
    assert error.value.position == caret
    assert str(error.value).endswith(" " * caret + "^")


@pytest.mark.parametrize(("text", "message"), [
    ("worst_slice_accuracy < 0.8", "worst_slice_accuracy is per slice column; write "
                                   "worst_slice_accuracy(COLUMN)"),
    ("worst_slice_accuracy(slice=cut:Fair) < 0.8", "is per slice column"),
    ("precision(slice=cut:Fair) < 0.8", "precision is not computed per slice; per slice: "
                                        "accuracy, f1, mae, rmse"),
    ("worst_slice_precision(cut) < 0.8", "unknown metric 'worst_slice_precision'"),
])
def test_slice_metric_mistakes_are_named(text: str, message: str) -> None:
    with pytest.raises(AlertError) as error:
        check_metric_names([parse_rule(text)])
    assert message in str(error.value)


def test_a_slice_rule_must_name_a_slice_column() -> None:
    rules = [parse_rule("worst_slice_accuracy(cut) < 0.8"),
             parse_rule("accuracy(slice=color:E) < 0.8")]
    check_slice_columns(rules, ["cut", "color"])
    with pytest.raises(AlertError, match="'color' is not a slice column; slice columns: cut"):
        check_slice_columns(rules, ["cut"])
    with pytest.raises(AlertError, match="none \\(set the monitor's slices\\)"):
        check_slice_columns(rules, [])
