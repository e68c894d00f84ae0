"""Error analysis by slice (``monitoring/error_analysis``): errors planted in one slice and in
one pair of slices are found first, with the counts pandas computes directly, intervals
around their estimates, small slices hidden and counted."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from shipyard.errors import MonitoringError
from shipyard.monitoring.error_analysis import analyse_errors, condition
from shipyard.monitoring.evaluation_stats import exact_bounds, exact_proportion

CUTS = ["Fair", "Good", "Very Good", "Premium", "Ideal"]
COLORS = list("DEFGHIJ")


def diamonds_like(rows: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Rows with a cut, a colour and a clarity; errors at 4% everywhere, 30% where cut is
    Fair, 70% where cut is Premium and colour is J; and a clarity seen on only 8 rows."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "cut": rng.choice(CUTS, rows, p=[0.15, 0.15, 0.25, 0.2, 0.25]),
        "color": rng.choice(COLORS, rows),
        "clarity": rng.choice(["SI1", "VS1", "VS2"], rows),
    })
    frame.loc[rng.choice(rows, 8, replace=False), "clarity"] = "I1"
    rate = np.full(rows, 0.04)
    rate[frame["cut"] == "Fair"] = 0.30
    rate[(frame["cut"] == "Premium") & (frame["color"] == "J")] = 0.70
    frame["error"] = rng.random(rows) < rate
    return frame


def _labels(frame: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    return {c: frame[c].to_numpy(dtype=object) for c in columns}


def test_the_planted_slice_and_pair_rank_first_with_pandas_counts() -> None:
    frame = diamonds_like()
    result = analyse_errors(_labels(frame, ["cut", "color", "clarity"]),
                            frame["error"].to_numpy())
    assert result.rows == len(frame) and result.errors == int(frame["error"].sum())

    top = result.singles[0]
    assert (top.columns, top.values) == (("cut",), ("Fair",))
    fair = frame[frame["cut"] == "Fair"]
    assert (top.rows, top.errors) == (len(fair), int(fair["error"].sum()))
    assert top.share_of_errors is not None and top.lift is not None
    assert top.share_of_errors.estimate == pytest.approx(fair["error"].sum()
                                                         / frame["error"].sum())
    assert top.error_rate.estimate == pytest.approx(fair["error"].mean())
    assert top.share_of_traffic.estimate == pytest.approx(len(fair) / len(frame))
    assert top.lift == pytest.approx(fair["error"].mean() / frame["error"].mean())

    pair = result.pairs[0]
    assert (pair.columns, pair.values) == (("cut", "color"), ("Premium", "J"))
    planted = frame[(frame["cut"] == "Premium") & (frame["color"] == "J")]
    assert (pair.rows, pair.errors) == (len(planted), int(planted["error"].sum()))

    # every shown single slice matches a groupby, in the order of its error count
    for column in ("cut", "color", "clarity"):
        counts = frame.groupby(column)["error"].agg(["sum", "count"])
        shown = {s.values[0]: (s.errors, s.rows) for s in result.singles
                 if s.columns == (column,)}
        expected = {str(v): (int(r["sum"]), int(r["count"])) for v, r in counts.iterrows()
                    if r["count"] >= 20}
        assert shown == expected
    errors_order = [s.errors for s in result.singles]
    assert errors_order == sorted(errors_order, reverse=True)


def test_small_slices_are_hidden_and_counted() -> None:
    frame = diamonds_like()
    result = analyse_errors(_labels(frame, ["cut", "color", "clarity"]),
                            frame["error"].to_numpy(), min_rows=20)
    assert "clarity=I1" not in [s.name for s in result.slices]
    small_singles = sum(int((frame[c].value_counts() < 20).sum())
                        for c in ("cut", "color", "clarity"))
    assert result.hidden_singles == small_singles == 1
    small_pairs = 0
    for a, b in combinations(result.pair_columns, 2):
        sizes = frame.groupby([a, b]).size()
        small_pairs += int((sizes < 20).sum())
    assert result.hidden_pairs == small_pairs > 0
    assert all(s.rows >= 20 for s in result.slices)
    everything = analyse_errors(_labels(frame, ["clarity"]), frame["error"].to_numpy(),
                                min_rows=1)
    assert "clarity=I1" in [s.name for s in everything.slices] and everything.hidden == 0


def test_intervals_hold_their_estimates_and_are_clopper_pearson() -> None:
    frame = diamonds_like(rows=1500, seed=3)
    result = analyse_errors(_labels(frame, ["cut", "color"]), frame["error"].to_numpy(),
                            level=0.9)
    assert result.slices
    for s in result.slices:
        assert s.share_of_errors is not None
        for interval in (s.share_of_errors, s.error_rate, s.share_of_traffic):
            assert interval.low <= interval.estimate <= interval.high
            assert interval.level == 0.9
        same = stats.binomtest(s.errors, s.rows).proportion_ci(0.9, method="exact")
        assert (s.error_rate.low, s.error_rate.high) == pytest.approx((same.low, same.high))
        traffic = exact_proportion(s.rows, result.rows, 0.9)
        assert (s.share_of_traffic.low, s.share_of_traffic.high) == pytest.approx(
            (traffic.low, traffic.high))


def test_exact_bounds_are_exact_proportion_at_once() -> None:
    k = np.array([0, 1, 5, 20, 20])
    n = np.array([10, 10, 50, 20, 400])
    low, high = exact_bounds(k, n, 0.95)
    for i in range(len(k)):
        one = exact_proportion(int(k[i]), int(n[i]))
        assert (low[i], high[i]) == pytest.approx((one.low, one.high))
    assert low[0] == 0.0 and high[3] == 1.0


def test_sort_by_rate_and_traffic() -> None:
    frame = diamonds_like()
    labels = _labels(frame, ["cut", "color"])
    by_rate = analyse_errors(labels, frame["error"].to_numpy(), sort="rate")
    assert by_rate.pairs[0].name == "cut=Premium & color=J"
    rates = [s.error_rate.estimate for s in by_rate.singles]
    assert rates == sorted(rates, reverse=True)
    by_traffic = analyse_errors(labels, frame["error"].to_numpy(), sort="traffic")
    rows = [s.rows for s in by_traffic.singles]
    assert rows == sorted(rows, reverse=True)
    assert by_traffic.to_dict()["sort"] == "traffic"


def test_pairs_only_among_the_columns_where_errors_gather() -> None:
    frame = diamonds_like()
    frame["noise"] = np.random.default_rng(9).choice(["a", "b"], len(frame))
    labels = _labels(frame, ["noise", "clarity", "cut", "color"])
    result = analyse_errors(labels, frame["error"].to_numpy(), pair_columns=2)
    assert set(result.pair_columns) == {"cut", "color"}
    assert {s.columns for s in result.pairs} == {("cut", "color")}
    assert analyse_errors(labels, frame["error"].to_numpy(), pair_columns=0).pairs == []


def test_no_errors_leaves_shares_and_lift_undefined() -> None:
    labels = {"city": np.array(["a", "b"] * 30, dtype=object)}
    result = analyse_errors(labels, np.zeros(60, dtype=bool))
    assert result.errors == 0 and result.error_rate.estimate == 0.0
    assert all(s.share_of_errors is None and s.lift is None for s in result.slices)
    assert result.to_dict()["singles"][0]["share_of_errors"] is None


@pytest.mark.parametrize(("labels", "errors", "options", "message"), [
    ({"a": np.array(["x"] * 3)}, np.array([1, 0, 1]), {}, "1-D array of booleans"),
    ({"a": np.array(["x"] * 2)}, np.array([True, False, True]), {}, "has (2,) labels"),
    ({"a": np.array(["x"] * 3)}, np.array([True] * 3), {"sort": "size"}, "sort must be"),
    ({"a": np.array(["x"] * 3)}, np.array([True] * 3), {"min_rows": 0}, "min_rows"),
    ({}, np.zeros(0, dtype=bool), {}, "at least one row"),
])
def test_bad_inputs_are_named(labels: dict[str, np.ndarray], errors: np.ndarray,
                              options: dict[str, object], message: str) -> None:
    with pytest.raises(MonitoringError, match=message.replace("(", r"\(").replace(")", r"\)")):
        analyse_errors(labels, errors, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("label", "name"), [
    ("Fair", "cut=Fair"), ("< 0.4", "cut < 0.4"), (">= 1.1", "cut >= 1.1"),
    ("[0.4, 0.7)", "cut in [0.4, 0.7)"), ("missing", "cut=missing")])
def test_slice_names_read_as_conditions(label: str, name: str) -> None:
    assert condition("cut", label) == name
