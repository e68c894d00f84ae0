"""Monitor results and rollout state on /metrics: the values of the newest stored window,
as the real monitor wrote them; the same on every worker of --workers N; bounded series."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitoring.test_monitor_service import BASE, ENDPOINT, HOUR, Traffic, monitor, save_reference
from server.helpers import metric, metric_samples
from shipyard.routing import BlueGreen, Shadow, Single, StickyAB, Weighted
from shipyard.service.config import ConfigError, EndpointConfig, ServeConfig
from shipyard.service.metrics import SharedMetrics
from shipyard.service.monitor_history import MonitorHistory
from shipyard.service.monitor_metrics import MonitorResults
from shipyard.service.rollout_metrics import policy_weights

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
RULES = ("drift_share > 0.2", "accuracy < 0.1")


def scrape(*collectors: Any) -> Samples:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return metric_samples(generate_latest(registry).decode())


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Traffic, dict[str, Any]]:
    """One complete hour of traffic whose x0 drifted, with labels, monitored (rules on)."""
    reference = save_reference(tmp_path / "reference.profile")
    traffic = Traffic(tmp_path / "logs")
    traffic.send(BASE, HOUR, 50, shift=1.5, feedback=True)
    monitor(traffic, reference, BASE + HOUR + 10, every=HOUR, rules=RULES).run()
    record = MonitorHistory(traffic.root, ENDPOINT).latest()
    assert record is not None and record["window"]["complete"]
    return traffic, record


def test_the_newest_window_is_exported_as_stored(stored: tuple[Traffic, dict[str, Any]],
                                                 ) -> None:
    traffic, record = stored
    got = scrape(MonitorResults(traffic.root, [ENDPOINT], top_features=2))
    at = {"endpoint": ENDPOINT, "version": "1"}
    drift = record["drift"]
    assert metric(got, "shipyard_drift_share", **at) == drift["drift_share"] == 0.25
    assert metric(got, "shipyard_dataset_drift", **at) == 1.0
    assert metric(got, "shipyard_monitor_rows", **at) == 1000
    assert metric(got, "shipyard_monitor_window_end_timestamp_seconds", **at) == BASE + HOUR
    # the two inputs with the largest drift effect, and only those
    effects = {name: c["effect_size"] for name, c in drift["columns"].items()}
    top2 = sorted(effects, key=lambda n: -effects[n])[:2]
    assert top2[0] == "x0"
    features = {dict(labels)["feature"] for name, labels in got
                if name == "shipyard_feature_drift_effect"}
    assert features == set(top2)
    for name in top2:
        column = drift["columns"][name]
        assert metric(got, "shipyard_feature_drift_effect", **at, feature=name) == \
            column["effect_size"]
        assert metric(got, "shipyard_feature_drift_p_value", **at, feature=name) == \
            column["p_value"]
        assert metric(got, "shipyard_feature_drifted", **at, feature=name) == \
            float(column["drifted"])
    assert len([k for k in got if k[0] == "shipyard_feature_missing_rate"]) == 2
    assert metric(got, "shipyard_feature_missing_rate", **at, feature="city") == 0.0
    performance = record["performance"]
    for source in ("realised", "estimated", "reference"):
        assert metric(got, "shipyard_model_metric", **at, metric="accuracy", source=source) \
            == performance[source]["accuracy"]
    assert metric(got, "shipyard_model_metric", **at, metric="rows", source="realised") is None
    assert metric(got, "shipyard_alerts_firing", endpoint=ENDPOINT,
                  rule="drift_share > 0.2") == 1.0
    assert metric(got, "shipyard_alerts_firing", endpoint=ENDPOINT, rule="accuracy < 0.1") \
        == 0.0


def test_realised_metrics_are_per_version_and_the_rest_under_the_main_version(
        tmp_path: Path) -> None:
    """A window served 3:1 by v1 and v2 (a canary): each version's realised accuracy on
    its own rows; drift and estimates labelled with v1, which served most rows."""
    reference = save_reference(tmp_path / "reference.profile")
    traffic = Traffic(tmp_path / "logs")
    traffic.send(BASE, HOUR / 2, 30, feedback=True)
    traffic.send(BASE + HOUR / 2, HOUR / 2, 10, feedback=True, version=2)
    monitor(traffic, reference, BASE + HOUR + 10, every=HOUR).run()
    record = MonitorHistory(traffic.root, ENDPOINT).latest()
    assert record is not None and record["models"] == {"demo v1": 600, "demo v2": 200}
    got = scrape(MonitorResults(traffic.root, [ENDPOINT]))
    by_version = record["performance"]["by_version"]
    assert by_version["v1"]["accuracy"] != by_version["v2"]["accuracy"]
    for version in ("1", "2"):
        assert metric(got, "shipyard_model_metric", endpoint=ENDPOINT, version=version,
                      metric="accuracy", source="realised") == \
            by_version[f"v{version}"]["accuracy"]
    assert metric(got, "shipyard_model_metric", endpoint=ENDPOINT, version="1",
                  metric="accuracy", source="estimated") == \
        record["performance"]["estimated"]["accuracy"]
    assert metric(got, "shipyard_model_metric", endpoint=ENDPOINT, version="2",
                  metric="accuracy", source="estimated") is None
    assert metric(got, "shipyard_drift_share", endpoint=ENDPOINT, version="1") == \
        record["drift"]["drift_share"]
    assert [k for k in got if k[0] == "shipyard_drift_share"] == [
        ("shipyard_drift_share", frozenset({("endpoint", ENDPOINT), ("version", "1")}))]


def test_a_new_window_replaces_the_values_and_an_alert_resolves(
        stored: tuple[Traffic, dict[str, Any]], tmp_path: Path) -> None:
    traffic, _ = stored
    results = MonitorResults(traffic.root, [ENDPOINT])
    first = scrape(results)
    assert metric(first, "shipyard_drift_share", endpoint=ENDPOINT, version="1") == 0.25
    assert scrape(results) == first  # nothing changed: the same (cached) figures
    traffic.send(BASE + HOUR, HOUR, 50, feedback=True)  # no shift: drift resolves
    monitor(traffic, tmp_path / "reference.profile", BASE + 2 * HOUR + 10, every=HOUR,
            rules=RULES).run()
    newest = MonitorHistory(traffic.root, ENDPOINT).latest()
    assert newest is not None and newest["window"]["end_ts"] == BASE + 2 * HOUR
    got = scrape(results)
    at = {"endpoint": ENDPOINT, "version": "1"}
    assert metric(got, "shipyard_drift_share", **at) == newest["drift"]["drift_share"] < 0.25
    assert metric(got, "shipyard_monitor_window_end_timestamp_seconds", **at) == BASE + 2 * HOUR
    assert metric(got, "shipyard_alerts_firing", endpoint=ENDPOINT,
                  rule="drift_share > 0.2") == 0.0


def test_no_history_exports_no_series_and_zero_features_none(tmp_path: Path,
                                                            stored: tuple[Traffic, Any]) -> None:
    empty = scrape(MonitorResults(tmp_path / "nothing", ["other"]))
    assert not [k for k in empty if k[0].startswith("shipyard_")]
    none = scrape(MonitorResults(stored[0].root, [ENDPOINT], top_features=0))
    assert not [k for k in none if k[0].startswith("shipyard_feature_")]
    assert metric(none, "shipyard_drift_share", endpoint=ENDPOINT, version="1") == 0.25


def test_a_corrupt_alert_state_costs_only_the_alert_series(
        stored: tuple[Traffic, dict[str, Any]]) -> None:
    traffic, _ = stored
    MonitorHistory(traffic.root, ENDPOINT).state_path.write_text("{not json")
    got = scrape(MonitorResults(traffic.root, [ENDPOINT]))
    assert metric(got, "shipyard_drift_share", endpoint=ENDPOINT, version="1") == 0.25
    assert not [k for k in got if k[0] == "shipyard_alerts_firing"]


def test_every_worker_answers_the_same_monitor_values(
        stored: tuple[Traffic, dict[str, Any]], tmp_path: Path) -> None:
    """Two workers' /metrics (SharedMetrics): the stored results once, not summed."""
    traffic, _ = stored
    folder = tmp_path / "metrics"
    folder.mkdir()
    workers = []
    for pid in (os.getpid(), os.getppid()):  # two live processes
        results = MonitorResults(traffic.root, [ENDPOINT])
        registry = CollectorRegistry()
        registry.register(results)
        workers.append(SharedMetrics(registry, folder, pid=pid, shared=[results]))
    for worker in workers:
        worker.publish()
    for worker in workers:
        got = metric_samples(worker.render().decode())
        assert metric(got, "shipyard_drift_share", endpoint=ENDPOINT, version="1") == 0.25
        assert metric(got, "shipyard_alerts_firing", endpoint=ENDPOINT,
                      rule="drift_share > 0.2") == 1.0


def test_policy_weights_give_each_warm_version_its_share() -> None:
    assert policy_weights(Single("a")) == {"a": 1.0}
    assert policy_weights(Weighted.canary("a", "b", 30)) == {"a": 0.7, "b": 0.3}
    assert policy_weights(StickyAB("a", "b", 25)) == {"a": 0.75, "b": 0.25}
    assert policy_weights(Shadow("a", "b")) == {"a": 1.0, "b": 0.0}
    assert policy_weights(BlueGreen("a", "b", "green")) == {"a": 0.0, "b": 1.0}


@pytest.mark.parametrize("bad", [-1, 2.5, True, "20"])
def test_metrics_top_features_must_be_a_whole_number(bad: Any) -> None:
    with pytest.raises(ConfigError, match="metrics_top_features"):
        ServeConfig(endpoints=(EndpointConfig(name="a", model="x"),), metrics_top_features=bad)


def test_recent_reads_the_newest_windows_from_the_tail_of_a_long_history(
        stored: tuple[Traffic, dict[str, Any]]) -> None:
    traffic, record = stored
    history = MonitorHistory(traffic.root, ENDPOINT)
    older = [{**record, "key": f"old{i}", "window": {**record["window"], "end_ts": i,
                                                     "start_ts": i - 1}}
             for i in range(200)]
    lines = history.path.read_text().splitlines()
    history.path.write_text("".join(f"{json.dumps(r)}\n" for r in older)
                            + "".join(f"{line}\n" for line in lines))
    size = history.path.stat().st_size
    recent = history.recent(max_bytes=size // 10)
    assert 0 < len(recent) < 30 and recent[-1] == record == history.latest()
    assert history.recent(max_bytes=size)[0]["key"] == "old0"
    got = scrape(MonitorResults(traffic.root, [ENDPOINT]))
    assert metric(got, "shipyard_drift_share", endpoint=ENDPOINT, version="1") == 0.25
