"""Alert rules name metrics the monitor writes, for the model's task, and the state of rules
that were removed is forgotten rather than shown firing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitoring.test_monitor_service import (
    BASE,
    ENDPOINT,
    HOUR,
    Traffic,
    make_rows,
    save_reference,
    truth,
)
from shipyard.cli.main import app
from shipyard.service.config import ConfigError, MonitorConfig, ServeConfig
from shipyard.service.monitor import Monitor
from shipyard.service.monitor_scheduler import MonitorScheduler
from shipyard.stores.predictions import FeedbackRecord, PredictionLog, PredictionRecord

runner = CliRunner()


def _serve(monitor: dict[str, Any], model: str = "/pkgs/a") -> ServeConfig:
    return ServeConfig.from_dict({"monitor": monitor, "endpoints": [{"name": "a",
                                                                      "model": model}]})


@pytest.mark.parametrize(("rule", "message"), [
    ("mean_absolute_error > 300", "unknown metric 'mean_absolute_error'"),
    ("acuracy < 0.8", "unknown metric 'acuracy' (did you mean accuracy?)"),
    ("drifted > 0", "drifted is per input column; write drifted(COLUMN)"),
    ("drift_share(x0) > 0.3", "drift_share takes no column"),
    ("accuracy(fast) < 0.8", "takes a model version such as accuracy(v2)"),
])
def test_a_rule_naming_no_metric_is_refused_when_the_config_loads(rule: str,
                                                                  message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _serve({"rules": [rule]})
    assert message in str(error.value)
    if "unknown" in message:  # the valid names are listed
        assert "mae, rmse, r2" in str(error.value)
        assert "missing_share(COLUMN)" in str(error.value)


def test_every_metric_the_rules_may_name_parses() -> None:
    from shipyard.monitoring.alert_metrics import SLICED, metric_names

    rules = [f"{n}(x0) > 0" if n in ("drifted", "missing_share", "out_of_range_share",
                                     "new_category_share") or n.startswith("worst_slice_")
             else f"{n} > 0" for n in metric_names()]
    sliced = [f"{n}(slice=x0:[0.5, 1.2)) > 0" for n in SLICED]
    assert _serve({"rules": [*rules, *sliced, "accuracy(v2) < 0.8", "mae(v1) > 3"],
                   "slices": ["x0"]}).monitor


def test_the_metric_list_matches_what_the_monitor_writes(tmp_path: Path) -> None:
    """Every key of a classifier's and a regressor's window metrics is a name rules accept
    for that task, so the list cannot fall behind the monitor."""
    from shipyard.monitoring.alert_metrics import SLICED, metric_names

    reference = save_reference(tmp_path / "ref.profile")
    traffic = Traffic(tmp_path / "logs")
    traffic.send(BASE, HOUR, 20, feedback=True, shift=1.0)
    traffic.send(BASE, HOUR, 10, feedback=True, version=2)
    (record,) = Monitor(ENDPOINT, traffic.root, MonitorConfig(
        reference=str(reference), slices=("city", "x2")), clock=lambda: BASE + HOUR).run(
        last=1000).records
    written = {key.split("(")[0] for key in record["metrics"]}
    assert {"accuracy", "estimated_accuracy", "concept_drift", "drifted",
            "missing_share", "worst_slice_accuracy", "worst_slice_f1"} <= written
    assert written <= set(metric_names("classification"))
    sliced = {key.split("(")[0] for key in record["metrics"] if "(slice=" in key}
    assert sliced == set(SLICED) - {"mae", "rmse"}

    _, regression = _regression_window(tmp_path / "reg")
    keys = {key.split("(")[0] for key in regression["metrics"]}
    assert {"mae", "rmse", "r2", "drift_share", "worst_slice_mae"} <= keys <= set(
        metric_names("regression"))
    sliced = {key.split("(")[0] for key in regression["metrics"] if "(slice=" in key}
    assert sliced == {"mae", "rmse"}


def _regression_window(root: Path) -> tuple[Path, dict[str, Any]]:
    rng = np.random.default_rng(2)
    data = {k: v for k, v in make_rows(800, rng).items() if k != "city"}
    from shipyard.profiles import profile

    root.mkdir(parents=True)
    profile({**data, "prediction": data["x0"] * 2, "target": data["x0"] * 2 + 0.1}).save(
        root / "ref.profile")
    log = PredictionLog(root / "logs")
    for i in range(20):
        rows = {k: v for k, v in make_rows(30, rng).items() if k != "city"}
        log.append(PredictionRecord(f"q{i}", BASE + i, ENDPOINT, "price", 1, 2.0, None, rows,
                                    {"value": rows["x0"] * 2}))
        log.append(FeedbackRecord(f"q{i}", BASE + i + 1, ENDPOINT, (rows["x0"] * 2).tolist()))
    log.close()
    (record,) = Monitor(ENDPOINT, root / "logs", MonitorConfig(
        reference=str(root / "ref.profile"), slices=("x1",)), clock=lambda: BASE + HOUR).run(
        last=1000).records
    return root, record


# -- the model's task ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A regressor's and a classifier's package directories."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    import shipyard

    root = tmp_path_factory.mktemp("packages")
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({k: v for k, v in make_rows(600, rng).items() if k != "city"})
    y = truth(frame.to_dict("series"), rng)  # type: ignore[arg-type]
    out = {}
    for name, model, target in (
            ("price", LinearRegression().fit(frame, frame["x0"] * 3 + 1), frame["x0"] * 3 + 1),
            ("demo", LogisticRegression().fit(frame, y), y)):
        out[name] = shipyard.package(model, frame, target=target, name=name).save(root / name)
    return out


@pytest.mark.parametrize(("kind", "rule", "valid"), [
    ("price", "accuracy < 0.8", "valid metrics for regression:"),
    ("price", "estimated_f1 < 0.8", "valid metrics for regression:"),
    ("demo", "mae > 300", "valid metrics for classification:"),
])
def test_a_rule_for_another_task_fails_serve_before_serving(
        packages: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        kind: str, rule: str, valid: str) -> None:
    started: list[Any] = []
    monkeypatch.setattr("shipyard.server.run.serve", lambda *a, **k: started.append(a))
    config = tmp_path / "serve.yaml"
    config.write_text(f"endpoints:\n  - name: a\n    model: {packages[kind]}\n"
                      f"    monitor:\n      rules: ['{rule}', 'drift_share > 0.3']\n")
    result = runner.invoke(app, ["serve", "--config", str(config)])
    assert started == [], "the server started"
    assert isinstance(result.exception, ConfigError), result.output
    message = str(result.exception)
    assert f"alert rule '{rule}'" in message and "does not apply to endpoint a" in message
    assert valid in message and ("mae, rmse, r2" in message) == (kind == "price")
    assert ("accuracy, precision" in message) == (kind == "demo")
    with pytest.raises(ConfigError):  # a server built without the CLI refuses it too
        MonitorScheduler.from_config(ServeConfig.from_file(config))


def test_rules_that_apply_to_the_task_serve(packages: dict[str, Path]) -> None:
    from shipyard.service.monitor_rules import check_serve_rules

    check_serve_rules(_serve({"rules": ["mae > 300", "drift_share > 0.3"]},
                             str(packages["price"])))
    check_serve_rules(_serve({"rules": ["accuracy < 0.8", "concept_drift >= 1"]},
                             str(packages["demo"])))


def test_monitor_run_refuses_a_rule_for_another_task_before_any_window(
        packages: dict[str, Path], tmp_path: Path) -> None:
    _, _ = _regression_window(tmp_path / "reg")
    config = MonitorConfig(reference=str(packages["price"]), rules=("accuracy < 0.8",))
    watched = Monitor(ENDPOINT, tmp_path / "reg" / "logs", config,
                      clock=lambda: BASE + 2 * HOUR)
    before = watched.history.records()
    with pytest.raises(ConfigError, match="accuracy does not apply to price v1"):
        watched.run(window=600.0)
    assert watched.history.records() == before  # nothing computed, nothing stored
    assert Monitor(ENDPOINT, tmp_path / "reg" / "logs", MonitorConfig(
        reference=str(packages["price"]), rules=("mae > 1",)),
        clock=lambda: BASE + 2 * HOUR).run(window=600.0).records


# -- state of removed rules ----------------------------------------------------------------

def test_state_of_a_removed_rule_is_dropped_not_shown_firing(tmp_path: Path) -> None:
    reference = save_reference(tmp_path / "ref.profile")
    traffic = Traffic(tmp_path / "logs")
    traffic.send(BASE, HOUR, 20, shift=1.0)
    traffic.send(BASE + HOUR, HOUR, 20, shift=1.0)

    def run(rules: tuple[str, ...], now: float) -> Monitor:
        watched = Monitor(ENDPOINT, traffic.root, MonitorConfig(
            reference=str(reference), every=HOUR, rules=rules), clock=lambda: now)
        watched.run()
        return watched

    first = run(("drifted(x0) > 0.5", "rows < 1"), BASE + HOUR + 1)
    assert list((first.history.load_state() or {})["firing"]) == ["drifted(x0) > 0.5"]

    for rules in (("rows < 1",), ()):
        state = run(rules, BASE + 2 * HOUR + 1).history.load_state() or {}
        assert state["firing"] == {}
        assert "drifted(x0) > 0.5" not in state.get("evaluator", {}).get("rules", {})
        status = json.loads(runner.invoke(app, ["monitor", "status", ENDPOINT, "--log-dir",
                                                str(traffic.root), "--json"]).output)
        assert status["alerts"]["firing"] == {}
        text = runner.invoke(app, ["monitor", "status", ENDPOINT, "--log-dir",
                                   str(traffic.root)]).output
        assert "FIRING" not in text

    # re-added, the rule starts afresh: it fires again rather than being silently "on"
    again = Monitor(ENDPOINT, traffic.root, MonitorConfig(
        reference=str(reference), every=HOUR, rules=("drifted(x0) > 0.5",)),
        clock=lambda: BASE + 3 * HOUR + 1)
    traffic.send(BASE + 2 * HOUR, HOUR, 20, shift=1.0)
    assert [(e.state, e.rule) for e in again.run().events] == [("firing", "drifted(x0) > 0.5")]


def test_status_ignores_firing_rules_an_old_state_file_still_lists(tmp_path: Path) -> None:
    reference = save_reference(tmp_path / "ref.profile")
    traffic = Traffic(tmp_path / "logs")
    traffic.send(BASE, HOUR, 20)
    watched = Monitor(ENDPOINT, traffic.root, MonitorConfig(reference=str(reference),
                                                            every=HOUR),
                      clock=lambda: BASE + HOUR + 1)
    watched.run()
    event = {"rule": "gone > 1", "state": "firing", "started_at": "2023-11-14T23:00:00Z",
             "value": 2.0}
    watched.history.save_state({"format": 1, "rules": ["rows > 1"],
                                "firing": {"gone > 1": event}, "events": [event]})
    out = runner.invoke(app, ["monitor", "status", ENDPOINT, "--log-dir", str(traffic.root)])
    assert "FIRING" not in out.output and "none firing" in out.output
