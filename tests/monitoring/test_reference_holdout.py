"""``package(..., reference=(X, y))``: the monitoring reference from held-out rows.

On its own training rows an overfit model is over-confident, so a label-free estimate
calibrated there reads high; calibrated on rows it never saw, it lands near realised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.errors import PackageError
from shipyard.monitoring.estimation import estimate_performance
from shipyard.profiles import Profile
from shipyard.service.references import fit_calibrator


def _data(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Two informative columns, two of noise, and 15% of the labels flipped."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, 4)), columns=["a", "b", "c", "d"])
    y = ((x["a"] + 0.5 * x["b"] + rng.normal(0, 0.5, rows)) > 0).astype(int)
    flip = rng.random(rows) < 0.15
    return x, pd.Series(np.where(flip, 1 - y, y), name="label")


@pytest.fixture(scope="module")
def forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    x, y = _data(1000, seed=0)
    return RandomForestClassifier(n_estimators=40, random_state=0).fit(x, y), x, y


def _reference(pkg: shipyard.Package) -> Profile:
    return Profile.from_bytes(pkg.files["profile.bin"])


def test_the_reference_profile_comes_from_the_holdout(forest: Any, tmp_path: Path) -> None:
    model, x, y = forest
    x_ref, y_ref = _data(300, seed=1)
    pkg = shipyard.package(model, x, target=y, reference=(x_ref, y_ref), name="forest",
                           format="native")
    ref = _reference(pkg)
    assert ref.rows == 300
    assert list(ref.columns) == ["a", "b", "c", "d", "prediction", "proba.0", "proba.1",
                                 "target"]
    assert ref["target"].frequencies() == {str(k): int(v)
                                           for k, v in y_ref.value_counts().items()}
    assert ref["a"].min == x_ref["a"].min()
    assert ref["proba.1"].mean == pytest.approx(model.predict_proba(x_ref)[:, 1].mean(),
                                                abs=1e-6)
    meta = pkg.manifest.metadata
    assert meta["reference"] == {"source": "holdout", "rows": 300, "target": True}
    assert meta["sample_rows"] == 1000  # the signature and example still come from the sample
    assert len(json.loads(pkg.files["input_example.json"])) == 5
    assert json.loads(pkg.files["input_example.json"])[0]["a"] == x["a"].iloc[0]

    without_labels = shipyard.package(model, x, target=y, reference=x_ref, name="forest",
                                      format="native")
    assert "target" not in _reference(without_labels).columns
    assert without_labels.manifest.metadata["reference"] == {
        "source": "holdout", "rows": 300, "target": False}
    default = shipyard.package(model, x, target=y, name="forest", format="native")
    assert _reference(default).rows == 1000
    assert default.manifest.metadata["reference"] == {
        "source": "sample", "rows": 1000, "target": True}

    path = pkg.save(tmp_path / "forest")
    from shipyard.cli.main import app

    shown = CliRunner().invoke(app, ["inspect", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "monitoring reference: 300 held-out rows, with target" in shown.output


@pytest.mark.parametrize(("reference", "message"), [
    (lambda x, y: (x.drop(columns="c"), y), "missing input columns: ['c']"),
    (lambda x, y: (x.assign(a="text"), y), "the reference rows do not match the signature"),
    (lambda x, y: (x, y[:10]), "the reference target has 10 values for 300 reference rows"),
    (lambda x, y: (x, y, y), "an (X, y) pair, got a tuple of 3"),
    (lambda x, y: (None, y), "no rows"),
    (lambda x, y: x.iloc[:0], "input is empty: no rows"),
])
def test_bad_reference_rows_raise_a_clear_package_error(forest: Any, reference: Any,
                                                        message: str) -> None:
    model, x, y = forest
    x_ref, y_ref = _data(300, seed=1)
    with pytest.raises(PackageError) as err:
        shipyard.package(model, x, target=y, reference=reference(x_ref, y_ref), name="forest",
                         format="native")
    assert message in str(err.value)


def test_a_holdout_reference_estimates_an_overfit_model_near_realised(forest: Any) -> None:
    model, x, y = forest
    x_ref, y_ref = _data(600, seed=1)
    x_new, y_new = _data(2000, seed=2)
    proba = model.predict_proba(x_new)
    realised = float(np.mean(model.predict(x_new) == y_new))
    estimates = {}
    for source, reference in (("sample", None), ("holdout", (x_ref, y_ref))):
        pkg = shipyard.package(model, x, target=y, reference=reference, name="forest",
                               format="native")
        calibrator = fit_calibrator(_reference(pkg))
        assert calibrator is not None
        estimates[source] = estimate_performance(
            {"0": proba[:, 0], "1": proba[:, 1]}, ["0", "1"], calibrator)["accuracy"]
    assert realised < 0.85  # the labels are noisy; the forest learnt the noise
    assert abs(estimates["holdout"] - realised) < 0.05, (estimates, realised)
    assert estimates["sample"] > realised + 0.1, (estimates, realised)
