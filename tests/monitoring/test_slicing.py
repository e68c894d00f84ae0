"""Slice assignment (issue 18): categories as they are, numbers between the reference's
quantiles, missing values their own slice, the same cut in every window."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.errors import MonitoringError
from shipyard.monitoring.slicing import (
    MISSING,
    SliceBins,
    assign_slices,
    bins_of_values,
    reference_bins,
)
from shipyard.profiles import profile


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    carat = rng.gamma(2.0, 0.4, size=4000)
    return {"carat": carat,
            "cut": rng.choice(np.array(["Fair", "Good", "Ideal"]), size=4000),
            "flag": rng.integers(0, 2, size=4000)}


def test_numeric_columns_are_cut_at_the_reference_quartiles(
        reference: dict[str, np.ndarray]) -> None:
    bins = reference_bins(profile(reference), ["carat", "cut", "flag"])
    carat = bins["carat"]
    assert carat.numeric and carat.edges is not None and len(carat.edges) == 3
    truth = np.quantile(reference["carat"], [0.25, 0.5, 0.75])
    # the sketch's rank error is about 1%: each edge sits within 2% of rank of the truth
    ranks = [np.mean(reference["carat"] < e) for e in carat.edges]
    assert ranks == pytest.approx([0.25, 0.5, 0.75], abs=0.02)
    assert carat.edges == pytest.approx(truth, rel=0.1)
    assert not bins["cut"].numeric and not bins["flag"].numeric  # a binary column: categories
    labels = assign_slices(reference, bins)
    shares = {s: float(np.mean(labels["carat"] == s)) for s in carat.labels}
    assert list(shares) == carat.labels
    assert all(abs(v - 0.25) < 0.02 for v in shares.values()), shares
    assert set(labels["cut"]) == {"Fair", "Good", "Ideal"}
    assert set(labels["flag"]) == {"0", "1"}


def test_bins_are_half_open_and_labelled_by_their_edges() -> None:
    cut = SliceBins("x", (0.2, 0.7))
    assert cut.labels == ["< 0.2", "[0.2, 0.7)", ">= 0.7"]
    labels = assign_slices({"x": np.array([0.1, 0.2, 0.69, 0.7, 5.0, np.nan])}, {"x": cut})
    assert labels["x"].tolist() == ["< 0.2", "[0.2, 0.7)", "[0.2, 0.7)", ">= 0.7", ">= 0.7",
                                    MISSING]


def test_close_edges_print_with_enough_digits_to_stay_distinct() -> None:
    cut = SliceBins("x", (1.0001, 1.0002))
    assert cut.labels == ["< 1.0001", "[1.0001, 1.0002)", ">= 1.0002"]
    assert SliceBins("x", (1234567.0,)).labels == ["< 1.23e+06", ">= 1.23e+06"]


def test_missing_values_are_their_own_slice_in_either_kind() -> None:
    bins = {"cut": SliceBins("cut"), "carat": SliceBins("carat", (1.0,))}
    labels = assign_slices({"cut": np.array(["Fair", None, "Ideal"], dtype=object),
                            "carat": np.array([None, 0.5, 2], dtype=object)}, bins)
    assert labels["cut"].tolist() == ["Fair", MISSING, "Ideal"]
    assert labels["carat"].tolist() == [MISSING, "< 1", ">= 1"]
    floats = assign_slices({"cut": np.array([1.0, np.nan, 2.0])}, {"cut": SliceBins("cut")})
    assert floats["cut"].tolist() == ["1", MISSING, "2"]


def test_categories_match_by_value_whatever_their_type() -> None:
    cut = {"k": SliceBins("k")}
    ints = assign_slices({"k": np.array([1, 2, 1])}, cut)["k"]
    floats = assign_slices({"k": np.array([1.0, 2.0, 1.0])}, cut)["k"]
    text = assign_slices({"k": np.array(["1", "2", "1"], dtype=object)}, cut)["k"]
    assert ints.tolist() == floats.tolist() == text.tolist() == ["1", "2", "1"]
    bools = assign_slices({"k": np.array([True, False])}, cut)["k"]
    assert bools.tolist() == ["True", "False"]


def test_a_category_the_reference_never_saw_is_a_slice_too(
        reference: dict[str, np.ndarray]) -> None:
    bins = reference_bins(profile(reference), ["cut"])
    labels = assign_slices({"cut": np.array(["Ideal", "Premium"])}, bins)
    assert labels["cut"].tolist() == ["Ideal", "Premium"]


def test_bins_of_raw_values() -> None:
    values = np.arange(100, dtype=float)
    cut = bins_of_values("x", values)
    assert cut.edges == pytest.approx(np.quantile(values, [0.25, 0.5, 0.75]))
    assert bins_of_values("x", values, bins=2).edges == pytest.approx([49.5])
    assert not bins_of_values("x", np.array([0, 1, 1, 0])).numeric
    assert not bins_of_values("x", np.array(["a", "b"])).numeric
    few = bins_of_values("x", np.array([1.0, 1.0, 1.0, 2.0, 3.0]))
    assert few.edges == (1.0, 2.0)  # repeated quantiles collapse into one edge


def test_mistakes_are_named() -> None:
    with pytest.raises(MonitoringError, match="'color' not in the reference"):
        reference_bins(profile({"cut": np.array(["a", "b"])}), ["color"])
    with pytest.raises(MonitoringError, match="'cut' not among the rows' columns"):
        assign_slices({"x": np.zeros(2)}, {"cut": SliceBins("cut")})
    with pytest.raises(MonitoringError, match="numeric in the reference but holds"):
        assign_slices({"x": np.array(["big", "small"], dtype=object)},
                      {"x": SliceBins("x", (1.0,))})
    with pytest.raises(MonitoringError, match="strictly ascending"):
        SliceBins("x", (2.0, 1.0))
    with pytest.raises(MonitoringError, match="at least 2 bins"):
        bins_of_values("x", np.arange(10.0), bins=1)
