"""``shipyard optimize``: int8 quantisation registered as a new version behind an accuracy gate.

A torch MLP with a wide hidden layer (most of its bytes in two weight matrices) is packaged
with held-out rows, registered, and optimised through the CLI and the Python API. The gate
is shown refusing a really broken int8 model: static quantisation calibrated on rows
10,000 times too large, so every activation rounds to a handful of levels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import shipyard
from models_for_tests import MLP
from shipyard.cli.main import app, run
from shipyard.packaging import OutputSpec, Signature
from shipyard.runtimes.optimizing import AccuracyGateError, OptimizationError
from shipyard.runtimes.optimizing.gate import compare

runner = CliRunner()
FEATURES, CLASSES = 64, 4


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    w = np.random.default_rng(99).normal(size=(FEATURES, CLASSES))
    return x, np.argmax(x @ w, axis=1)


@pytest.fixture(scope="module")
def mlp_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained MLP (64 -> 1024 -> 4) packaged with 600 held-out rows and their labels."""
    torch.manual_seed(0)
    model = MLP(n_in=FEATURES, hidden=1024, n_out=CLASSES)
    x, y = _data(2000, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    x_hold, y_hold = _data(600, 1)
    pkg = shipyard.package(model, x, name="mlp", reference=(x_hold, y_hold),
                           model_kwargs={"n_in": FEATURES, "hidden": 1024, "n_out": CLASSES})
    assert pkg.manifest.runtime.name == "onnx"
    return pkg.save(tmp_path_factory.mktemp("pkg") / "mlp")


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHIPYARD_REGISTRY_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_ARTIFACTS", raising=False)
    return f"sqlite:///{tmp_path / 'registry.db'}"


def _registered(url: str, path: Path) -> shipyard.Registry:
    reg = shipyard.Registry(url)
    reg.register(path)
    return reg


def _cli(url: str, *args: str) -> Any:
    return runner.invoke(app, ["optimize", *args, "--registry", url, "--runs", "3"])


def test_int8_version_is_smaller_registered_with_parent_and_figures(
        url: str, mlp_package: Path) -> None:
    reg = _registered(url, mlp_package)
    result = _cli(url, "models:/mlp/1", "--quantize", "int8")
    assert result.exit_code == 0, result.output
    assert "registered models:/mlp/2" in result.output and "smaller" in result.output

    new = reg.get_version("mlp/2")
    assert new.parent_version == 1 and reg.lineage("mlp/2").parents == ("mlp/1",)
    assert new.tags["optimization"] == "int8-dynamic" and new.runtime == "onnx"
    info = new.manifest["metadata"]["optimization"]
    size = info["size_bytes"]
    assert size["before"] > 3.5 * size["after"]  # float32 weights -> int8
    assert size["after"] == next(f["size"] for f in new.manifest["files"]
                                 if f["path"] == "model.onnx")
    latency = info["latency_ms"]
    assert latency["batch"] == 64 and latency["before"] > 0 and latency["after"] > 0
    gate = info["gate"]
    assert gate["metric"] == "accuracy" and gate["truth"] == "target" and gate["passed"]
    assert gate["rows"] == 600 and gate["original"] > 80  # the trained MLP really learned
    assert new.metrics["optimize.size_ratio"] == pytest.approx(size["ratio"])
    # same signature and reference profile; the float torch weights are not carried over
    old = reg.get_version("mlp/1")
    assert new.manifest["signature"] == old.manifest["signature"]
    assert [r["name"] for r in new.manifest["runtimes"]] == ["onnx"]
    files = {f["path"]: f["sha256"] for f in new.manifest["files"]}
    old_files = {f["path"]: f["sha256"] for f in old.manifest["files"]}
    assert "weights.safetensors" not in files
    assert files["reference_rows.npz"] == old_files["reference_rows.npz"]
    assert files["model.onnx"] != old_files["model.onnx"]

    # predictions close to the original's on fresh rows
    x, _ = _data(500, 7)
    before = shipyard.load(reg.fetch("mlp/1")).predict(x).predictions
    after = shipyard.load(reg.fetch("mlp/2")).predict(x).predictions
    assert np.mean(before.argmax(1) == after.argmax(1)) > 0.97
    assert np.max(np.abs(before - after)) < 0.1 * np.max(np.abs(before))
    reg.close()


def test_the_gate_refuses_a_broken_static_quantisation_with_the_numbers(
        url: str, mlp_package: Path, tmp_path: Path) -> None:
    reg = _registered(url, mlp_package)
    x, _ = _data(200, 3)
    bad = tmp_path / "bad-calibration.npz"
    np.savez(bad, input=x * 10_000)  # activation ranges 10,000x too wide
    result = _cli(url, "models:/mlp/1", "--static", "--calibration", str(bad))
    assert result.exit_code == 1
    assert isinstance(result.exception, AccuracyGateError)
    gate = result.exception.result
    assert not gate.passed and gate.loss > 20 and gate.tolerance == 1.0
    text = str(result.exception)
    for number in (gate.original, gate.optimized, gate.loss):
        assert f"{number:.2f}" in text
    assert "tolerance of 1.00" in text and "refused" in text
    assert reg.get_model("mlp").latest_version == 1  # nothing registered
    dynamic = _cli(url, "models:/mlp/1", "--calibration", str(bad))
    assert dynamic.exit_code == 1 and "only used by static" in str(dynamic.exception)

    # the same static quantisation calibrated on the package's own rows passes
    good = _cli(url, "models:/mlp/1", "--static")
    assert good.exit_code == 0, good.output
    assert reg.get_version("mlp/2").tags["optimization"] == "int8-static"
    reg.close()


def test_the_entry_point_prints_the_refusal_in_one_line(
        url: str, mlp_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _registered(url, mlp_package).close()
    monkeypatch.setattr(sys, "argv", ["shipyard", "optimize", "mlp@latest", "--registry", url,
                                      "--runs", "3", "--target-latency", "0.000001"])
    with pytest.raises(SystemExit) as exited:
        run()
    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert "error: refused" in err and "above the target of 1e-06 ms" in err
    assert "Traceback" not in err


def test_python_api_graph_only_and_json(url: str, mlp_package: Path) -> None:
    reg = _registered(url, mlp_package)
    steps: list[str] = []
    result = shipyard.optimize("mlp/1", quantize="none", registry=reg, latency_runs=3,
                               target_latency_ms=60_000, progress=steps.append)
    assert result.report.target_met is True
    assert result.version.manifest["metadata"]["optimization"]["latency_ms"]["target_met"]
    assert result.version.version == 2 and result.version.parent_version == 1
    assert result.report.mode == "graph" and result.report.gate.loss == pytest.approx(0, abs=0.2)
    assert any("checking accuracy" in s for s in steps) and any("timing" in s for s in steps)
    out = _cli(url, "mlp/2", "--quantize", "int8", "--json")
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["version"] == "models:/mlp/3" and shown["parent"] == 2
    assert shown["size_bytes"]["ratio"] > 3
    with pytest.raises(OptimizationError, match="already int8-quantised"):
        shipyard.optimize("mlp/3", registry=reg, latency_runs=3)
    reg.close()


def test_native_packages_are_refused_unloaded(url: str, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _data(300, 0)
    path = shipyard.package(LogisticRegression().fit(x, y), x, name="pickled",
                            format="native").save(tmp_path / "native")
    reg = _registered(url, path)
    result = _cli(url, "pickled/1")
    assert result.exit_code == 1 and isinstance(result.exception, OptimizationError)
    assert "only ONNX packages can be optimised" in str(result.exception)
    assert "'sklearn'" in str(result.exception)
    assert reg.get_model("pickled").latest_version == 1
    reg.close()


def test_a_tabular_package_is_judged_on_its_profile_rows(
        url: str, customers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.preprocessing import OneHotEncoder

    from conftest import column_pipeline

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")

    model = column_pipeline(OneHotEncoder(handle_unknown="ignore"))
    model.fit(customers.x_train, customers.y_train)
    pkg = shipyard.package(model, customers.x_train, name="customers",
                           reference=(customers.x_test, customers.y_test))
    reg = shipyard.Registry(url)
    reg.register(pkg)
    result = shipyard.optimize("customers/1", registry=reg, latency_runs=3)
    gate = result.report.gate
    assert gate.truth == "target" and gate.rows == len(customers.x_test)
    assert gate.passed and result.version.parent_version == 1
    assert not list((tmp_path / "cwd").iterdir())  # no scratch file left where it ran
    static = shipyard.optimize("customers/1", registry=reg, latency_runs=3, static=True)
    assert static.report.gate.passed and static.report.calibration_rows > 0
    assert not list((tmp_path / "cwd").iterdir())
    reg.close()


def test_a_package_without_reference_rows_is_refused(url: str, mlp_package: Path) -> None:
    bare = shipyard.package(mlp_package / "model.onnx", name="bare")
    reg = shipyard.Registry(url)
    reg.register(bare)
    with pytest.raises(OptimizationError, match="no reference rows"):
        shipyard.optimize("bare/1", registry=reg, latency_runs=3)
    reg.close()


def test_gate_without_a_target_compares_with_the_original_and_regressors_use_nrmse() -> None:
    sig = Signature("tensor", ()).with_outputs([OutputSpec("value", "float64", (-1,))],
                                               "regression", None)
    truth = np.linspace(0, 10, 100)
    exact = compare(sig, {"value": truth}, {"value": truth + 0.01}, truth, 1.0)
    assert exact.metric == "nrmse" and exact.passed and exact.truth == "target"
    noisy = compare(sig, {"value": truth}, {"value": truth + 1.0}, None, 1.0)
    assert noisy.truth == "original predictions" and not noisy.passed
    assert noisy.original == 0 and noisy.loss == pytest.approx(100 / np.std(truth))
