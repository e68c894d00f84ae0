"""package -> save -> load -> predict reproduces the native model on held-out rows, per model kind.

Converted packages must match within the tolerance their manifest records for the ONNX parity
check; native fallbacks must match (to 1e-9). Only a native sklearn fallback may hold a pickle.
"""

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch
import xgboost
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, make_classification
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

import shipyard
from conftest import CITIES, Split, column_pipeline
from models_for_tests import MLP, LinearScorer
from shipyard import ConversionError, UntrustedPickleError
from shipyard.runtimes import parity

NATIVE_TOLERANCE = 1e-9
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


# ----------------------------------------------------------------------------------------------
# helpers


def split(x: Any, y: Any, seed: int = 0) -> Split:
    return Split(*train_test_split(x, y, test_size=0.3, random_state=seed))


def package_recording(model: Any, sample: Any, **kwargs: Any) -> tuple[shipyard.Package, list[str]]:
    """package(), plus the messages of the UserWarnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pkg = shipyard.package(model, sample, **kwargs)
    return pkg, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def fallback_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("packaging ") and "native" in m]


def package_converted(model: Any, sample: Any, **kwargs: Any) -> shipyard.Package:
    """package() that must convert to ONNX with parity, silently and without any pickle."""
    pkg, messages = package_recording(model, sample, **kwargs)
    conversion = pkg.manifest.conversion
    assert pkg.manifest.runtime.name == "onnx", conversion
    assert conversion["fallback_reason"] is None
    parity = conversion["onnx"]
    assert parity["ok"] is True
    assert parity["labels_agree"] is True
    assert 0.0 <= parity["max_abs_diff"] <= parity["tolerance"]
    assert parity["checked"]["sample"]["rows"] == len(sample)
    assert "model.onnx" in pkg.files
    assert not [name for name in pkg.files if name.endswith(PICKLE_SUFFIXES)]
    assert fallback_warnings(messages) == []
    return pkg


def pickles_in(path: Path) -> list[str]:
    return sorted(p.name for p in path.rglob("*") if p.name.endswith(PICKLE_SUFFIXES))


def save(pkg: shipyard.Package, tmp_path: Path) -> Path:
    path = pkg.save(tmp_path / pkg.name)
    assert (path / "shipyard.json").is_file()
    assert sorted(p.name for p in path.iterdir()) == sorted([*pkg.files, "shipyard.json"])
    if pkg.manifest.runtime.name == "onnx":
        assert pickles_in(path) == []
    return path


def tolerance_of(pkg: shipyard.Package) -> float:
    """The parity tolerance the manifest records for ONNX; native runtimes must be exact."""
    if pkg.manifest.runtime.name == "onnx":
        return float(pkg.manifest.conversion["onnx"]["tolerance"])
    return NATIVE_TOLERANCE


def assert_classifier_matches(loaded: shipyard.LoadedModel, model: Any, x_test: Any,
                              tolerance: float) -> shipyard.Prediction:
    pred = loaded.predict(x_test)
    expected = model.predict(x_test)
    assert len(pred) == len(x_test)
    assert pred.predictions.tolist() == expected.tolist()
    assert pred.classes == model.classes_.tolist()
    assert pred.probabilities is not None
    assert pred.probabilities.shape == (len(x_test), len(model.classes_))
    np.testing.assert_allclose(pred.probabilities, model.predict_proba(x_test),
                               rtol=0, atol=tolerance)
    return pred


# ----------------------------------------------------------------------------------------------
# scikit-learn


ENCODERS: dict[str, Callable[[], Any]] = {
    "onehot": lambda: OneHotEncoder(handle_unknown="ignore"),
    "ordinal": lambda: OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
}


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_column_transformer_pipeline_on_raw_rows(encoder: str, customers: Split,
                                                 tmp_path: Path) -> None:
    model = column_pipeline(ENCODERS[encoder]())
    model.fit(customers.x_train, customers.y_train)
    pkg = package_converted(model, customers.x_train, name=f"customers-{encoder}")

    sig = pkg.signature
    assert sig.kind == "tabular"
    assert sig.input_names == list(customers.x_train.columns)
    assert sig.input("age").dtype == "int64"
    assert sig.input("income").dtype == "float64"
    assert sig.input("city").dtype == "string"
    assert sig.input("city").categories == tuple(sorted(CITIES))
    assert pkg.manifest.runtime.options["feed"] == "columns"  # one graph input per raw column

    loaded = shipyard.load(save(pkg, tmp_path))
    assert loaded.runtime.name == "onnx"
    assert_classifier_matches(loaded, model, customers.x_test, tolerance_of(pkg))

    # a category never seen in training goes through like the native pipeline handles it
    unseen = customers.x_test.head(20).assign(city=["marseille"] * 20)
    assert_classifier_matches(loaded, model, unseen, tolerance_of(pkg))


def test_logistic_regression(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True, as_frame=True)
    data = split(x, y)
    model = LogisticRegression(max_iter=1000).fit(data.x_train, data.y_train)
    pkg = package_converted(model, data.x_train, name="iris-lr")
    loaded = shipyard.load(save(pkg, tmp_path))
    pred = assert_classifier_matches(loaded, model, data.x_test, tolerance_of(pkg))
    # a plain 2-D float array, columns in training order, gives the same answer
    from_array = loaded.predict(data.x_test.to_numpy())
    np.testing.assert_array_equal(from_array.predictions, pred.predictions)
    np.testing.assert_array_equal(from_array.probabilities, pred.probabilities)


def test_gradient_boosting_classifier(tmp_path: Path) -> None:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    data = split(x, y)
    model = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0)
    model.fit(data.x_train, data.y_train)
    pkg = package_converted(model, data.x_train, name="cancer-gbc")
    loaded = shipyard.load(save(pkg, tmp_path))
    assert_classifier_matches(loaded, model, data.x_test, tolerance_of(pkg))


def test_gradient_boosting_regressor(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    data = split(x, y)
    model = GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0)
    model.fit(data.x_train, data.y_train)
    pkg = package_converted(model, data.x_train, name="diabetes-gbr")
    assert pkg.signature.task == "regression"
    assert pkg.signature.class_labels is None
    assert [o.name for o in pkg.signature.outputs] == ["value"]
    # the value tolerance scales with the size of the targets, and the manifest says so
    assert pkg.manifest.conversion["onnx"]["tolerance"] >= parity.VALUE_RTOL * 100

    loaded = shipyard.load(save(pkg, tmp_path))
    pred = loaded.predict(data.x_test)
    assert pred.probabilities is None
    assert pred.classes is None
    assert list(pred.outputs) == ["value"]
    expected = model.predict(data.x_test)
    assert pred.predictions.shape == expected.shape
    np.testing.assert_allclose(pred.predictions, expected, rtol=0, atol=tolerance_of(pkg))


def test_random_forest_classifier_with_string_labels(tmp_path: Path) -> None:
    x, y = make_classification(n_samples=1200, n_features=12, n_informative=6, n_classes=3,
                               random_state=1)
    labels = np.array(["bronze", "gold", "silver"])[y]
    frame = pd.DataFrame(x, columns=[f"feature_{i}" for i in range(x.shape[1])])
    data = split(frame, labels)
    model = RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0)
    model.fit(data.x_train, data.y_train)
    pkg = package_converted(model, data.x_train, name="forest")
    assert pkg.signature.class_labels == ("bronze", "gold", "silver")
    loaded = shipyard.load(save(pkg, tmp_path))
    pred = assert_classifier_matches(loaded, model, data.x_test, tolerance_of(pkg))
    assert set(pred.predictions.tolist()) <= {"bronze", "gold", "silver"}


@pytest.fixture(scope="module")
def hgb() -> tuple[HistGradientBoostingClassifier, Split]:
    x, y = make_classification(n_samples=900, n_features=10, n_informative=6, n_classes=3,
                               random_state=2)
    data = split(x, y)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    return model.fit(data.x_train, data.y_train), data


def test_hist_gradient_boosting_converts_with_parity_or_falls_back_cleanly(
        hgb: tuple[HistGradientBoostingClassifier, Split], tmp_path: Path) -> None:
    model, data = hgb
    pkg, messages = package_recording(model, data.x_train, name="hgb")
    conversion = pkg.manifest.conversion
    path = save(pkg, tmp_path)
    if pkg.manifest.runtime.name == "onnx":
        assert conversion["fallback_reason"] is None
        assert conversion["onnx"]["ok"] is True
        assert fallback_warnings(messages) == []
        loaded = shipyard.load(path)
    else:
        assert pkg.manifest.runtime.name == "sklearn"
        reason = conversion["fallback_reason"]
        assert isinstance(reason, str)
        assert reason.startswith("ONNX conversion failed")
        warned = fallback_warnings(messages)
        assert len(warned) == 1
        assert "'sklearn' runtime" in warned[0]
        assert reason in warned[0]
        assert pickles_in(path) == ["model.joblib"]
        with pytest.raises(UntrustedPickleError):
            shipyard.load(path)
        loaded = shipyard.load(path, trust=True)
        assert loaded.runtime.name == "sklearn"
    assert_classifier_matches(loaded, model, data.x_test, tolerance_of(pkg))


def test_format_onnx_refuses_the_native_fallback(
        hgb: tuple[HistGradientBoostingClassifier, Split]) -> None:
    model, data = hgb
    auto, _ = package_recording(model, data.x_train, name="hgb")
    if auto.manifest.runtime.name == "onnx":
        strict = package_converted(model, data.x_train, name="hgb", format="onnx")
        assert [r.name for r in strict.manifest.runtimes] == ["onnx"]
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(ConversionError, match="cannot convert to ONNX"):
                shipyard.package(model, data.x_train, name="hgb", format="onnx")
        # refusing is not falling back: nothing says "packaging ... with the native runtime"
        assert fallback_warnings([str(w.message) for w in caught]) == []


def test_parity_failure_falls_back_or_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """The parity gate is real: if ONNX outputs differ beyond tolerance, ONNX is not shipped."""
    x, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    monkeypatch.setattr(parity, "PROBA_TOLERANCE", -1.0)  # no difference passes: not even 0

    pkg, messages = package_recording(model, x, name="strict-parity")
    conversion = pkg.manifest.conversion
    assert pkg.manifest.runtime.name == "sklearn"
    assert conversion["onnx"]["ok"] is False
    assert conversion["onnx"]["max_abs_diff"] > conversion["onnx"]["tolerance"]
    assert "differ" in conversion["fallback_reason"]
    assert len(fallback_warnings(messages)) == 1
    assert "model.onnx" not in pkg.files
    loaded = shipyard.load(save(pkg, tmp_path), trust=True)
    assert_classifier_matches(loaded, model, x, NATIVE_TOLERANCE)

    with pytest.raises(ConversionError, match="differ"):
        shipyard.package(model, x, name="strict-parity", format="onnx")


def test_format_native_skips_conversion(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True, as_frame=True)
    data = split(x, y)
    model = LogisticRegression(max_iter=1000).fit(data.x_train, data.y_train)
    pkg, messages = package_recording(model, data.x_train, name="native-lr", format="native")
    assert [r.name for r in pkg.manifest.runtimes] == ["sklearn"]
    assert pkg.manifest.conversion["onnx"] is None
    assert pkg.manifest.conversion["fallback_reason"] is None  # asked for, not a fallback
    assert fallback_warnings(messages) == []
    assert sorted(pkg.files) == ["input_example.json", "model.joblib", "profile.bin"]

    path = save(pkg, tmp_path)
    assert pickles_in(path) == ["model.joblib"]
    with pytest.raises(UntrustedPickleError):
        shipyard.load(path)
    loaded = shipyard.load(path, trust=True)
    assert loaded.runtime.name == "sklearn"
    assert_classifier_matches(loaded, model, data.x_test, NATIVE_TOLERANCE)


# ----------------------------------------------------------------------------------------------
# LightGBM and XGBoost


@pytest.mark.parametrize("as_frame", [True, False], ids=["dataframe", "array"])
def test_lightgbm_classifier(as_frame: bool, tmp_path: Path) -> None:
    # breast cancer's column names contain spaces, which LightGBM renames internally
    x, y = load_breast_cancer(return_X_y=True, as_frame=as_frame)
    data = split(x, y)
    model = lightgbm.LGBMClassifier(n_estimators=40, num_leaves=15, random_state=0, verbose=-1)
    model.fit(data.x_train, data.y_train)
    pkg = package_converted(model, data.x_train, name="cancer-lgbm")
    assert pkg.signature.kind == ("tabular" if as_frame else "tensor")
    loaded = shipyard.load(save(pkg, tmp_path))
    assert_classifier_matches(loaded, model, data.x_test, tolerance_of(pkg))


def test_xgboost_classifier(tmp_path: Path) -> None:
    x, y = make_classification(n_samples=1000, n_features=8, n_informative=5, n_classes=3,
                               random_state=3)
    data = split(x, y)
    model = xgboost.XGBClassifier(n_estimators=40, max_depth=3, random_state=0)
    model.fit(data.x_train, data.y_train)
    pkg = package_converted(model, data.x_train, name="xgb")
    loaded = shipyard.load(save(pkg, tmp_path))
    assert_classifier_matches(loaded, model, data.x_test, tolerance_of(pkg))


def test_xgboost_trained_on_a_dataframe_predicts_like_native(tmp_path: Path) -> None:
    """Whether or not this converts, the package answers like the model (never silently wrong)."""
    x, y = load_iris(return_X_y=True, as_frame=True)
    data = split(x, y)
    model = xgboost.XGBClassifier(n_estimators=30, max_depth=3, random_state=0)
    model.fit(data.x_train, data.y_train)
    pkg, messages = package_recording(model, data.x_train, name="xgb-frame")
    fell_back = pkg.manifest.runtime.name != "onnx"
    assert (pkg.manifest.conversion["fallback_reason"] is not None) == fell_back
    assert bool(fallback_warnings(messages)) == fell_back
    loaded = shipyard.load(save(pkg, tmp_path), trust=fell_back)
    assert_classifier_matches(loaded, model, data.x_test, tolerance_of(pkg))


# ----------------------------------------------------------------------------------------------
# torch


def test_torch_mlp_onnx_and_torch_runtimes(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
    data = split(x, y)
    kwargs = {"n_in": 4, "hidden": 12, "n_out": 3}  # not MLP's defaults: the kwargs must travel
    torch.manual_seed(0)
    model = MLP(**kwargs)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    inputs, targets = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimiser.step()
    model.eval()

    pkg = package_converted(model, data.x_train, name="mlp", model_kwargs=kwargs)
    assert [r.name for r in pkg.manifest.runtimes] == ["onnx", "torch"]
    torch_spec = pkg.manifest.runtime_spec("torch")
    assert torch_spec.options["module_class"] == "models_for_tests:MLP"
    assert torch_spec.options["init_kwargs"] == kwargs
    # a tensor's rows are not in a profile: a sample of them is kept for `shipyard optimize`
    assert sorted(pkg.files) == ["input_example.json", "model.onnx", "reference_rows.npz",
                                 "weights.safetensors"]
    assert pkg.manifest.metadata["reference"]["rows_file"] == "reference_rows.npz"
    assert pkg.signature.kind == "tensor"
    assert pkg.signature.inputs[0].shape == (-1, 4)

    with torch.no_grad():
        expected = model(torch.from_numpy(data.x_test)).numpy()
    path = save(pkg, tmp_path)

    default = shipyard.load(path)
    assert default.runtime.name == "onnx"
    via_onnx = default.predict(data.x_test).predictions
    assert via_onnx.shape == expected.shape
    np.testing.assert_allclose(via_onnx, expected, rtol=0, atol=tolerance_of(pkg))

    native = shipyard.load(path, runtime="torch", trust=True)  # imports MLP
    assert native.runtime.name == "torch"
    via_torch = native.predict(data.x_test).predictions
    np.testing.assert_allclose(via_torch, expected, rtol=1e-6, atol=1e-6)

    np.testing.assert_array_equal(via_onnx.argmax(axis=1), via_torch.argmax(axis=1))
    # clients usually send float64: it is cast to the module's float32, same answer
    np.testing.assert_allclose(default.predict(data.x_test.astype(np.float64)).predictions,
                               via_onnx, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# custom Python models and existing ONNX files


@pytest.mark.parametrize("as_path", [False, True], ids=["instance", "import-path"])
def test_custom_python_model(as_path: bool, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.integers(-50, 50, 300), "b": rng.normal(0.0, 10.0, 300)})
    train, test = frame.iloc[:200], frame.iloc[200:]
    kwargs = {"weight": 2.5, "bias": -1.0}
    model = "models_for_tests:LinearScorer" if as_path else LinearScorer(**kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # custom models never convert to ONNX
        pkg = shipyard.package(model, train, name="scorer", model_kwargs=kwargs)
    spec = pkg.manifest.runtime
    assert spec.name == "python"
    assert spec.options["model_class"] == "models_for_tests:LinearScorer"
    assert spec.options["init_kwargs"] == kwargs
    assert sorted(pkg.files) == ["input_example.json", "profile.bin"]  # no pickle
    assert [o.name for o in pkg.signature.outputs] == ["score", "flag"]

    path = save(pkg, tmp_path)
    assert pickles_in(path) == []
    loaded = shipyard.load(path, trust=True)  # imports the class: needs trust
    pred = loaded.predict(test)
    expected = LinearScorer(**kwargs).predict(test)
    assert list(pred.outputs) == ["score", "flag"]
    np.testing.assert_allclose(pred.outputs["score"], expected["score"], rtol=0,
                               atol=NATIVE_TOLERANCE)
    np.testing.assert_array_equal(pred.outputs["flag"], expected["flag"])
    np.testing.assert_array_equal(pred.predictions, pred.outputs["score"])


@pytest.fixture(scope="module")
def iris_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression, Split]:
    x, y = load_iris(return_X_y=True)
    data = split(x.astype(np.float32), y)
    model = LogisticRegression(max_iter=1000).fit(data.x_train, data.y_train)
    onx = to_onnx(model, data.x_train[:1], options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    path = tmp_path_factory.mktemp("onnx") / "iris-lr.onnx"
    path.write_bytes(onx.SerializeToString())
    return path, model, data


@pytest.mark.parametrize("with_sample", [False, True], ids=["no-sample", "sample"])
def test_existing_onnx_file(with_sample: bool, tmp_path: Path,
                            iris_onnx: tuple[Path, LogisticRegression, Split]) -> None:
    onnx_path, model, data = iris_onnx
    sample = data.x_train if with_sample else None
    pkg = shipyard.package(str(onnx_path), sample, name="raw-onnx")
    assert [r.name for r in pkg.manifest.runtimes] == ["onnx"]
    assert pkg.files["model.onnx"] == onnx_path.read_bytes()  # shipped as is
    assert pkg.manifest.conversion["source"] == "onnx"
    assert pkg.manifest.conversion["fallback_reason"] is None
    assert pkg.signature.kind == "tensor"
    (spec,) = pkg.signature.inputs
    assert (spec.dtype, spec.shape) == ("float32", (-1, 4))
    assert (pkg.manifest.input_example is not None) == with_sample
    assert ("input_example.json" in pkg.files) == with_sample
    if with_sample:
        assert [o.name for o in pkg.signature.outputs] == ["label", "probabilities"]
        assert pkg.manifest.metadata["sample_rows"] == len(data.x_train)

    loaded = shipyard.load(save(pkg, tmp_path))
    pred = loaded.predict(data.x_test)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {spec.name: data.x_test})
    np.testing.assert_array_equal(pred.outputs["label"], label)
    np.testing.assert_allclose(pred.outputs["probabilities"], proba, rtol=0, atol=NATIVE_TOLERANCE)
    assert pred.predictions.tolist() == model.predict(data.x_test).tolist()
    np.testing.assert_allclose(pred.probabilities, model.predict_proba(data.x_test),
                               rtol=0, atol=1e-5)


def test_existing_onnx_file_accepts_a_path_object(
        iris_onnx: tuple[Path, LogisticRegression, Split]) -> None:
    onnx_path, _, _ = iris_onnx
    pkg = shipyard.package(onnx_path, None, name="raw-onnx")
    assert pkg.files["model.onnx"] == onnx_path.read_bytes()


# ----------------------------------------------------------------------------------------------
# input forms


def test_predict_accepts_every_input_form(customers: Split,
                                          customer_model: tuple[Pipeline, shipyard.Package],
                                          tmp_path: Path) -> None:
    model, pkg = customer_model
    loaded = shipyard.load(save(pkg, tmp_path))
    rows = customers.x_test.head(40)
    reference = loaded.predict(rows)
    assert reference.predictions.tolist() == model.predict(rows).tolist()

    forms: dict[str, Any] = {
        "dict of lists": {c: rows[c].tolist() for c in rows.columns},
        "dict of arrays": {c: rows[c].to_numpy() for c in rows.columns},
        "list of records": rows.to_dict("records"),
        "2-D numpy array": rows.to_numpy(),
        "columns in another order": rows[list(reversed(rows.columns))],
    }
    for form, data in forms.items():
        got = loaded.predict(data)
        np.testing.assert_array_equal(got.predictions, reference.predictions, err_msg=form)
        np.testing.assert_array_equal(got.probabilities, reference.probabilities, err_msg=form)


def test_a_converted_graph_that_crashes_falls_back(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """A conversion whose graph fails at run time is a failed conversion, not a crash."""
    from shipyard.runtimes import onnx as onnx_runtime

    def explode(self: object, inputs: object) -> object:
        raise RuntimeError("graph broke")

    x, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    monkeypatch.setattr(onnx_runtime.OnnxRuntime, "predict", explode)
    with pytest.warns(UserWarning, match="fails on the sample"):
        pkg = shipyard.package(model, x, name="lr")
    assert pkg.manifest.runtime.name == "sklearn"
    assert "graph broke" in pkg.manifest.conversion["fallback_reason"]
