"""The monitor end to end over a real prediction log (written by ``PredictionLog``): windows,
feedback join, drift verdicts, history, alerts through a webhook, the scheduler, config."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import ShipyardError
from shipyard.profiles import profile
from shipyard.service.config import ConfigError, MonitorConfig, ServeConfig, parse_duration
from shipyard.service.monitor import Monitor
from shipyard.service.monitor_history import MonitorHistory
from shipyard.service.monitor_scheduler import MonitorScheduler
from shipyard.service.windows import Window, time_windows
from shipyard.stores.predictions import FeedbackRecord, PredictionLog, PredictionRecord

HOUR = 3600.0
BASE = 1_700_000_000 - 1_700_000_000 % 3600  # an hour boundary
ENDPOINT = "demo"
CLASSES = [0, 1]


# -- a synthetic model and its traffic -----------------------------------------------------

def make_rows(n: int, rng: np.random.Generator, *, shift: float = 0.0,
              ) -> dict[str, np.ndarray]:
    return {"x0": rng.normal(shift, 1.0, n), "x1": rng.normal(0.0, 1.0, n),
            "x2": rng.normal(5.0, 2.0, n),
            "city": rng.choice(np.array(["paris", "lyon", "nice"], dtype=object), n,
                               p=[0.5, 0.3, 0.2])}


def predict(rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A fixed 'model': P(1) = sigmoid(x0 + x1), label = arg-max."""
    p1 = 1.0 / (1.0 + np.exp(-(rows["x0"] + rows["x1"])))
    proba = np.column_stack([1.0 - p1, p1])
    return proba.argmax(axis=1).astype(np.int64), proba


def truth(rows: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    _, proba = predict(rows)
    return (rng.random(len(proba)) < proba[:, 1]).astype(np.int64)


def save_reference(path: Path, rows: int = 4000, seed: int = 0) -> Path:
    """The reference profile a package would ship: inputs, outputs and the target."""
    rng = np.random.default_rng(seed)
    data = make_rows(rows, rng)
    labels, proba = predict(data)
    frame = {**data, "prediction": labels, "proba.0": proba[:, 0], "proba.1": proba[:, 1],
             "target": truth(data, rng)}
    profile(frame).save(path)
    return path


@dataclass
class Traffic:
    """Writes requests (and feedback) to a prediction log, remembering what it sent."""

    root: Path
    seed: int = 1
    requests: list[tuple[str, float, int]] = field(default_factory=list)  # id, ts, rows
    _log: PredictionLog | None = None

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._log = PredictionLog(self.root)
        self.counter = 0

    def send(self, start: float, seconds: float, requests: int, rows: int = 20, *,
             shift: float = 0.0, feedback: bool = False, version: int = 1,
             latency_ms: float = 5.0) -> None:
        assert self._log is not None
        for i in range(requests):
            ts = start + seconds * (i + 0.5) / requests
            data = make_rows(rows, self.rng, shift=shift)
            labels, proba = predict(data)
            self.counter += 1
            request_id = f"r{self.counter}"
            self._log.append(PredictionRecord(
                request_id, ts, ENDPOINT, "demo", version, latency_ms, None, data,
                {"label": labels, "probabilities": proba}, CLASSES))
            self.requests.append((request_id, ts, rows))
            if feedback:
                self._log.append(FeedbackRecord(request_id, ts + 1.0, ENDPOINT,
                                                truth(data, self.rng).tolist()))
        self._log.flush()


@pytest.fixture
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_reference(tmp_path_factory.mktemp("ref") / "reference.profile")


@pytest.fixture
def traffic(tmp_path: Path) -> Traffic:
    return Traffic(tmp_path / "logs")


def monitor(traffic: Traffic, reference: Path, now: float, **config: Any) -> Monitor:
    return Monitor(ENDPOINT, traffic.root, MonitorConfig(reference=str(reference), **config),
                   clock=lambda: now)


# -- windows -------------------------------------------------------------------------------

def test_time_windows_are_epoch_aligned_tumbling_or_sliding() -> None:
    tumbling = time_windows(window=HOUR, every=HOUR, first=BASE + 10, now=BASE + 3 * HOUR + 5)
    assert [(w.start - BASE, w.end - BASE, w.complete) for w in tumbling] == [
        (0, HOUR, True), (HOUR, 2 * HOUR, True), (2 * HOUR, 3 * HOUR, True),
        (3 * HOUR, 4 * HOUR, False)]
    sliding = time_windows(window=HOUR, every=HOUR / 2, first=BASE + 10, now=BASE + 2 * HOUR,
                           partial=False)
    assert [(w.start - BASE, w.end - BASE) for w in sliding] == [
        (-HOUR / 2, HOUR / 2), (0, HOUR), (HOUR / 2, 1.5 * HOUR), (HOUR, 2 * HOUR)]
    assert [w.end for w in time_windows(window=HOUR, every=HOUR, first=BASE, now=BASE + 10 * HOUR,
                                        partial=False, max_windows=2)] == [
        BASE + 9 * HOUR, BASE + 10 * HOUR]
    assert Window(BASE, BASE + HOUR).key == "time:2023-11-14T22:00:00Z/2023-11-14T23:00:00Z"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600),
                                               ("1d", 86400), ("1.5h", 5400), (90, 90)])
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "0s", "1y", "soon", True])
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ConfigError, match=r"duration|positive"):
        parse_duration(text)


def test_windows_cut_the_log_tumbling_sliding_and_last_n(traffic: Traffic,
                                                         reference: Path) -> None:
    for hour, requests in enumerate((10, 20, 30)):
        traffic.send(BASE + hour * HOUR, HOUR, requests)
    now = BASE + 3 * HOUR + 60
    tumbling = monitor(traffic, reference, now).run(window=HOUR, partial=False)
    assert [r["rows"] for r in tumbling.records] == [200, 400, 600]
    assert [r["requests"] for r in tumbling.records] == [10, 20, 30]

    sliding = monitor(traffic, reference, now).run(window=HOUR, every=HOUR / 2,
                                                   since=BASE, partial=False)
    assert [r["rows"] for r in sliding.records] == [100, 200, 300, 400, 500, 600]

    last = monitor(traffic, reference, now).run(last=250)
    (record,) = last.records
    assert record["rows"] == 250 and record["window"]["kind"] == "rows"
    assert record["window"]["end_ts"] == pytest.approx(traffic.requests[-1][1], abs=1e-3)


def test_feedback_joins_by_request_id_and_row(traffic: Traffic, reference: Path) -> None:
    traffic.send(BASE, HOUR, 30, feedback=True)
    traffic.send(BASE + HOUR, HOUR, 30, feedback=False)
    run = monitor(traffic, reference, BASE + 2 * HOUR + 1).run(window=HOUR, partial=False)
    labelled, unlabelled = run.records
    assert labelled["labelled"] == 600 and unlabelled["labelled"] == 0
    realised = labelled["performance"]["realised"]
    assert realised["rows"] == 600 and 0.6 < realised["accuracy"] < 0.9
    assert labelled["metrics"]["accuracy"] == realised["accuracy"]
    # the estimate sits beside the realised number, and close to it (no concept drift)
    assert abs(labelled["metrics"]["estimated_accuracy"] - realised["accuracy"]) < 0.06
    assert "accuracy" not in unlabelled["metrics"]
    assert unlabelled["metrics"]["estimated_accuracy"] is not None


def test_feedback_lands_on_its_row_and_the_newest_replacement_wins(tmp_path: Path) -> None:
    from shipyard.service.windows import LogFrames

    log = PredictionLog(tmp_path)
    for n, request_id in enumerate(("a", "b", "c")):
        rows = make_rows(4, np.random.default_rng(n))
        labels, proba = predict(rows)
        log.append(PredictionRecord(request_id, BASE + n, ENDPOINT, "demo", 1, 1.0, None, rows,
                                    {"label": labels, "probabilities": proba}, CLASSES))
    log.append(FeedbackRecord("b", BASE + 10, ENDPOINT, [20, 21, 22, 23]))
    log.append(FeedbackRecord("a", BASE + 11, ENDPOINT, [10, 11, 12, 13]))
    log.flush()
    log.append(FeedbackRecord("a", BASE + 12, ENDPOINT, [10, 11, 12, 98], replace=True))
    log.append(FeedbackRecord("a", BASE + 13, ENDPOINT, [10, 11, 12, 99], replace=True))
    # a second label that does not say it replaces the first (two workers raced) is ignored
    log.append(FeedbackRecord("b", BASE + 14, ENDPOINT, [0, 0, 0, 0]))
    log.close()
    frames = LogFrames(tmp_path, ENDPOINT)
    data = frames.data(Window(BASE, BASE + HOUR))
    assert data.frame["target"].tolist()[:8] == [10, 11, 12, 99, 20, 21, 22, 23]
    assert np.isnan(data.frame["target"][8:]).all() and data.labelled == 8
    assert sorted(data.frame) == ["city", "prediction", "proba.0", "proba.1", "target", "x0",
                                  "x1", "x2"]


def test_drifted_traffic_is_flagged_and_same_distribution_is_not(
        traffic: Traffic, reference: Path) -> None:
    traffic.send(BASE, HOUR, 50, shift=0.0)
    traffic.send(BASE + HOUR, HOUR, 50, shift=0.8)
    run = monitor(traffic, reference, BASE + 2 * HOUR + 1).run(window=HOUR, partial=False)
    same, shifted = run.records
    assert same["metrics"]["drifted_columns"] == 0
    assert same["metrics"]["dataset_drift"] == 0.0
    assert shifted["metrics"]["drifted(x0)"] == 1.0
    assert shifted["metrics"]["drifted(x1)"] == 0.0
    assert shifted["drift"]["columns"]["x0"]["method"]
    assert shifted["metrics"]["prediction_drift"] == 1.0  # x0 moves the predictions too
    assert same["metrics"]["prediction_drift"] == 0.0
    assert same["metrics"]["quality_issues"] == 0
    assert same["metrics"]["p99_latency_ms"] == pytest.approx(5.0)


def test_history_appends_and_reruns_are_idempotent(traffic: Traffic, reference: Path) -> None:
    traffic.send(BASE, 2 * HOUR, 40)
    first = monitor(traffic, reference, BASE + 2 * HOUR + 1).run(window=HOUR, partial=False)
    assert first.stored == 2
    history = MonitorHistory(traffic.root, ENDPOINT)
    lines = history.path.read_text().splitlines()
    again = monitor(traffic, reference, BASE + 2 * HOUR + 1).run(window=HOUR, since=BASE,
                                                                 partial=False)
    assert again.stored == 0 and len(again.records) == 2
    assert history.path.read_text().splitlines() == lines
    # nothing new: the run recomputes the newest window instead of showing nothing
    resumed = monitor(traffic, reference, BASE + 2 * HOUR + 1).run(window=HOUR, partial=False)
    assert [r["key"] for r in resumed.records] == [first.records[-1]["key"]]
    assert resumed.stored == 0
    # the in-progress window is shown, not stored; once closed it appends one line
    traffic.send(BASE + 2 * HOUR, HOUR / 2, 10)
    partial = monitor(traffic, reference, BASE + 2.5 * HOUR).run(window=HOUR)
    assert partial.records[-1]["window"]["complete"] is False
    assert partial.records[-1]["rows"] == 200 and len(history.records()) == 2
    closed = monitor(traffic, reference, BASE + 3 * HOUR + 1).run(window=HOUR, partial=False)
    assert closed.records[-1]["window"]["complete"] is True
    records = history.records()
    assert [r["window"]["end_ts"] - BASE for r in records] == [HOUR, 2 * HOUR, 3 * HOUR]
    assert len({r["key"] for r in records}) == 3
    assert all(r["window"]["complete"] for r in records)


def test_late_feedback_replaces_the_stored_window(traffic: Traffic, reference: Path) -> None:
    traffic.send(BASE, HOUR, 20)
    monitor(traffic, reference, BASE + HOUR + 1).run(window=HOUR, partial=False)
    history = MonitorHistory(traffic.root, ENDPOINT)
    assert history.records()[0]["labelled"] == 0
    log = PredictionLog(traffic.root)
    for request_id, ts, rows in traffic.requests:
        log.append(FeedbackRecord(request_id, ts + HOUR, ENDPOINT, [1] * rows))
    log.close()
    rerun = monitor(traffic, reference, BASE + 2 * HOUR + 1).run(window=HOUR, since=BASE,
                                                                 partial=False)
    assert rerun.stored >= 1
    (first,) = [r for r in history.records() if r["window"]["end_ts"] == BASE + HOUR]
    assert first["labelled"] == 400
    assert len(history.path.read_text().splitlines()) == len(history.records())


def test_small_and_empty_windows_are_recorded_not_analysed(traffic: Traffic,
                                                           reference: Path) -> None:
    traffic.send(BASE, 60, 1, rows=5)
    run = monitor(traffic, reference, BASE + 2 * HOUR + 1).run(window=HOUR, partial=False)
    small, empty = run.records
    assert "min_rows" in small["skipped"] and "drift" not in small
    assert empty["rows"] == 0 and empty["skipped"] == "no rows"
    assert empty["metrics"]["rows"] == 0


def test_per_version_performance(traffic: Traffic, reference: Path) -> None:
    traffic.send(BASE, HOUR / 2, 20, feedback=True, version=1)
    traffic.send(BASE + HOUR / 2, HOUR / 2, 20, feedback=True, version=2)
    (record,) = monitor(traffic, reference, BASE + HOUR + 1).run(window=HOUR,
                                                                partial=False).records
    assert record["models"] == {"demo v1": 400, "demo v2": 400}
    by_version = record["performance"]["by_version"]
    assert set(by_version) == {"v1", "v2"}
    assert by_version["v1"]["rows"] == 400
    assert record["metrics"]["accuracy(v2)"] == by_version["v2"]["accuracy"]


def test_missing_reference_is_a_clear_error(traffic: Traffic, tmp_path: Path) -> None:
    traffic.send(BASE, HOUR, 10)
    settings_home = tmp_path / "home"
    from shipyard.settings import Settings

    bare = Monitor(ENDPOINT, traffic.root, clock=lambda: BASE + HOUR + 1,
                   settings=Settings.from_env({"SHIPYARD_HOME": str(settings_home)}))
    with pytest.raises(ShipyardError, match="--reference"):
        bare.run(window=HOUR, partial=False)
    with pytest.raises(ShipyardError, match="no predictions logged"):
        Monitor("nobody", traffic.root).run()


# -- alerts --------------------------------------------------------------------------------

@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", got)
    finally:
        server.shutdown()
        server.server_close()


def test_alert_fires_once_and_resolves_once_across_runs(traffic: Traffic, reference: Path,
                                                        receiver: Receiver) -> None:
    rules = ("drift_share > 0.2", "p99_latency_ms > 100")
    settings = {"rules": rules, "webhooks": (receiver.url,)}
    traffic.send(BASE, HOUR, 40)
    traffic.send(BASE + HOUR, HOUR, 40, shift=1.5)
    traffic.send(BASE + 2 * HOUR, HOUR, 40, shift=1.5)
    first = monitor(traffic, reference, BASE + 3 * HOUR + 1, **settings).run(window=HOUR)
    assert [(e.state, e.rule) for e in first.events] == [("firing", "drift_share > 0.2")]
    assert first.delivery.delivered == 1
    # a new process, same windows and one more drifted: no second firing
    traffic.send(BASE + 3 * HOUR, HOUR, 40, shift=1.5)
    second = monitor(traffic, reference, BASE + 4 * HOUR + 1, **settings).run(window=HOUR)
    assert second.events == []
    rerun = monitor(traffic, reference, BASE + 4 * HOUR + 1, **settings).run(
        window=HOUR, since=BASE)
    assert rerun.events == [] and rerun.stored == 0
    # the drift goes away: resolved, once
    traffic.send(BASE + 4 * HOUR, HOUR, 40)
    third = monitor(traffic, reference, BASE + 5 * HOUR + 1, **settings).run(window=HOUR)
    assert [(e.state, e.rule) for e in third.events] == [("resolved", "drift_share > 0.2")]
    monitor(traffic, reference, BASE + 5 * HOUR + 1, **settings).run(window=HOUR)
    assert [(b["state"], b["rule"]) for b in receiver.bodies] == [
        ("firing", "drift_share > 0.2"), ("resolved", "drift_share > 0.2")]
    state = MonitorHistory(traffic.root, ENDPOINT).load_state()
    assert state is not None and state["firing"] == {}
    assert [e["state"] for e in state["events"]] == ["firing", "resolved"]
    history = MonitorHistory(traffic.root, ENDPOINT).records()
    fired = [r for r in history if r["alerts"]]
    assert [r["window"]["end_ts"] - BASE for r in fired] == [2 * HOUR, 5 * HOUR]


def test_column_rules_read_quality_metrics(traffic: Traffic, reference: Path) -> None:
    traffic.send(BASE, HOUR, 40)
    run = monitor(traffic, reference, BASE + HOUR + 1,
                  rules=("missing_share(x0) > 0.1", "drifted(x0) >= 1")).run(
        window=HOUR, partial=False)
    (record,) = run.records
    assert record["metrics"]["missing_share(x0)"] == 0.0
    assert run.events == []


# -- scheduler -----------------------------------------------------------------------------

def test_scheduler_runs_due_windows_and_stops_promptly(traffic: Traffic,
                                                       reference: Path) -> None:
    traffic.send(BASE, 2 * HOUR, 20)
    clock = [BASE + 2 * HOUR + 10]
    config = MonitorConfig(every=HOUR, reference=str(reference))
    watched = Monitor(ENDPOINT, traffic.root, config, clock=lambda: clock[0])
    scheduler = MonitorScheduler([watched], settle_s=5, clock=lambda: clock[0])
    (run,) = scheduler.run_due()
    assert [r["window"]["end_ts"] - BASE for r in run.records] == [HOUR, 2 * HOUR]
    assert scheduler.run_due() == []  # not due before the next window closes (+ settle)
    clock[0] = BASE + 3 * HOUR + 6
    (later,) = scheduler.run_due()
    assert [r["window"]["end_ts"] - BASE for r in later.records] == [3 * HOUR]

    started = time.monotonic()
    scheduler.start()
    assert scheduler.running
    scheduler.stop()
    assert not scheduler.running and time.monotonic() - started < 5


def test_scheduler_survives_a_failing_monitor(traffic: Traffic, reference: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    traffic.send(BASE, HOUR, 20)
    now = BASE + HOUR + 10
    missing = str(reference.parent / "no-such-reference.bin")
    broken = Monitor(ENDPOINT, traffic.root, MonitorConfig(every=HOUR, reference=missing),
                     clock=lambda: now)
    scheduler = MonitorScheduler([broken], clock=lambda: now)
    assert scheduler.run_due() == []
    assert scheduler.failures == 1 and "no-such-reference" in caplog.text

    # an endpoint with nothing logged yet (a fresh server) is waiting, not failing: one
    # info line, no traceback, and the monitors beside it run
    caplog.clear()
    caplog.set_level(logging.INFO, logger="shipyard.service.monitor_scheduler")
    idle = Monitor("nobody", traffic.root, MonitorConfig(every=HOUR), clock=lambda: now)
    fine = Monitor(ENDPOINT, traffic.root, MonitorConfig(every=HOUR, reference=str(reference)),
                   clock=lambda: now)
    clock = [now]
    scheduler = MonitorScheduler([idle, fine], clock=lambda: clock[0])
    runs = scheduler.run_due()
    assert [r.endpoint for r in runs] == [ENDPOINT]
    clock[0] += HOUR
    scheduler.run_due()
    assert scheduler.failures == 0
    assert caplog.text.count("nobody: nothing logged yet") == 1
    assert "Traceback" not in caplog.text


def test_a_held_lock_makes_a_scheduled_run_skip(traffic: Traffic, reference: Path) -> None:
    traffic.send(BASE, HOUR, 20)
    watched = monitor(traffic, reference, BASE + HOUR + 1)
    with watched.history.lock():
        assert watched.run(wait=False).busy


def test_scheduler_from_serve_config(tmp_path: Path, reference: Path) -> None:
    config = ServeConfig.from_dict({
        "log_dir": str(tmp_path / "logs"),
        "monitor": {"every": "15m", "window": "1h", "rules": ["drift_share > 0.3"]},
        "endpoints": [{"name": "a", "model": "/pkgs/a"},
                      {"name": "b", "model": "/pkgs/b", "monitor": {"enabled": False}},
                      {"name": "c", "model": "/pkgs/c",
                       "monitor": {"reference": str(reference), "every": "1h"}}]})
    scheduler = MonitorScheduler.from_config(config)
    assert scheduler is not None
    assert [(m.endpoint, m.config.every, m.config.window_s) for m in scheduler.monitors] == [
        ("a", 900, 3600), ("c", 3600, 3600)]
    assert scheduler.monitors[1].config.rules == ("drift_share > 0.3",)
    bare = ServeConfig.from_dict({"endpoints": [{"model": "/pkgs/a"}]})
    assert MonitorScheduler.from_config(bare) is None


# -- config --------------------------------------------------------------------------------

def test_monitor_config_round_trips() -> None:
    config = ServeConfig.from_dict({
        "monitor": {"every": "15m", "window": "1h", "webhooks": ["http://127.0.0.1:9/x"],
                    "on_alert": ["echo", "hi"], "methods": {"x0": "psi"},
                    "rules": ["accuracy < 0.8", {"name": "slow", "rule": "p99_latency_ms > 1"}]},
        "endpoints": [{"model": "/pkgs/a", "monitor": {"last": 500}}]})
    assert ServeConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    own = config.monitor_for("a")
    assert own is not None and own.last == 500 and own.every == 900  # merged over the global


@pytest.mark.parametrize(("monitor", "message"), [
    ({"every": "soon"}, "monitor.every must be a duration"),
    ({"every": "1h", "window": "15m"}, "must be at least monitor.every"),
    ({"last": 0}, "monitor.last"),
    ({"min_rows": -1}, "monitor.min_rows"),
    ({"rules": ["drift_share >> 0.3"]}, "monitor.rules"),
    ({"rules": "accuracy <"}, "monitor.rules"),
    ({"webhooks": ["ftp://x"]}, "monitor.webhooks"),
    ({"on_alert": ""}, "monitor.on_alert"),
    ({"bogus": 1}, "unknown monitor settings ['bogus']"),
    ({"methods": ["psi"]}, "monitor.methods"),
    ("hourly", "monitor must be a mapping"),
])
def test_invalid_monitor_sections(monitor: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        ServeConfig.from_dict({"monitor": monitor, "endpoints": [{"model": "/pkgs/a"}]})
    assert message in str(error.value)
    if isinstance(monitor, dict):
        with pytest.raises(ConfigError, match="endpoint a: "):
            ServeConfig.from_dict({"endpoints": [{"model": "/pkgs/a", "monitor": monitor}]})


# -- the package's own reference -----------------------------------------------------------

def test_default_reference_is_the_profile_the_package_ships(tmp_path: Path) -> None:
    """An endpoint served from a package directory: the monitor reads that package's
    profile.bin, whose column names match the log's (inputs, prediction, proba.C, target)."""
    from sklearn.linear_model import LogisticRegression

    import shipyard

    rng = np.random.default_rng(3)
    train = {k: v for k, v in make_rows(2000, rng).items() if k != "city"}
    y = truth(train, rng)
    frame = pd.DataFrame(train)
    model = LogisticRegression().fit(frame, y)
    package = tmp_path / "pkg"
    shipyard.package(model, frame, target=y, name="demo").save(package)
    loaded = shipyard.load(package)
    log = PredictionLog(tmp_path / "logs")
    for i in range(20):
        rows = {k: v for k, v in make_rows(50, rng, shift=1.0 if i >= 10 else 0.0).items()
                if k != "city"}
        answer = loaded.predict(rows)
        log.append(PredictionRecord(f"q{i}", BASE + i * 60, ENDPOINT, "pkg", 1, 2.0, None,
                                    rows, {"label": answer.predictions,
                                           "probabilities": answer.probabilities},
                                    answer.classes))
    log.close()
    watched = Monitor(ENDPOINT, tmp_path / "logs", model_source=str(package),
                      clock=lambda: BASE + HOUR)
    (record,) = watched.run(last=500).records
    assert record["reference"]["source"] == str(package)
    assert set(record["drift"]["columns"]) == {"x0", "x1", "x2"}
    assert record["metrics"]["drifted(x0)"] == 1.0 and record["metrics"]["drifted(x2)"] == 0.0
    assert set(record["output_drift"]["columns"]) == {"prediction", "proba.0", "proba.1"}
    assert record["performance"]["estimated"]["calibrated"] is True
