"""The extraction score in the monitor: per key from the log's ``api_key`` column, in the
window's record and metrics, as alert rule metrics (``extraction_score``, per key and max),
and as ``/metrics`` samples; a log without key names has no extraction section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitoring.test_monitor_service import (
    BASE,
    CLASSES,
    ENDPOINT,
    HOUR,
    make_rows,
    predict,
    save_reference,
)
from shipyard.monitoring.alert_metrics import check_metric_names, metric_names
from shipyard.monitoring.alert_rules import AlertError, parse_rule
from shipyard.service.config import MonitorConfig
from shipyard.service.monitor import Monitor
from shipyard.service.monitor_metrics import record_samples
from shipyard.stores.predictions import PredictionBatch, PredictionLog

RULES = ("extraction_score > 0.8", "extraction_score(honest) > 0.8",
         "extraction_score(copier) > 0.8", "extraction_flagged_keys >= 1")


def uniform_rows(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = make_rows(n, rng)
    rows["x0"], rows["x1"] = rng.uniform(-3.5, 3.5, n), rng.uniform(-3.5, 3.5, n)
    rows["x2"] = rng.uniform(-2.0, 12.0, n)
    return rows


def write_log(root: Path, keyed: bool) -> None:
    rng = np.random.default_rng(3)
    log = PredictionLog(root)
    for i in range(40):  # 20 rows per request, alternating clients
        name = "honest" if i % 2 else "copier"
        rows = make_rows(20, rng) if name == "honest" else uniform_rows(20, rng)
        labels, proba = predict(rows)
        log.append(PredictionBatch(
            [f"r{i}"], [20], [2.0], [None], [BASE + 60 + i], ENDPOINT, "demo", 1, rows,
            {"label": labels, "probabilities": proba}, CLASSES,
            key_names=[name] if keyed else None))
    log.close()


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    return save_reference(tmp_path / "reference.profile")


def test_the_monitor_scores_each_key_and_alerts_on_the_copier(tmp_path: Path,
                                                              reference: Path) -> None:
    write_log(tmp_path / "logs", keyed=True)
    monitor = Monitor(ENDPOINT, tmp_path / "logs", MonitorConfig(
        reference=str(reference), rules=RULES), clock=lambda: BASE + HOUR)
    run = monitor.run(last=1000)
    (record,) = run.records
    extraction = record["extraction"]
    assert extraction["flagged"] == ["copier"]
    assert extraction["keys"]["copier"]["requests"] == 20
    assert extraction["keys"]["honest"]["score"] < 0.5
    metrics = record["metrics"]
    assert metrics["extraction_score"] == extraction["keys"]["copier"]["score"] >= 0.8
    assert metrics["extraction_score(honest)"] == extraction["keys"]["honest"]["score"]
    assert metrics["extraction_flagged_keys"] == 1.0
    assert {k.split("(")[0] for k in metrics} <= set(metric_names("classification"))
    assert {e.rule for e in run.events} == {"extraction_score > 0.8",
                                            "extraction_score(copier) > 0.8",
                                            "extraction_flagged_keys >= 1"}

    samples = {(name, labels): value for name, labels, value
               in record_samples(ENDPOINT, record, top_features=20)}
    copier = extraction["keys"]["copier"]
    assert samples[("shipyard_extraction_score", (ENDPOINT, "copier"))] == copier["score"]
    assert samples[("shipyard_extraction_part", (ENDPOINT, "copier", "uniformity"))] == \
        copier["parts"]["uniformity"]
    assert ("shipyard_extraction_score", (ENDPOINT, "honest")) in samples
    one = {k for k in samples if k[0] == "shipyard_extraction_score"}
    assert len({k for k, *_ in record_samples(ENDPOINT, record, top_features=1)
                if k == "shipyard_extraction_score"}) == 1 and len(one) == 2


def test_a_log_without_key_names_has_no_extraction_section(tmp_path: Path,
                                                            reference: Path) -> None:
    write_log(tmp_path / "logs", keyed=False)
    (record,) = Monitor(ENDPOINT, tmp_path / "logs", MonitorConfig(
        reference=str(reference), rules=RULES), clock=lambda: BASE + HOUR).run(
        last=1000).records
    assert record["extraction"] is None
    assert not [k for k in record["metrics"] if k.startswith("extraction")]
    assert not [n for n, *_ in record_samples(ENDPOINT, record, 20) if "extraction" in n]


def test_the_rule_grammar_takes_extraction_score_with_or_without_a_key() -> None:
    rules = [parse_rule(r) for r in RULES]
    check_metric_names(rules)
    assert rules[1].key == "extraction_score(honest)"
    with pytest.raises(AlertError, match="extraction_flagged_keys takes no column"):
        check_metric_names([parse_rule("extraction_flagged_keys(x) > 1")])
    with pytest.raises(AlertError, match=r"extraction_score\[\(KEY\)\]"):
        check_metric_names([parse_rule("extraction_scor > 0.8")])
