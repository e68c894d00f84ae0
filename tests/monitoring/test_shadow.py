"""Shadow reports: agreement with its interval and the disagreements (classification),
the distribution of differences (regression), latency, and both sides' metrics once
labels exist; missing answers are counted, never dropped silently."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shipyard.errors import MonitoringError
from shipyard.monitoring.shadow import shadow_report


def test_classification_agreement_interval_and_disagreements() -> None:
    rng = np.random.default_rng(20)
    primary = rng.choice(np.array(["cat", "dog", "owl"], dtype=object), 2000)
    shadow = primary.copy()
    flip = rng.random(2000) < 0.1
    shadow[flip & (primary == "cat")] = "dog"
    shadow[flip & (primary == "owl")] = "cat"
    shadow[5] = None  # the shadow's copy got no answer for this row
    report = shadow_report(primary, shadow, classification=True,
                           latencies_primary=rng.lognormal(2.0, 0.2, 2000),
                           latencies_shadow=rng.lognormal(2.5, 0.2, 1999))
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert report["rows"] == 2000 and report["compared"] == 1999
    assert report["missing"] == {"primary": 0, "shadow": 1}
    agreement = report["agreement"]
    disagree = int(np.sum(shadow[np.arange(2000) != 5] != primary[np.arange(2000) != 5]))
    assert agreement["agreed"] == 1999 - disagree
    low, high = agreement["interval"]
    assert low < agreement["rate"] < high and low > 0.85 and high < 0.97
    pairs = {(d["primary"], d["shadow"]): d["count"] for d in report["disagreements"]}
    assert set(pairs) == {("cat", "dog"), ("owl", "cat")}
    assert sum(pairs.values()) == disagree and report["disagreements_left_out"] == 0
    latency = report["latency_ms"]
    assert latency["shadow"]["count"] == 1999 and 1.4 < latency["p99_ratio"] < 1.9
    assert "metrics" not in report


def test_labels_of_one_type_match_labels_of_another() -> None:
    report = shadow_report(np.array([1, 2, 2, 0]), np.array(["1", 2.0, "0", "0"],
                                                              dtype=object),
                           classification=True, latencies_primary=[], latencies_shadow=[])
    assert report["agreement"]["agreed"] == 3
    assert report["disagreements"] == [{"primary": "2", "shadow": "0", "count": 1}]
    assert report["latency_ms"]["primary"]["p99"] is None


def test_regression_differences_and_metrics_side_by_side() -> None:
    rng = np.random.default_rng(21)
    truth = rng.normal(0, 5, 3000)
    primary = truth + rng.normal(0, 1.0, 3000)
    shadow = primary + 0.5
    labels = truth.copy()
    labels[:1000] = np.nan  # most rows never get a label
    report = shadow_report(primary, shadow, classification=False,
                           latencies_primary=np.full(3000, 5.0),
                           latencies_shadow=np.full(3000, 5.0), truth=labels)
    diff = report["difference"]
    assert diff["mean"] == pytest.approx(0.5) and diff["mean_abs"] == pytest.approx(0.5)
    assert diff["quantiles"]["p01"] == pytest.approx(0.5)
    assert list(diff["quantiles"]) == ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]
    metrics = report["metrics"]
    assert metrics["primary"]["rows"] == 2000 and metrics["primary"]["missing_labels"] == 1000
    assert metrics["shadow"]["mae"] > metrics["primary"]["mae"]
    assert report["latency_ms"]["p99_ratio"] == 1.0


def test_classification_metrics_side_by_side_with_labels() -> None:
    truth = np.array(["a", "b", "a", "b", None], dtype=object)
    report = shadow_report(np.array(["a", "b", "a", "a", "a"]), np.array(["a", "a", "a", "a",
                                                                         "b"]),
                           classification=True, latencies_primary=[1.0],
                           latencies_shadow=[2.0], truth=truth)
    assert report["metrics"]["primary"]["accuracy"] == 0.75
    assert report["metrics"]["shadow"]["accuracy"] == 0.5


def test_misaligned_or_wrong_input_is_refused() -> None:
    with pytest.raises(MonitoringError, match="aligned"):
        shadow_report([1, 2], [1], classification=True, latencies_primary=[],
                      latencies_shadow=[])
    with pytest.raises(MonitoringError, match="truth has 1 rows"):
        shadow_report([1, 2], [1, 2], classification=True, latencies_primary=[],
                      latencies_shadow=[], truth=[1])
    with pytest.raises(MonitoringError, match="classification=True"):
        shadow_report(np.array(["x"], dtype=object), np.array(["y"], dtype=object),
                      classification=False, latencies_primary=[], latencies_shadow=[])
