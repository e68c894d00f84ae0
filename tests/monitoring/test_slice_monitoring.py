"""Performance by slice in production (issue 18), on scikit-learn's digits: a drop planted in
one slice is found while the overall accuracy barely moves, a rule on the worst slice fires
and names it, and a tiny slice's bad streak never alarms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from typer.testing import CliRunner

from monitoring.test_alert_metrics import packages
from shipyard.cli.main import app
from shipyard.profiles import profile
from shipyard.service.config import MonitorConfig
from shipyard.service.monitor import Monitor
from shipyard.stores.predictions import FeedbackRecord, PredictionLog, PredictionRecord

HOUR = 3600.0
BASE = 1_700_000_000 - 1_700_000_000 % 3600
ENDPOINT = "digits"
CLASSES = list(range(10))
PIXELS = [f"p{i}" for i in range(64)]
RULES = ("worst_slice_accuracy(stroke) < 0.8", "accuracy(slice=stroke:smudged) < 0.8",
         "accuracy(slice=stroke:bold) < 0.7", "worst_slice_accuracy(ink) < 0.8",
         "accuracy < 0.9")
__all__ = ["packages"]  # the fixture: a regressor's and a classifier's package directories
BOLD_FLIPS = 20  # labels of the bold slice made wrong in the second hour
TINY = 5  # rows in the tiny slice, 3 of them wrong


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A classifier on the even rows; the odd rows are served. ``stroke`` is a category
    made from the ink: the heaviest 6% "bold", the lightest 6% "faint", five served rows
    "smudged" (a slice the reference never saw), the rest "regular"."""
    root = tmp_path_factory.mktemp("digits")
    x, y = load_digits(return_X_y=True)
    ink = x.sum(axis=1)
    low, high = np.quantile(ink, [0.06, 0.94])
    stroke = np.where(ink >= high, "bold", np.where(ink <= low, "faint", "regular"))
    stroke = stroke.astype(object)
    train, test = np.arange(0, len(y), 2), np.arange(1, len(y), 2)
    regular = test[stroke[test] == "regular"]
    stroke[regular[[0, 150, 300, 450, 600]]] = "smudged"
    model = LogisticRegression(max_iter=3000).fit(x[train], y[train])

    def frame(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {**{p: x[rows, i] for i, p in enumerate(PIXELS)}, "stroke": stroke[rows],
                "ink": ink[rows]}

    proba = model.predict_proba(x[train])
    profile({**frame(train), "prediction": model.predict(x[train]),
             **{f"proba.{c}": proba[:, c] for c in CLASSES},
             "target": y[train]}).save(root / "reference.profile")
    served = frame(test)
    return {"root": root, "reference": root / "reference.profile", "inputs": served,
            "pred": model.predict(x[test]), "proba": model.predict_proba(x[test]),
            "truth": y[test], "stroke": stroke[test]}


def planted_labels(digits: dict[str, Any]) -> np.ndarray:
    """The truth with the first ``BOLD_FLIPS`` bold rows the model got right relabelled (a
    new kind of bold digit it misreads) and 3 of the 5 smudged rows wrong."""
    labels = digits["truth"].copy()
    right = digits["pred"] == labels
    for name, count in (("bold", BOLD_FLIPS), ("smudged", 3)):
        rows = np.flatnonzero((digits["stroke"] == name) & right)[:count]
        assert len(rows) == count
        labels[rows] = (digits["pred"][rows] + 1) % 10
    return labels


def log_hour(log: PredictionLog, digits: dict[str, Any], start: float, labels: np.ndarray,
             tag: str, per_request: int = 20) -> None:
    rows = len(labels)
    for n, first in enumerate(range(0, rows, per_request)):
        part = slice(first, min(first + per_request, rows))
        request = f"{tag}{n}"
        ts = start + HOUR * (first + 0.5) / rows
        log.append(PredictionRecord(
            request, ts, ENDPOINT, "digits", 1, 3.0, None,
            {k: v[part] for k, v in digits["inputs"].items()},
            {"label": digits["pred"][part], "probabilities": digits["proba"][part]}, CLASSES))
        log.append(FeedbackRecord(request, ts + 1.0, ENDPOINT, labels[part].tolist()))


@pytest.fixture(scope="module")
def monitored(digits: dict[str, Any]) -> dict[str, Any]:
    """Two hours of the same traffic: labels as they are, then with the planted drop."""
    logs = digits["root"] / "logs"
    log = PredictionLog(logs)
    planted = planted_labels(digits)
    log_hour(log, digits, BASE, digits["truth"], "clean")
    log_hour(log, digits, BASE + HOUR, planted, "planted")
    log.close()
    config = MonitorConfig(reference=str(digits["reference"]), slices=("stroke", "ink"),
                           rules=RULES, every=HOUR)
    run = Monitor(ENDPOINT, logs, config, clock=lambda: BASE + 2 * HOUR + 60).run(partial=False)
    clean, drop = run.records
    return {"logs": logs, "run": run, "clean": clean, "drop": drop, "planted": planted}


def _slice(record: dict[str, Any], column: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in record["slices"]["columns"][column]["slices"]
                                 if s["slice"] == name)
    return found


def test_a_drop_in_one_slice_is_found_while_the_overall_accuracy_barely_moves(
        digits: dict[str, Any], monitored: dict[str, Any]) -> None:
    clean, drop = monitored["clean"], monitored["drop"]
    overall = clean["metrics"]["accuracy"] - drop["metrics"]["accuracy"]
    assert 0 < overall < 0.03, overall
    bold = digits["stroke"] == "bold"
    before = accuracy_score(digits["truth"][bold], digits["pred"][bold])
    after = accuracy_score(monitored["planted"][bold], digits["pred"][bold])
    assert clean["metrics"]["accuracy(slice=stroke:bold)"] == pytest.approx(before)
    assert drop["metrics"]["accuracy(slice=stroke:bold)"] == pytest.approx(after)
    assert before - after > 0.3
    shown = _slice(drop, "stroke", "bold")
    assert shown["rows"] == shown["labelled"] == int(bold.sum())
    assert shown["eligible"]
    interval = shown["metrics"]["accuracy"]
    assert interval["low"] < after < interval["high"] < 0.8
    worst = drop["slices"]["columns"]["stroke"]["worst"]["accuracy"]
    assert worst["slice"] == "bold" and worst["bound"] == pytest.approx(interval["high"])
    assert drop["metrics"]["worst_slice_accuracy(stroke)"] == pytest.approx(interval["high"])
    # the label-free estimate cannot see a change of labels: it stays where it was
    assert shown["estimated"]["estimated_accuracy"] == pytest.approx(
        _slice(clean, "stroke", "bold")["estimated"]["estimated_accuracy"])


def test_the_worst_slice_rule_fires_and_names_the_slice(monitored: dict[str, Any]) -> None:
    clean, drop = monitored["clean"], monitored["drop"]
    assert clean["alerts"] == []
    assert clean["metrics"]["worst_slice_accuracy(stroke)"] >= 0.8
    fired = {a["rule"]: a for a in drop["alerts"]}
    # not the overall accuracy, not the tiny slice, not a numeric column's bins
    assert set(fired) == {"worst_slice_accuracy(stroke) < 0.8",
                          "accuracy(slice=stroke:bold) < 0.7"}
    alert = fired["worst_slice_accuracy(stroke) < 0.8"]
    assert alert["state"] == "firing"
    assert "stroke=bold" in alert["detail"]
    assert alert["value"] == pytest.approx(drop["metrics"]["worst_slice_accuracy(stroke)"])


def test_a_tiny_slice_with_a_bad_streak_does_not_alarm(monitored: dict[str, Any]) -> None:
    drop = monitored["drop"]
    tiny = _slice(drop, "stroke", "smudged")
    assert tiny["rows"] == tiny["labelled"] == TINY
    assert not tiny["eligible"]
    interval = tiny["metrics"]["accuracy"]
    assert interval["estimate"] == pytest.approx(2 / TINY)
    assert interval["low"] < 0.1 and interval["high"] > 0.8  # reported with its uncertainty
    assert drop["metrics"]["accuracy(slice=stroke:smudged)"] is None
    assert drop["slices"]["columns"]["stroke"]["worst"]["accuracy"]["slice"] != "smudged"


def test_numbers_are_sliced_between_the_reference_quartiles(
        digits: dict[str, Any], monitored: dict[str, Any]) -> None:
    ink = monitored["clean"]["slices"]["columns"]["ink"]
    assert ink["bins"]["kind"] == "numeric" and len(ink["bins"]["edges"]) == 3
    assert sum(s["rows"] for s in ink["slices"]) == len(digits["truth"])
    names = [s["slice"] for s in ink["slices"]]  # lowest bin first
    assert names[0].startswith("< ") and names[-1].startswith(">= ") and len(names) == 4
    for found in ink["slices"]:  # the served rows spread over the training quartiles
        assert 0.15 < found["rows"] / len(digits["truth"]) < 0.35, found


def test_status_shows_the_worst_slices(monitored: dict[str, Any]) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["monitor", "status", ENDPOINT, "--log-dir",
                                str(monitored["logs"])])
    assert shown.exit_code == 0, shown.output
    assert "worst slices" in shown.output.lower()
    assert "bold" in shown.output
    as_json = runner.invoke(app, ["monitor", "status", ENDPOINT, "--log-dir",
                                  str(monitored["logs"]), "--json"])
    assert as_json.exit_code == 0, as_json.output
    latest = json.loads(as_json.output)["latest"]
    assert latest["slices"]["columns"]["stroke"]["worst"]["accuracy"]["slice"] == "bold"


def test_the_dashboard_draws_the_worst_slices_and_the_newest_window(
        monitored: dict[str, Any]) -> None:
    from shipyard.ui.endpoint_page import endpoint_page
    from shipyard.ui.source import DashboardSource

    html = endpoint_page(DashboardSource(monitored["logs"]), ENDPOINT)
    section = html.split('<h2 id="slices">')[1].split("<h2")[0]
    bound = monitored["drop"]["metrics"]["worst_slice_accuracy(stroke)"]
    assert f'data-value="{bound!r}"' in section  # the chart's table: the bound per window
    assert '<td class="bad">bold</td>' in section  # the newest window's worst slice
    assert "too few labels" in section  # the smudged slice, listed but not judged


def test_metrics_export_each_columns_worst_slice(monitored: dict[str, Any]) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from shipyard.service.monitor_metrics import MonitorResults

    registry = CollectorRegistry()
    registry.register(MonitorResults(monitored["logs"], [ENDPOINT]))
    lines = [line for line in generate_latest(registry).decode().splitlines()
             if line.startswith("shipyard_worst_slice_metric{")]
    assert len(lines) == 4  # stroke and ink, accuracy and f1: one series each
    bound = monitored["drop"]["metrics"]["worst_slice_accuracy(stroke)"]
    (stroke,) = [line for line in lines if 'column="stroke"' in line
                 and 'metric="accuracy"' in line]
    assert 'slice="bold"' in stroke and float(stroke.rsplit(" ", 1)[1]) == bound


def test_slice_settings_are_read_and_checked() -> None:
    from shipyard.service.config import ConfigError, ServeConfig

    config = MonitorConfig.from_dict({"slices": "stroke, ink", "slice_bins": 5,
                                      "slice_min_labelled": 50,
                                      "rules": ["worst_slice_accuracy(ink) < 0.8"]})
    assert (config.slices, config.slice_bins, config.slice_min_labelled) == (
        ("stroke", "ink"), 5, 50)
    assert MonitorConfig.from_dict(config.to_dict()) == config
    for bad, message in (({"slices": [1]}, "monitor.slices must be a list of column names"),
                         ({"slices": ["a", "a"]}, "names a column twice"),
                         ({"slice_bins": 1}, "monitor.slice_bins must be a whole number >= 2"),
                         ({"slice_min_labelled": 0}, "slice_min_labelled must be a whole")):
        with pytest.raises(ConfigError, match=message):
            MonitorConfig.from_dict(bad)
    with pytest.raises(ConfigError, match="'cut' is not a slice column; slice columns: stroke"):
        ServeConfig.from_dict({"monitor": {"slices": ["stroke"], "rules": [
            "accuracy(slice=cut:Fair) < 0.8"]}, "endpoints": [{"name": "a", "model": "/m"}]})


def test_a_slice_column_the_window_lacks_is_named_not_fatal(
        digits: dict[str, Any], monitored: dict[str, Any]) -> None:
    config = MonitorConfig(reference=str(digits["reference"]), slices=("stroke", "colour"),
                           every=HOUR)
    record = Monitor(ENDPOINT, monitored["logs"], config,
                     clock=lambda: BASE + 2 * HOUR + 60).run(last=200).records[-1]
    assert record["slices"]["skipped"] == {"colour": "not in the window's columns"}
    assert sum(s["rows"] for s in record["slices"]["columns"]["stroke"]["slices"]) == 200


def test_monitor_run_takes_slice_columns_on_the_command_line(
        digits: dict[str, Any], monitored: dict[str, Any]) -> None:
    shown = CliRunner().invoke(app, [
        "monitor", "run", ENDPOINT, "--log-dir", str(monitored["logs"]), "--reference",
        str(digits["reference"]), "--rows", "400", "--slices", "stroke", "--json"])
    assert shown.exit_code == 0, shown.output
    (window,) = json.loads(shown.output)["windows"]
    assert list(window["slices"]["columns"]) == ["stroke"]
    assert "worst_slice_accuracy(stroke)" in window["metrics"]


def test_serving_refuses_a_slice_column_the_model_never_takes(
        packages: dict[str, Path]) -> None:
    from shipyard.service.config import ConfigError, ServeConfig
    from shipyard.service.monitor_rules import check_serve_rules

    def serve(slices: list[str]) -> ServeConfig:
        return ServeConfig.from_dict({"monitor": {"slices": slices}, "endpoints": [
            {"name": "demo", "model": str(packages["demo"])}]})

    check_serve_rules(serve(["x0", "prediction", "target"]))
    with pytest.raises(ConfigError, match="has no column 'city' to slice by; slice by an "
                                          "input \\(x0, x1, x2\\), prediction or target"):
        check_serve_rules(serve(["x0", "city"]))


def test_a_column_the_reference_cut_as_numbers_but_logged_as_text_is_skipped() -> None:
    from shipyard.service.monitor_slices import slice_report
    from shipyard.service.references import Reference

    rng = np.random.default_rng(1)
    n = 400
    prediction = rng.choice(np.array(["yes", "no"], dtype=object), n)
    reference = Reference(profile({"size": rng.normal(size=n), "shop": rng.choice(
        np.array(["a", "b"]), n), "prediction": prediction, "target": prediction}), "test")
    frame = {"size": np.array(["small", "large"] * (n // 2), dtype=object),
             "shop": np.array(["a"] * n, dtype=object), "prediction": prediction,
             "target": prediction}
    metrics: dict[str, float | None] = {}
    details: dict[str, str] = {}
    found = slice_report(frame, np.ones(n, dtype=bool), reference,
                         MonitorConfig(slices=("size", "shop", "nope")), metrics, details)
    assert found is not None
    assert "numeric in the reference but holds" in found["skipped"]["size"]
    assert found["skipped"]["nope"] == "not in the window's columns"
    (shop,) = found["columns"]["shop"]["slices"]
    assert shop["slice"] == "a" and shop["labelled"] == n
    assert shop["metrics"]["accuracy"]["estimate"] == 1.0
    assert metrics["worst_slice_accuracy(shop)"] == pytest.approx(
        shop["metrics"]["accuracy"]["high"])
    assert details["worst_slice_accuracy(shop)"].startswith("worst slice shop=a: accuracy 1 ")


def test_a_rule_on_a_numeric_slice_that_is_not_one_of_its_bins_is_named(
        digits: dict[str, Any], monitored: dict[str, Any]) -> None:
    """A numeric column's slices are the reference's bins; a rule naming another (a typo, an
    edge written with other digits) could never fire: each run says so, naming the bins."""
    config = MonitorConfig(reference=str(digits["reference"]), slices=("stroke", "ink"),
                           rules=("accuracy(slice=ink:>= 1e9) < 0.8",
                                  "accuracy(slice=stroke:never-seen) < 0.8"), every=HOUR)
    run = Monitor(ENDPOINT, monitored["logs"], config,
                  clock=lambda: BASE + 2 * HOUR + 60).run(last=200)
    ink = run.records[-1]["slices"]["columns"]["ink"]["slices"]
    (note,) = [n for n in run.notes if "never fire" in n]
    assert "accuracy(slice=ink:>= 1e9) < 0.8" in note
    assert all(s["slice"] in note for s in ink)  # the bins it could name
    assert "stroke" not in note  # a category may yet appear: not "never fires", but named
    (unseen,) = [n for n in run.notes if "reference never saw" in n]
    assert "stroke=never-seen" in unseen and "a typo?" in unseen
    assert all(value in unseen for value in ("bold", "faint", "regular"))
