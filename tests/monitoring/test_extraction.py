"""The model-extraction score's parts, one at a time, and how they combine
(``monitoring/extraction.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.monitoring.extraction import (
    FLAG_SCORE,
    ExtractionBaseline,
    ExtractionParts,
    FeatureBins,
    KeyTraffic,
    boundary_part,
    distinct_rows,
    feature_uniformity,
    margins,
    score_keys,
    uniformity_part,
    volume_part,
)
from shipyard.profiles import profile


def normal_reference(rows: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(0.0, 1.0, rows), rng.gamma(2.0, 2.0, rows)
    p1 = 1.0 / (1.0 + np.exp(-3.0 * x0))
    return {"x0": x0, "x1": x1, "proba.0": 1.0 - p1, "proba.1": p1}


@pytest.fixture(scope="module")
def baseline() -> ExtractionBaseline:
    return ExtractionBaseline.from_profile(profile(normal_reference()), ["x0", "x1"])


def like_reference(rows: int, seed: int) -> dict[str, np.ndarray]:
    data = normal_reference(rows, seed)
    return {"x0": data["x0"], "x1": data["x1"]}


def uniform_inputs(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = normal_reference()
    return {c: rng.uniform(ref[c].min(), ref[c].max(), rows) for c in ("x0", "x1")}


def proba_of(inputs: dict[str, np.ndarray]) -> np.ndarray:
    p1 = 1.0 / (1.0 + np.exp(-3.0 * inputs["x0"]))
    return np.column_stack([1.0 - p1, p1])


# -- volume ------------------------------------------------------------------------------------

def test_distinct_rows_counts_whole_rows_of_every_kind_of_column() -> None:
    x = np.array([1.0, 1.0, 2.0, np.nan, np.nan])
    city = np.array(["a", "a", "a", "b", "b"], dtype=object)
    assert distinct_rows({"x": x}) == 3  # NaN equals NaN
    assert distinct_rows({"x": x, "city": city}) == 3
    assert distinct_rows({"x": x, "city": np.array(["a", "b", "a", "b", "c"],
                                                   dtype=object)}) == 5
    tensor = np.array([[1, 2], [1, 2], [1, 3]])
    assert distinct_rows({"t": tensor}) == 2
    assert distinct_rows({}) == 0


def test_volume_is_the_distinct_share_times_how_far_past_the_typical_key() -> None:
    assert volume_part(1000, 1000, 100.0) == 1.0  # 10x the typical key, all distinct
    assert volume_part(100, 100, 100.0) == 0.0  # as busy as the others
    assert volume_part(316, 316, 100.0) == pytest.approx(0.5, abs=0.01)  # sqrt(10)x
    assert volume_part(1000, 10_000, 100.0) == 0.1  # re-sending the same inputs
    assert volume_part(0, 0, 100.0) == 0.0


# -- uniformity --------------------------------------------------------------------------------

def test_the_bins_put_more_uniform_mass_in_the_outer_deciles(baseline) -> None:
    x0 = next(b for b in baseline.features if b.name == "x0")
    assert x0.reference == pytest.approx(np.full(10, 0.1), abs=0.01)
    assert x0.uniform[0] > 2.5 * x0.reference[0] and x0.uniform[-1] > 2.5 * x0.reference[-1]
    assert x0.reference_mean < 0 < x0.uniform_mean


def test_a_reference_like_client_scores_no_uniformity(baseline) -> None:
    for seed in range(1, 6):
        part, by_feature = uniformity_part(like_reference(300, seed), baseline.features)
        assert part == 0.0 or part < 0.1, (seed, by_feature)


def test_inputs_spread_uniformly_over_the_range_score_high(baseline) -> None:
    part, by_feature = uniformity_part(uniform_inputs(300, 7), baseline.features)
    assert part is not None and part >= 0.8, by_feature
    assert set(by_feature) == {"x0", "x1"}


def test_a_client_drifted_to_one_side_is_drift_not_extraction(baseline) -> None:
    shifted = like_reference(300, 3)
    shifted["x0"] = shifted["x0"] + 1.5  # one tail filled, the other emptied
    x0 = next(b for b in baseline.features if b.name == "x0")
    assert feature_uniformity(shifted["x0"], x0) < 0.2


def test_a_feature_whose_reference_is_already_uniform_is_left_out() -> None:
    rng = np.random.default_rng(5)
    flat = profile({"u": rng.uniform(0, 1, 4000), "x": rng.normal(0, 1, 4000)})
    assert FeatureBins.from_column(flat["u"]) is not None
    baseline = ExtractionBaseline.from_profile(flat, ["u", "x"])
    assert [b.name for b in baseline.features] == ["x"]
    assert uniformity_part({"u": rng.uniform(0, 1, 300)}, baseline.features) == (None, {})


def test_a_constant_column_has_no_bins() -> None:
    assert FeatureBins.from_column(profile({"c": np.ones(100)})["c"]) is None


# -- boundary ----------------------------------------------------------------------------------

def test_margins_are_the_top_two_probabilities_apart() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.4, 0.45, 0.15], [np.nan, 0.5, 0.5]])
    assert margins(proba) == pytest.approx([0.5, 0.05])
    assert len(margins(np.ones((3, 1)))) == 0


def test_boundary_reads_the_share_of_small_margins_against_the_reference(baseline) -> None:
    assert baseline.boundary_share is not None and 0.01 < baseline.boundary_share < 0.1
    normal = margins(proba_of(like_reference(300, 4)))
    assert boundary_part(normal, baseline.boundary_share)[0] == 0.0
    probing = np.concatenate([np.full(240, 0.01), np.full(60, 0.9)])  # 80% at the boundary
    part, share = boundary_part(probing, baseline.boundary_share)
    assert part == 1.0 and share == 0.8
    assert boundary_part(np.zeros(0), 0.05) == (None, None)
    assert boundary_part(probing, 1.0) == (None, None)


# -- the score ---------------------------------------------------------------------------------

def test_the_parts_combine_as_a_weighted_noisy_or() -> None:
    assert ExtractionParts(1.0, None, None).combined() == 0.5  # volume alone never flags
    assert ExtractionParts(0.0, 0.8, None).combined() == pytest.approx(0.8)
    assert ExtractionParts(1.0, 0.6, 0.0).combined() == pytest.approx(0.8)
    assert ExtractionParts(0.0, None, 1.0).combined() == 1.0


def test_keys_are_scored_once_they_sent_enough_rows(baseline) -> None:
    normal = like_reference(300, 11)
    uniform = uniform_inputs(600, 12)
    tiny = uniform_inputs(20, 13)
    report = score_keys([KeyTraffic("normal", normal, 30, proba_of(normal)),
                         KeyTraffic("copier", uniform, 60, proba_of(uniform)),
                         KeyTraffic("tiny", tiny, 2, proba_of(tiny))], baseline)
    assert report.unscored == {"tiny": 20}
    assert set(report.keys) == {"normal", "copier"}
    assert report.keys["normal"].score < 0.5 and not report.keys["normal"].flagged
    copier = report.keys["copier"]
    assert copier.flagged and copier.score >= FLAG_SCORE
    assert copier.distinct == 600 and copier.requests == 60
    assert report.flagged == ["copier"] and report.max_score == copier.score
    out = report.to_dict()
    assert out["keys"]["copier"]["parts"]["uniformity"] >= 0.8
    assert out["keys"]["copier"]["typical_distinct"] == 160.0  # median of the others (300, 20)
    assert out["unscored"] == {"tiny": 20}


def test_a_busy_honest_client_is_not_flagged(baseline) -> None:
    busy = like_reference(3000, 21)
    quiet = like_reference(150, 22)
    report = score_keys([KeyTraffic("busy", busy, 300, proba_of(busy)),
                         KeyTraffic("quiet", quiet, 15, proba_of(quiet))], baseline)
    busy_score = report.keys["busy"]
    assert busy_score.parts.volume == 1.0 and not busy_score.flagged
    assert busy_score.score < FLAG_SCORE


def test_without_probabilities_the_boundary_part_is_absent(baseline) -> None:
    normal = like_reference(200, 31)
    (scored,) = score_keys([KeyTraffic("a", normal, 20)], baseline).keys.values()
    assert scored.parts.boundary is None and "boundary_share" not in scored.detail
    assert score_keys([], baseline).max_score is None
