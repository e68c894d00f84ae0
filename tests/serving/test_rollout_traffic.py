"""``service.rollout_traffic.traffic``: each version's traffic over an interval, read from
real log segments (predictions, shadow, errors, feedback) written by ``PredictionLog``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.service.rollout_traffic import traffic
from shipyard.stores.predictions import (
    ErrorRecord,
    FeedbackRecord,
    PredictionBatch,
    PredictionLog,
)

T0 = 1.7e9
CLASSES = ("setosa", "versicolor")


def answers(log: PredictionLog, version: int, ids: list[str], *, ts: float, rows: int = 1,
            label: str = "setosa", variant: str = "", keys: list[str | None] | None = None,
            latency: float = 5.0, kind: str = "predictions", proba: float = 0.9) -> None:
    n = len(ids) * rows
    log.append(PredictionBatch(
        request_ids=ids, row_counts=[rows] * len(ids), latency_ms=[latency] * len(ids),
        routing_keys=keys or [None] * len(ids), ts=[ts] * len(ids), endpoint="iris",
        model="iris", version=version, inputs={"x": np.arange(n, dtype=np.float64)},
        outputs={"label": np.array([label] * n, dtype=object),
                 "probabilities": np.tile([proba, 1 - proba], (n, 1))},
        class_labels=list(CLASSES), variants=[variant] * len(ids),
        policy_revisions=[3] * len(ids), kind=kind))  # type: ignore[arg-type]


def failure(log: PredictionLog, version: int, rid: str, status: int, *, ts: float,
            variant: str = "", key: str | None = None, shadow: bool = False) -> None:
    log.append(ErrorRecord(ts=ts, endpoint="iris", model="iris", version=version,
                           variant=variant, policy_revision=3, request_id=rid, status=status,
                           latency_ms=1.0, routing_key=key, shadow=shadow))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    log = PredictionLog(tmp_path)
    answers(log, 1, ["early"], ts=T0 - 1, variant="stable")  # before the window
    answers(log, 1, ["s1", "s2", "s3"], ts=T0 + 1, rows=2, variant="stable", latency=4.0,
            keys=["u1", None, "u3"])
    answers(log, 2, ["c1", "c2"], ts=T0 + 2, label="versicolor", variant="canary",
            latency=9.0, proba=0.2, keys=["u4", "u5"])
    answers(log, 2, ["late"], ts=T0 + 60, variant="canary")  # at the window's end: out
    answers(log, 3, ["s1", "s2"], ts=T0 + 3, label="versicolor", variant="shadow",
            kind="shadow", latency=30.0)
    failure(log, 2, "c3", 503, ts=T0 + 4, variant="canary", key="u6")
    failure(log, 2, "c4", 429, ts=T0 + 5, variant="canary")
    failure(log, 1, "s4", 500, ts=T0 - 5, variant="stable")  # before the window
    failure(log, 3, "s3", 500, ts=T0 + 6, variant="shadow", shadow=True)
    for rid, labels in (("s1", ["setosa", "versicolor"]), ("c2", ["versicolor"]),
                        ("early", ["setosa"])):
        log.append(FeedbackRecord(rid, T0 + 30, "iris", labels))
    log.close()
    return tmp_path


def window(root: Path, versions: list[str], **kwargs: Any) -> dict[str, Any]:
    return traffic(root, "iris", T0, T0 + 60, versions, class_labels=CLASSES, **kwargs)


def test_each_version_gets_its_answers_errors_and_labels(root: Path) -> None:
    out = window(root, ["iris/1", "iris/2", "iris/9"])
    stable, canary, missing = out["iris/1"], out["iris/2"], out["iris/9"]
    assert (stable.requests, stable.errors) == (3, 0)  # "early" and s4 are before `since`
    assert stable.latencies_ms.tolist() == [4.0, 4.0, 4.0]  # one per request, not per row
    assert stable.predictions.tolist() == ["setosa"] * 6
    assert stable.probabilities is not None and stable.probabilities.shape == (6, 2)
    assert stable.probabilities[0].tolist() == pytest.approx([0.9, 0.1])
    assert stable.class_labels == CLASSES
    assert stable.truth is not None and stable.truth.tolist() == ["setosa", "versicolor"]
    assert stable.labelled_predictions is not None
    assert stable.labelled_predictions.tolist() == ["setosa", "setosa"]
    # two answered, one 503 (an error) and one 429 (counted, not an error); "late" is out
    assert (canary.requests, canary.errors, canary.answered) == (4, 1, 2)
    assert canary.predictions.tolist() == ["versicolor"] * 2
    assert canary.probabilities is not None
    assert canary.probabilities[:, 0].tolist() == pytest.approx([0.2, 0.2])
    assert canary.truth is not None and canary.truth.tolist() == ["versicolor"]
    assert (missing.requests, missing.errors, missing.predictions.size) == (0, 0, 0)
    assert set(out) == {"iris/1", "iris/2", "iris/9"}


def test_shadow_answers_and_failures_are_read_apart(root: Path) -> None:
    shadow = window(root, ["iris/3", "iris/1"], shadow=True)
    assert (shadow["iris/3"].requests, shadow["iris/3"].errors) == (3, 1)
    assert shadow["iris/3"].predictions.tolist() == ["versicolor"] * 2
    assert shadow["iris/3"].latencies_ms.tolist() == [30.0, 30.0]
    assert shadow["iris/3"].truth is not None  # copies keep the primary's request id
    assert shadow["iris/3"].truth.tolist() == ["setosa"]
    assert shadow["iris/1"].requests == 0
    assert window(root, ["iris/3"])["iris/3"].requests == 0  # never among the answers


def test_variants_and_keyed_only_narrow_the_rows(root: Path) -> None:
    out = window(root, ["iris/1", "iris/2"], variants=["canary"])
    assert out["iris/1"].requests == 0 and out["iris/2"].requests == 4
    keyed = window(root, ["iris/1", "iris/2"], keyed_only=True)
    assert keyed["iris/1"].requests == 2  # s2 had no routing key
    assert keyed["iris/1"].latencies_ms.size == 2
    assert (keyed["iris/2"].requests, keyed["iris/2"].errors) == (3, 1)  # c4 had no key


def test_no_probabilities_without_class_labels_and_nothing_logged_is_empty(
        root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = traffic(root, "iris", T0, T0 + 60, ["iris/1"], class_labels=None)
    assert out["iris/1"].probabilities is None and out["iris/1"].requests == 3
    empty = traffic(tmp_path_factory.mktemp("none"), "iris", T0, T0 + 60, ["iris/1"],
                    class_labels=CLASSES)
    assert empty["iris/1"].requests == 0 and empty["iris/1"].truth is None
