"""What monitoring output says: the reference beside realised regression metrics, concept
drift named, the test that decided dataset drift, tables that fit 80 columns without cutting
a number, seconds in short windows, every endpoint in ``monitor status``, and rows chosen by
time range or offset."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from monitoring.test_monitor_service import (
    BASE,
    ENDPOINT,
    HOUR,
    Traffic,
    make_rows,
    save_reference,
)
from shipyard.cli.main import app
from shipyard.cli.monitor_view import show_run, show_status
from shipyard.profiles import profile
from shipyard.service.config import MonitorConfig
from shipyard.service.monitor import Monitor
from shipyard.stores.predictions import FeedbackRecord, PredictionLog, PredictionRecord

runner = CliRunner()


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def _render(draw: Any, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        draw(console)
    return captured.get()


# -- a regressor's traffic -----------------------------------------------------------------

def _price(rows: dict[str, np.ndarray]) -> np.ndarray:
    return 1000.0 + 300.0 * rows["x0"] + 50.0 * rows["x2"]


def _regression_reference(path: Path, rows: int = 1500) -> tuple[Path, dict[str, float]]:
    """The reference a regression package ships, and its MAE / RMSE / R² (every row is in
    the profile's sample, so the monitor sees exactly these)."""
    rng = np.random.default_rng(5)
    data = {k: v for k, v in make_rows(rows, rng).items() if k != "city"}
    prediction = _price(data)
    target = prediction + rng.normal(0.0, 40.0, rows)
    profile({**data, "prediction": prediction, "target": target}).save(path)
    error = target - prediction
    expected = {"mae": float(np.mean(np.abs(error))),
                "rmse": float(np.sqrt(np.mean(error**2))),
                "r2": float(1 - np.sum(error**2) / np.sum((target - target.mean()) ** 2))}
    return path, expected


def _regression_traffic(root: Path, *, noise: float = 120.0) -> None:
    rng = np.random.default_rng(6)
    log = PredictionLog(root)
    for i in range(30):
        data = {k: v for k, v in make_rows(40, rng).items() if k != "city"}
        prediction = _price(data)
        ts = BASE + i * (2 * HOUR / 30)
        log.append(PredictionRecord(f"q{i}", ts, ENDPOINT, "price", 1, 3.0, None, data,
                                    {"value": prediction}))
        log.append(FeedbackRecord(f"q{i}", ts + 1, ENDPOINT,
                                  (prediction + rng.normal(0.0, noise, 40)).tolist()))
    log.close()


def test_regression_performance_reads_against_the_reference(tmp_path: Path) -> None:
    reference, expected = _regression_reference(tmp_path / "ref.profile")
    _regression_traffic(tmp_path / "logs")
    watched = Monitor(ENDPOINT, tmp_path / "logs", MonitorConfig(reference=str(reference),
                                                                 every=HOUR),
                      clock=lambda: BASE + 2 * HOUR + 1)
    run = watched.run()
    first = run.records[0]["performance"]
    for name, value in expected.items():
        assert first["reference"][name] == pytest.approx(value, rel=1e-9)
    assert first["realised"]["mae"] > 2 * expected["mae"]  # noisier labels than the reference

    text = _render(lambda c: show_run(c, run), 80)
    (line,) = [ln for ln in text.splitlines() if re.match(r"reference +\d", ln)]
    assert line.split()[1:] == [f"{expected['mae']:.1f}", f"{expected['rmse']:.1f}",
                                f"{expected['r2']:.3g}"]
    header = next(ln for ln in text.splitlines() if ln.startswith("window (UTC)"))
    assert re.search(r"MAE +RMSE +R²", header), text  # the history shows them over time
    for record in run.records[:2]:  # the third is in progress, empty
        assert f"{record['metrics']['mae']:.1f}" in text
    assert f"reference: MAE {expected['mae']:.1f}" in " ".join(text.split())


def test_a_gap_between_realised_and_estimated_accuracy_is_named_concept_drift(
        tmp_path: Path) -> None:
    """Same inputs, outcomes that no longer follow the model's confidence: the estimate stays
    high while realised accuracy falls, and the output says what that suggests."""
    reference = save_reference(tmp_path / "ref.profile")
    traffic = Traffic(tmp_path / "logs")
    traffic.send(BASE, HOUR, 30, feedback=True)
    log = PredictionLog(traffic.root)
    rng = np.random.default_rng(9)
    for i in range(30):
        rows = make_rows(20, rng)
        from monitoring.test_monitor_service import predict

        labels, proba = predict(rows)
        log.append(PredictionRecord(f"c{i}", BASE + HOUR + i * 100, ENDPOINT, "demo", 1, 5.0,
                                    None, rows, {"label": labels, "probabilities": proba},
                                    [0, 1]))
        log.append(FeedbackRecord(f"c{i}", BASE + HOUR + i * 100 + 1, ENDPOINT,
                                  (1 - labels).tolist()))  # the concept flipped
    log.close()
    run = Monitor(ENDPOINT, traffic.root, MonitorConfig(reference=str(reference), every=HOUR),
                  clock=lambda: BASE + 2 * HOUR + 1).run()
    before, after = (r for r in run.records if r["rows"])
    assert before["performance"]["concept"]["suspected"] is False
    assert before["metrics"]["concept_drift"] == 0.0
    assert after["performance"]["concept"]["suspected"] is True
    assert after["metrics"]["concept_drift"] == 1.0
    assert after["metrics"]["accuracy_gap"] > 0.5
    assert after["metrics"]["drift_share"] == 0.0  # the inputs did not move
    text = " ".join(_render(lambda c: show_run(c, run), 80).split())
    assert "possible concept drift: realised accuracy 0 is" in text
    assert "below the label-free estimate" in text


@pytest.mark.parametrize(("drift", "says"), [
    ({"dataset_drift": True, "drift_share": 0.75, "share_threshold": 0.5,
      "multivariate": [{"method": "mmd", "drifted": False, "p_value": 0.4}]},
     "decided by drifted-column share 0.75 ≥ 0.5"),
    ({"dataset_drift": True, "drift_share": 0.25, "share_threshold": 0.5,
      "multivariate": [{"method": "mmd", "drifted": True, "p_value": 0.001}]},
     "decided by multivariate mmd (p 0.001)"),
    ({"dataset_drift": False, "drift_share": 0.25, "share_threshold": 0.5,
      "multivariate": [{"method": "mmd", "drifted": False, "p_value": 0.3}]},
     "drifted-column share 0.25 < 0.5 and no multivariate test drifted"),
])
def test_the_dataset_verdict_names_the_test_that_decided(drift: dict[str, Any],
                                                         says: str) -> None:
    from shipyard.cli.monitor_view import verdict_reason

    assert verdict_reason(drift) == says


# -- 80 columns ----------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]\d+)?%?(?![\w.])")


def _numbers(values: Sequence[Any]) -> list[str]:
    from shipyard.cli.monitor_view import number

    return [number(v) for v in values]


def _window_values(record: dict[str, Any], regression: bool) -> list[Any]:
    m = record["metrics"]
    names = ("mae", "rmse", "r2") if regression else ("accuracy", "estimated_accuracy")
    return [m.get("drift_share"), *(m.get(n) for n in names)]


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_tables_fit_80_columns_and_never_cut_a_number(tmp_path: Path, kind: str) -> None:
    if kind == "regression":
        reference, _ = _regression_reference(tmp_path / "ref.profile")
        _regression_traffic(tmp_path / "logs", noise=12345.678)  # wide numbers
        rules: tuple[str, ...] = ("mae > 1", "p99_latency_ms > 1")
    else:
        reference = save_reference(tmp_path / "ref.profile")
        traffic = Traffic(tmp_path / "logs")
        traffic.send(BASE, HOUR, 30, feedback=True)
        traffic.send(BASE + HOUR, HOUR, 30, feedback=True, shift=1.0, latency_ms=1234.5678)
        rules = ("drifted(x0) > 0.5", "p99_latency_ms > 1", "missing_share(city) > 0.2")
    watched = Monitor(ENDPOINT, tmp_path / "logs",
                      MonitorConfig(reference=str(reference), every=HOUR / 4, window=HOUR,
                                    rules=rules),
                      clock=lambda: BASE + 2 * HOUR + 1)
    run = watched.run()
    state = watched.history.load_state() or {}
    for draw in (lambda c: show_run(c, run),
                 lambda c: show_status(c, ENDPOINT, run.records, state, 10)):
        text = _render(draw, 80)
        assert max(len(line) for line in text.splitlines()) <= 80, text
        printed = set(_NUMBER.findall(text))
        wide = set(_NUMBER.findall(_render(draw, 400)))
        assert printed <= wide, (printed - wide, text)  # no fragment of a cut number
        assert "…" not in text.replace("+15m …", "").replace("+1h …", ""), text
        for record in run.records[-8:]:
            if record.get("metrics", {}).get("drift_share") is None:
                continue
            for value in _numbers(_window_values(record, kind == "regression")):
                assert value in printed, (value, text)


def test_window_labels_show_seconds_below_a_minute() -> None:
    def label(start: float, end: float) -> str:
        from shipyard.cli.monitor_tables import window_label
        from shipyard.service.windows import iso

        return window_label({"kind": "time", "start": iso(start), "end": iso(end),
                             "start_ts": start, "end_ts": end, "complete": True})

    assert label(BASE + 30, BASE + 60) == "11-14 22:00:30 +30s"
    assert label(BASE, BASE + 10) == "11-14 22:00:00 +10s"
    assert label(BASE, BASE + HOUR) == "11-14 22:00 +1h"


def test_short_windows_show_seconds_in_the_table(tmp_path: Path) -> None:
    reference = save_reference(tmp_path / "ref.profile")
    traffic = Traffic(tmp_path / "logs")
    traffic.send(BASE, 120, 12)
    run = Monitor(ENDPOINT, traffic.root, MonitorConfig(reference=str(reference), every=30.0,
                                                        min_rows=5),
                  clock=lambda: BASE + 120).run()
    text = _render(lambda c: show_run(c, run), 80)
    for start in ("22:00:00", "22:00:30", "22:01:00", "22:01:30"):
        assert f"11-14 {start} +30s" in text, text


# -- which endpoints, which rows -----------------------------------------------------------

def test_status_without_an_endpoint_lists_every_endpoint(tmp_path: Path) -> None:
    reference = save_reference(tmp_path / "ref.profile")
    traffic = Traffic(tmp_path / "logs")
    traffic.send(BASE, HOUR, 20)
    for name in ("alpha", "beta"):
        Monitor(name, traffic.root, MonitorConfig(reference=str(reference), every=HOUR),
                clock=lambda: BASE + HOUR + 1).history.put(
            {"key": "time:x", "endpoint": name, "rows": 7, "metrics": {"drift_share": 0.5},
             "window": {"kind": "time", "start": "2023-11-14T22:00:00Z",
                        "end": "2023-11-14T23:00:00Z", "start_ts": BASE,
                        "end_ts": BASE + HOUR, "complete": True}})
    Monitor(ENDPOINT, traffic.root, MonitorConfig(reference=str(reference), every=HOUR),
            clock=lambda: BASE + HOUR + 1).run()
    text = _run("monitor", "status", "--log-dir", str(traffic.root))
    for name in ("alpha", "beta", ENDPOINT):
        assert re.search(rf"^{name}\s+1\s+11-14 22:00 \+1h", text, re.M), text
    listed = json.loads(_run("monitor", "status", "--log-dir", str(traffic.root), "--json"))
    assert [e["endpoint"] for e in listed["endpoints"]] == ["alpha", "beta", ENDPOINT]
    assert listed["endpoints"][2]["latest"]["rows"] == 400


def test_run_selects_rows_by_offset_and_time_range(tmp_path: Path) -> None:
    reference = save_reference(tmp_path / "ref.profile")
    traffic = Traffic(tmp_path / "logs")
    traffic.send(BASE, 4 * HOUR, 40)  # 800 rows, one request every 6 minutes
    times = np.repeat([ts for _, ts, _ in traffic.requests], 20)
    log = str(traffic.root)
    common = ("--log-dir", log, "--reference", str(reference), "--json")

    (window,) = json.loads(_run("monitor", "run", ENDPOINT, "--rows", "300", "--offset",
                                "200", *common))["windows"]
    assert window["rows"] == 300
    assert window["window"]["start_ts"] == pytest.approx(times[-500])
    assert window["window"]["end_ts"] == pytest.approx(times[-201] + 1e-6)

    until = BASE + 2 * HOUR
    iso_until = "2023-11-15T00:00:00+00:00"
    assert until == pytest.approx(1_700_006_400)
    (window,) = json.loads(_run("monitor", "run", ENDPOINT, "--rows", "100", "--until",
                                iso_until, *common))["windows"]
    assert window["window"]["end_ts"] <= until
    assert window["window"]["end_ts"] == pytest.approx(times[times < until][-1] + 1e-6)

    windows = json.loads(_run("monitor", "run", ENDPOINT, "--window", "1h", "--since",
                              "2023-11-14T22:30:00+00:00", "--until", iso_until,
                              *common))["windows"]
    assert [(w["window"]["start_ts"], w["window"]["end_ts"], w["window"]["complete"])
            for w in windows] == [(BASE, BASE + HOUR, True),
                                  (BASE + HOUR, BASE + 2 * HOUR, True)]
    assert [w["rows"] for w in windows] == [200, 200]
