"""``shipyard monitor errors`` end to end: predictions and feedback written by
``PredictionLog``, read back, cut into slices and ranked (``service/error_analysis``), in
Python and through the CLI; a real package's reference and task on breast-cancer rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.errors import ShipyardError
from shipyard.monitoring.slicing import MISSING
from shipyard.profiles import profile
from shipyard.service.config import MonitorConfig
from shipyard.service.error_analysis import ErrorOptions, endpoint_errors
from shipyard.stores.predictions import FeedbackRecord, PredictionLog, PredictionRecord

ENDPOINT = "shop"
ROWS = 4000
runner = CliRunner()


def shop_rows(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Orders with a region, a channel and an amount (some missing); a region seen 8 times."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "region": rng.choice(["north", "south", "east", "west"], rows, p=[.3, .2, .25, .25]),
        "channel": rng.choice(["web", "store", "phone"], rows, p=[.2, .5, .3]),
        "amount": rng.gamma(2.0, 50.0, rows),
    })
    frame.loc[rng.choice(rows, 8, replace=False), "region"] = "island"
    frame.loc[rng.choice(rows, 30, replace=False), "amount"] = np.nan
    return frame


def planted(frame: pd.DataFrame, seed: int = 1) -> np.ndarray:
    """Which rows the model gets wrong: 4% everywhere, 35% in the south, 80% on the web in
    the east."""
    rate = np.full(len(frame), 0.04)
    rate[frame["region"] == "south"] = 0.35
    rate[(frame["region"] == "east") & (frame["channel"] == "web")] = 0.80
    return np.random.default_rng(seed).random(len(frame)) < rate


def write_log(root: Path, frame: pd.DataFrame, outputs: dict[str, np.ndarray],
              labels: np.ndarray | None, *, classes: list[Any] | None = None,
              start: float | None = None, per_request: int = 10, version: int = 1) -> None:
    """One request per ``per_request`` rows over the last hour; feedback for each request
    when ``labels`` is given."""
    log = PredictionLog(root)
    start = time.time() - 3600 if start is None else start
    for i, low in enumerate(range(0, len(frame), per_request)):
        part = frame.iloc[low:low + per_request]
        inputs = {c: (part[c].to_numpy(dtype=object) if part[c].dtype == object
                      else part[c].to_numpy()) for c in part.columns}
        ts = start + i * 0.1
        log.append(PredictionRecord(f"v{version}r{i}", ts, ENDPOINT, ENDPOINT, version, 5.0,
                                    None, inputs,
                                    {k: v[low:low + per_request] for k, v in outputs.items()},
                                    classes))
        if labels is not None:
            log.append(FeedbackRecord(f"v{version}r{i}", ts + 1.0, ENDPOINT,
                                      labels[low:low + per_request].tolist()))
    log.flush()
    log.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A classifier's log: predicted labels and probabilities, feedback on every request;
    and a reference profile of other rows of the same shop."""
    root = tmp_path_factory.mktemp("errors")
    frame = shop_rows()
    rng = np.random.default_rng(2)
    predicted = rng.integers(0, 2, len(frame))
    wrong = planted(frame)
    truth = np.where(wrong, 1 - predicted, predicted)
    p1 = np.where(predicted == 1, 0.8, 0.2)
    write_log(root / "logs", frame, {"label": predicted,
                                     "probabilities": np.column_stack([1 - p1, p1])},
              truth, classes=[0, 1])
    reference = shop_rows(2000, seed=5)
    profile({**{c: reference[c].to_numpy(dtype=object) if reference[c].dtype == object
                else reference[c].to_numpy() for c in reference.columns},
             "prediction": np.zeros(2000, dtype=np.int64)}).save(root / "reference.profile")
    return {"logs": root / "logs", "reference": root / "reference.profile", "frame": frame,
            "wrong": wrong, "reference_rows": reference}


def _analyse(shop: dict[str, Any], **options: Any) -> Any:
    return endpoint_errors(ENDPOINT, shop["logs"],
                           MonitorConfig(reference=str(shop["reference"])),
                           options=ErrorOptions(**options))


def test_the_planted_slice_and_pair_rank_first(shop: dict[str, Any]) -> None:
    result = _analyse(shop)
    frame = shop["frame"].assign(error=shop["wrong"])
    analysis = result.analysis
    assert result.labelled == result.logged == ROWS
    assert result.rule.task == "classification"
    assert analysis.errors == int(frame["error"].sum())

    top = analysis.singles[0]
    assert top.name == "region=south"
    south = frame[frame["region"] == "south"]
    assert (top.rows, top.errors) == (len(south), int(south["error"].sum()))
    assert top.share_of_errors is not None
    assert top.share_of_errors.low <= top.share_of_errors.estimate <= \
        top.share_of_errors.high
    assert analysis.pairs[0].name == "region=east & channel=web"
    pair = frame[(frame["region"] == "east") & (frame["channel"] == "web")]
    assert (analysis.pairs[0].rows, analysis.pairs[0].errors) == (
        len(pair), int(pair["error"].sum()))
    # the tiny region is hidden and counted
    assert "region=island" not in [s.name for s in analysis.slices]
    assert analysis.hidden_singles == 1


def test_numbers_are_cut_at_the_references_quartiles(shop: dict[str, Any]) -> None:
    result = _analyse(shop, columns=["amount"], pair_columns=0)
    (cut,) = result.bins
    expected = np.nanquantile(shop["reference_rows"]["amount"], [0.25, 0.5, 0.75])
    assert cut.edges == pytest.approx(expected, rel=0.05)  # a quantile sketch's
    amount = shop["frame"]["amount"].to_numpy()
    shown = {s.values[0]: s.rows for s in result.analysis.singles}
    assert shown[MISSING] == int(np.isnan(amount).sum()) == 30
    low = f"< {cut.labels[0][2:]}"
    assert shown[low] == int((amount < cut.edges[0]).sum())
    assert sum(shown.values()) == ROWS
    assert result.reference == str(shop["reference"])


def test_the_monitor_configs_slice_columns_are_the_default(shop: dict[str, Any]) -> None:
    config = MonitorConfig(reference=str(shop["reference"]), slices=("channel", "colour"),
                           slice_bins=2)
    result = endpoint_errors(ENDPOINT, shop["logs"], config)
    assert [b.column for b in result.bins] == ["channel"]
    assert any("monitor.slices colour not in the logged rows" in n for n in result.notes)
    (cut,) = endpoint_errors(ENDPOINT, shop["logs"], config,
                             options=ErrorOptions(columns=["amount"])).bins
    assert cut.edges is not None and len(cut.edges) == 1  # slice_bins 2: at the median


def test_sort_min_rows_and_to_dict(shop: dict[str, Any]) -> None:
    result = _analyse(shop, sort="rate", min_rows=5)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["sort"] == "rate" and data["error"]["task"] == "classification"
    assert data["pairs"][0]["slice"] == "region=east & channel=web"
    assert "region=island" in [s["slice"] for s in data["singles"]]  # 8 rows >= 5
    rates = [s["error_rate"]["estimate"] for s in data["singles"]]
    assert rates == sorted(rates, reverse=True)


def test_a_regressor_errs_beyond_the_90th_percentile(tmp_path: Path) -> None:
    frame = shop_rows(seed=3)
    rng = np.random.default_rng(4)
    value = rng.normal(100.0, 10.0, len(frame))
    noise = rng.normal(0.0, 1.0, len(frame))
    noise[frame["channel"] == "phone"] *= 6  # the phone orders are hard to predict
    write_log(tmp_path / "logs", frame, {"value": value}, value + noise)
    result = endpoint_errors(ENDPOINT, tmp_path / "logs", options=ErrorOptions(
        columns=["region", "channel"]))
    gap = np.abs(noise)
    assert result.rule.task == "regression" and result.rule.quantile == 0.9
    assert result.rule.threshold == pytest.approx(np.quantile(gap, 0.9))
    assert "90th percentile" in result.rule.text
    assert result.analysis.errors == int((gap > result.rule.threshold).sum())
    assert result.analysis.singles[0].name == "channel=phone"
    assert result.reference is None  # no package: a note says numbers use the window's cut
    assert any(n.startswith("no reference") and "own quantiles" in n for n in result.notes)
    fixed = endpoint_errors(ENDPOINT, tmp_path / "logs", options=ErrorOptions(
        columns=["channel"], threshold=3.0))
    assert fixed.analysis.errors == int((gap > 3.0).sum())
    assert fixed.rule.quantile is None and "given" in fixed.rule.text


def test_no_labelled_rows_is_a_clear_error(tmp_path: Path) -> None:
    frame = shop_rows(200)
    write_log(tmp_path / "logs", frame, {"label": np.zeros(200, dtype=np.int64)}, None)
    with pytest.raises(ShipyardError, match=r"no labelled rows for endpoint 'shop'.*: 200 "
                                            "prediction row"):
        endpoint_errors(ENDPOINT, tmp_path / "logs")
    old = time.time() - 30 * 86400  # labelled, but a month ago: outside the default week
    write_log(tmp_path / "old", frame, {"label": np.zeros(200, dtype=np.int64)},
              np.ones(200, dtype=np.int64), start=old)
    with pytest.raises(ShipyardError, match=r"no labelled rows.*: 0 prediction row"):
        endpoint_errors(ENDPOINT, tmp_path / "old")
    found = endpoint_errors(ENDPOINT, tmp_path / "old", span=40 * 86400.0)
    assert found.analysis.errors == 200


def test_several_versions_are_a_slice_column(tmp_path: Path) -> None:
    """Two versions answered: ``version`` is sliced by default, and the worse one leads."""
    for version, (seed, rate) in {1: (6, 0.05), 2: (7, 0.4)}.items():
        frame = shop_rows(1000, seed=seed)
        predicted = np.zeros(1000, dtype=np.int64)
        wrong = np.random.default_rng(seed + 100).random(1000) < rate
        write_log(tmp_path / "logs", frame, {"label": predicted}, wrong.astype(np.int64),
                  version=version)
    result = endpoint_errors(ENDPOINT, tmp_path / "logs", options=ErrorOptions(sort="rate"))
    assert result.bins[0].column == "version"
    top = result.analysis.singles[0]
    assert top.name == "version=v2" and top.rows == 1000
    only_inputs = endpoint_errors(ENDPOINT, tmp_path / "logs",
                                  options=ErrorOptions(columns=["region"]))
    assert [b.column for b in only_inputs.bins] == ["region"]


# -- the CLI -------------------------------------------------------------------------------

def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["monitor", "errors", ENDPOINT, *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_cli_text_and_json(shop: dict[str, Any]) -> None:
    base = ["--log-dir", str(shop["logs"]), "--reference", str(shop["reference"])]
    code, out = _cli(*base, "--window", "1d")
    assert code == 0, out
    assert "a predicted label that is not the true label" in out
    assert "region=south" in out and "region=east & channel=web" in out
    assert out.index("region=south") < out.index("region=north")
    assert "hidden" in out and "--min-rows 20" in out
    code, out = _cli(*base, "--slices", "region,channel", "--sort", "traffic", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert [c["column"] for c in data["columns"]] == ["region", "channel"]
    frame = shop["frame"]
    counts = {f"{c}={v}": int(n) for c in ("region", "channel")
              for v, n in frame[c].value_counts().items() if n >= 20}
    assert [(s["slice"], s["rows"]) for s in data["singles"]] == sorted(
        counts.items(), key=lambda kv: -kv[1])
    assert data["labelled"] == ROWS and data["hidden"]["singles"] == 1
    # one column makes no pairs: none are said to be crossed
    code, out = _cli(*base, "--slices", "region")
    assert code == 0 and "region=south" in out and "crossed" not in out, out


@pytest.mark.parametrize(("args", "message"), [
    (["--sort", "size"], "--sort takes share, rate, traffic"),
    (["--slices", "region,colour"], "slice column 'colour' not in the logged rows"),
    (["--task", "ranking"], "--task takes classification, regression"),
    (["--threshold", "2"], "--threshold is for regressors"),
    (["--rows", "10", "--since", "1d"], "does not combine with --since"),
    (["--since", "1d", "--window", "2d"], "not both"),
    (["--window", "soon"], "--window must be a duration"),
    (["--top", "0"], "--top must be at least 1"),
    (["--reference", "/nowhere/ref.parquet"], "neither a file"),
    (["--threshold", "-1", "--task", "regression"], "--threshold must be a non-negative"),
])
def test_cli_bad_arguments_are_clear_errors(shop: dict[str, Any], args: list[str],
                                            message: str) -> None:
    with pytest.raises(ShipyardError, match=message.replace("(", r"\(")):
        _cli("--log-dir", str(shop["logs"]), "--reference", str(shop["reference"]), *args)


def test_cli_endpoint_without_a_log(tmp_path: Path) -> None:
    with pytest.raises(ShipyardError, match="no predictions logged for endpoint 'shop'"):
        _cli("--log-dir", str(tmp_path))


# -- a real package ------------------------------------------------------------------------

def test_a_packaged_model_on_breast_cancer_rows(cancer: dict[str, Any], tmp_path: Path) -> None:
    """The package's reference cuts the numbers and gives the task; labels flipped on the
    largest tumours (top reference quartile of mean_radius) make that slice rank first."""
    test, y, model = cancer["test"], cancer["y"], cancer["good"]
    predicted = model.predict(test)
    big = test["mean_radius"].to_numpy() >= np.quantile(test["mean_radius"], 0.75)
    truth = np.where(big & (np.arange(len(y)) % 2 == 0), 1 - y, y)
    write_log(tmp_path / "logs", test, {"label": predicted,
                                        "probabilities": model.predict_proba(test)},
              truth, classes=[0, 1], per_request=5)
    result = endpoint_errors("shop", tmp_path / "logs", model_source=str(cancer["good_dir"]),
                             options=ErrorOptions(columns=["mean_radius", "mean_texture"]))
    assert result.rule.task == "classification"
    assert result.reference == str(cancer["good_dir"])
    top = result.analysis.singles[0]
    assert top.columns == ("mean_radius",) and top.values[0].startswith(">= ")
    edge = result.bins[0].edges
    assert edge is not None
    rows = test["mean_radius"].to_numpy() >= edge[-1]
    assert (top.rows, top.errors) == (int(rows.sum()), int((predicted != truth)[rows].sum()))
