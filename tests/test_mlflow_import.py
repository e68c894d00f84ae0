"""``shipyard import mlflow``: model directories written by the real ``mlflow`` package
(tests/mlflow_writer.py, run once per session in its own process) round-trip their
predictions through shipyard; pickles are refused without trust; signatures, input examples,
metrics and params come across; what is not an MLflow model, or not a flavour shipyard reads,
is refused naming the problem."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.errors import UntrustedCodeError
from shipyard.importers import (
    NotAnMlflowModelError,
    UnsupportedFlavourError,
    import_mlflow,
)
from shipyard.importers.mlflow_schema import map_signature

WRITER = Path(__file__).with_name("mlflow_writer.py")
WRITER_TIMEOUT_S = 600
ONNX_CASES = ("sklearn", "sklearn_skops", "xgboost", "lightgbm", "lightgbm_booster", "pytorch",
              "pytorch_pt2", "sqlite_store")
PICKLED = ("sklearn", "lightgbm", "pytorch", "pyfunc")  # need trust (pt2 too: code, not data)
# XGBoost json, LightGBM text, skops with scikit-learn types only: no trust
NO_PICKLE = ("sklearn_skops", "xgboost", "lightgbm_booster")
CASES = (*ONNX_CASES, "pyfunc")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The writer's output: one MLflow model directory per case, its run in OUT/mlruns."""
    if importlib.util.find_spec("mlflow") is None:
        reason = "mlflow is not installed (pip install -e '.[mlflow]' brings mlflow-skinny)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("mlflow")
    started = time.monotonic()
    # in OUT: MLflow's SQLite store puts artifacts under ./mlruns by default
    done = subprocess.run([sys.executable, str(WRITER), str(out)], capture_output=True,
                          text=True, timeout=WRITER_TIMEOUT_S, cwd=out)
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"mlflow writer: {time.monotonic() - started:.1f} s")
    return out


def _expected(written: Path, case: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((written / f"{case}.expected.json").read_text())
    return doc


def _rows(doc: dict[str, Any]) -> Any:
    if doc["columns"] is None:  # the torch model's float32 matrix
        return np.asarray(doc["rows"], dtype=np.float32)
    return pd.DataFrame(doc["rows"], columns=doc["columns"])


@pytest.mark.parametrize("case", CASES)
def test_predictions_round_trip_within_the_recorded_tolerance(written: Path, tmp_path: Path,
                                                              case: str) -> None:
    """MLflow's own pyfunc predictions (saved by the writer) equal shipyard's on the same
    rows: labels exactly, numbers within the tolerance the conversion recorded."""
    doc = _expected(written, case)
    result = import_mlflow(written / case, trust=case in (*PICKLED, "pytorch_pt2"))
    path = result.package.save(tmp_path / case)
    manifest = result.package.manifest
    assert manifest.runtime.name == ("mlflow" if case == "pyfunc" else "onnx"), \
        manifest.conversion
    model = shipyard.load(path, trust=case == "pyfunc")
    got = model.predict(_rows(doc)).outputs
    want = np.asarray(doc["predictions"])
    onnx = manifest.conversion["onnx"]
    tolerance = onnx["tolerance"] if onnx else 1e-12
    if manifest.signature.task == "classification":
        assert np.array_equal(got["label"], want)  # MLflow's pyfunc answers with labels
        assert onnx["ok"] and onnx["max_abs_diff"] <= tolerance
    else:
        value = got["value"] if "value" in got else next(iter(got.values()))
        assert value.shape == want.shape
        assert np.max(np.abs(value - want)) <= tolerance, (case, tolerance)


def test_the_mlflow_runtime_passes_the_conformance_suite(written: Path, tmp_path: Path) -> None:
    """The pyfunc package's runtime (the MLflow directory kept whole) is a runtime like the
    others, and refuses to load without trust."""
    from shipyard.runtimes import check_runtime
    from shipyard.runtimes.base import runtime_class

    path = import_mlflow(written / "pyfunc", trust=True).package.save(tmp_path / "pyfunc")
    assert "a batch equals its rows predicted one by one" in (
        check_runtime(runtime_class("mlflow"), path, trust=True))
    with pytest.raises(UntrustedCodeError, match="pickle"):
        shipyard.load(path)


def test_a_pyfunc_model_with_a_symbolic_link_is_refused(written: Path, tmp_path: Path) -> None:
    """The mlflow runtime's package copies the whole MLflow directory: a link in it would
    copy a file from elsewhere on the machine."""
    import shutil

    from shipyard.errors import ConversionError

    model = shutil.copytree(written / "pyfunc", tmp_path / "pyfunc")
    (model / "extra.txt").symlink_to(written / "rows-outside.txt")
    (written / "rows-outside.txt").write_text("not part of the model")
    with pytest.raises(ConversionError, match="symbolic links"):
        import_mlflow(model, trust=True)


@pytest.mark.parametrize("case", PICKLED)
def test_pickle_flavours_are_refused_without_trust(written: Path, case: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is unpickled: the refusal comes before any file is read."""
    import pickle

    import torch

    def no_unpickling(*_: Any, **__: Any) -> Any:
        raise AssertionError("unpickled without trust")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(UntrustedCodeError, match="--trust") as caught:
        import_mlflow(written / case)
    assert "nothing was loaded" in str(caught.value)


@pytest.mark.parametrize("case", NO_PICKLE)
def test_native_formats_need_no_trust(written: Path, case: str) -> None:
    result = import_mlflow(written / case)
    trust = result.package.manifest.metadata["imported"]["trust"]
    assert trust["needed"] is False and trust["granted"] is False
    assert "no pickle" in trust["reason"]
    assert result.package.manifest.runtime.name == "onnx"


def test_skops_types_skops_does_not_trust_need_trust(written: Path, tmp_path: Path) -> None:
    """The skops model's file swapped for a random forest's: skops lists its tree arrays as
    untrusted, so the import needs trust (and names them), then converts like the rest."""
    import shutil

    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    doc = _expected(written, "sklearn_skops")
    rows = _rows(doc)
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)
    forest.fit(rows, np.asarray(doc["predictions"]))
    model = shutil.copytree(written / "sklearn_skops", tmp_path / "forest")
    skops.io.dump(forest, model / "model.skops")
    with pytest.raises(UntrustedCodeError, match=r"sklearn\.tree\._tree\.Tree"):
        import_mlflow(model)
    result = import_mlflow(model, trust=True)
    assert result.package.manifest.runtime.name == "onnx"
    got = shipyard.load(result.package.save(tmp_path / "pkg")).predict(rows).outputs
    assert np.array_equal(got["label"], forest.predict(rows))


def test_signature_mapped_names_types_shapes(written: Path) -> None:
    table = import_mlflow(written / "xgboost").package.manifest.signature
    assert table.kind == "tabular"
    assert [(c.name, c.dtype, c.shape, c.nullable) for c in table.inputs] == [
        (n, "float64", (-1,), False) for n in ("sepal", "petal", "stem", "leaf")]
    tensor = import_mlflow(written / "pytorch", trust=True).package.manifest
    assert [(c.name, c.dtype, c.shape) for c in tensor.signature.inputs] == [
        ("input", "float32", (-1, 4))]
    # MLflow's own schema is kept beside it, parsed
    kept = tensor.metadata["imported"]["signature"]
    assert kept["outputs"] == [{"type": "tensor",
                                "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]


def test_an_exported_mlflow_package_brings_mlflow() -> None:
    from shipyard.export import pins

    assert pins.extras_for(["mlflow"]) == ("mlflow", "server")


def test_mlflow_types_map_to_shipyard_dtypes() -> None:
    spec = json.dumps([
        {"type": "long", "name": "a", "required": True},
        {"type": "integer", "name": "b", "required": True},
        {"type": "boolean", "name": "c", "required": True},
        {"type": "string", "name": "d", "required": False},
        {"type": "datetime", "name": "e", "required": True},
        {"type": "float", "name": "f"}])
    sig = map_signature({"inputs": spec})
    assert sig is not None
    assert [(c.name, c.dtype, c.nullable) for c in sig.inputs] == [
        ("a", "int64", False), ("b", "int32", False), ("c", "bool", False),
        ("d", "string", True), ("e", "datetime", False), ("f", "float32", False)]
    tensors = map_signature({"inputs": json.dumps([
        {"type": "tensor", "name": "img", "tensor-spec": {"dtype": "uint8",
                                                          "shape": [-1, 28, 28]}}])})
    assert tensors is not None and tensors.inputs[0].shape == (-1, 28, 28)
    from shipyard.errors import ConversionError

    with pytest.raises(ConversionError, match="binary"):
        map_signature({"inputs": json.dumps([{"type": "binary", "name": "raw"}])})
    assert map_signature(None) is None


def test_input_example_kept(written: Path) -> None:
    pkg = import_mlflow(written / "sklearn", trust=True).package
    kept = json.loads(pkg.files["input_example.json"])
    mlflow_example = json.loads((written / "sklearn" / "input_example.json").read_text())
    assert [list(row.values()) for row in kept] == mlflow_example["data"]
    assert list(kept[0]) == mlflow_example["columns"]
    assert pkg.manifest.metadata["imported"]["input_example"] == "input_example.json"


def test_metrics_and_params_from_the_run(written: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a runs:/ URI with MLFLOW_TRACKING_URI, and from a plain directory beside
    the store (a file store, then a SQLite one); a metric's value is its latest step's."""
    doc = _expected(written, "xgboost")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (written / "mlruns").as_uri())
    for source in (doc["runs_uri"], str(written / "xgboost")):
        result = import_mlflow(source)
        meta = result.package.manifest.metadata
        assert meta["metrics"] == {"accuracy": 0.9, "loss": 0.25}, source
        assert meta["params"] == {"case": "xgboost", "rows": "300"}
        assert meta["imported"]["run_id"] == doc["run_id"]
        assert result.package.name == "xgboost"  # the run's name
    # MLflow 3's default store, SQLite: read with sqlite3, read-only
    doc = _expected(written, "sqlite_store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI",
                       f"sqlite:///{(written / 'sqlite' / 'mlflow.db').resolve()}")
    for source in (doc["runs_uri"], str(written / "sqlite_store")):
        meta = import_mlflow(source).package.manifest.metadata
        assert meta["metrics"] == {"accuracy": 0.9, "loss": 0.25}, source
        assert meta["params"] == {"case": "sqlite_store", "rows": "300"}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    from shipyard.errors import ConversionError

    with pytest.raises(ConversionError, match="not a local file store or SQLite"):
        import_mlflow(doc["runs_uri"])


def test_unknown_flavour_names_the_supported_ones(written: Path, tmp_path: Path) -> None:
    model = tmp_path / "keras-model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors:\n  keras:\n    data: data\n"
                                   "  python_function:\n    loader_module: mlflow.keras\n")
    with pytest.raises(UnsupportedFlavourError) as caught:
        import_mlflow(model)
    message = str(caught.value)
    assert "keras" in message
    for supported in ("sklearn", "xgboost", "lightgbm", "pytorch", "python model"):
        assert supported in message


@pytest.mark.parametrize("layout", ["empty", "file", "not-yaml", "no-flavors"])
def test_not_an_mlflow_model_is_refused(tmp_path: Path, layout: str) -> None:
    target = tmp_path / "thing"
    if layout == "file":
        target.write_text("hello")
    else:
        target.mkdir()
        if layout == "not-yaml":
            (target / "MLmodel").write_text("flavors: [unclosed\n")
        elif layout == "no-flavors":
            (target / "MLmodel").write_text("artifact_path: model\n")
    with pytest.raises(NotAnMlflowModelError, match=r"MLflow model|MLmodel|not YAML"):
        import_mlflow(target)


def test_cli_imports_registers_and_audits_trust(written: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal with --register is audited (trust.refuse); a trusted import is registered
    with its trust decision in the version.register record; the package written with --out
    loads, checked and profiled on the --reference rows."""
    from shipyard.cli.main import app
    from shipyard.registry import Registry
    from shipyard.settings import Settings

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHIPYARD_REGISTRY_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_ARTIFACTS", raising=False)
    runner = CliRunner()
    source = str(written / "lightgbm")
    refused = runner.invoke(app, ["import", "mlflow", source, "--register"])
    assert refused.exit_code != 0 and isinstance(refused.exception, UntrustedCodeError)
    held_out = tmp_path / "held-out.csv"
    _rows(_expected(written, "lightgbm")).to_csv(held_out, index=False)
    done = runner.invoke(app, ["import", "mlflow", source, "--register", "--trust", "--out",
                               str(tmp_path / "pkg"), "--alias", "prod",
                               "--reference", str(held_out)])
    assert done.exit_code == 0, done.output
    assert "registered lightgbm/1 @prod" in done.output
    with Registry(settings=Settings.from_env()) as reg:
        actions = [(r.action, r.after) for r in reg.audit(model="lightgbm")]
    assert actions[0][0] == "trust.refuse" and actions[0][1]["refused"] is True
    register = next(after for action, after in actions if action == "version.register")
    assert register["imported"]["trust"]["granted"] is True
    assert register["imported"]["flavour"] == "lightgbm"
    manifest = shipyard.load(tmp_path / "pkg").manifest
    assert manifest.runtime.name == "onnx"
    # the held-out rows: parity checked on them too, and profiled as the reference
    assert manifest.conversion["onnx"]["checked"]["holdout"]["rows"] == 40
    assert manifest.metadata["reference"]["source"] == "holdout"
    missing = runner.invoke(app, ["import", "mlflow", source])
    assert missing.exit_code != 0 and "--out DIR, --register" in str(missing.exception)
