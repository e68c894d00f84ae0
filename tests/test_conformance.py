"""Every built-in runtime passes check_runtime(); a broken runtime does not."""

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import shipyard
from conformance_models import Threshold, TinyMLP
from shipyard.runtimes import ConformanceError, check_runtime, runtime_class
from shipyard.runtimes.onnx import OnnxRuntime
from shipyard.types import Columns


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    return load_iris(return_X_y=True, as_frame=True)


def _save(pkg: shipyard.Package, tmp_path: Path) -> Path:
    return pkg.save(tmp_path / "pkg")


def test_onnx_runtime_conforms(iris: tuple[Any, Any], tmp_path: Path) -> None:
    x, y = iris
    path = _save(shipyard.package(LogisticRegression(max_iter=1000).fit(x, y), x, name="lr"),
                 tmp_path)
    passed = check_runtime(runtime_class("onnx"), path)
    assert "a batch equals its rows predicted one by one" in passed
    assert "concurrent predicts agree" in passed
    assert "probabilities sum to 1" in passed


def test_sklearn_runtime_conforms(iris: tuple[Any, Any], tmp_path: Path) -> None:
    x, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pkg = shipyard.package(HistGradientBoostingClassifier(max_iter=10).fit(x, y), x,
                               name="hgb", format="native")
    path = _save(pkg, tmp_path)
    assert "labels are class labels" in check_runtime(runtime_class("sklearn"), path, trust=True)
    with pytest.raises(shipyard.UntrustedPickleError):
        check_runtime(runtime_class("sklearn"), path, trust=False)


def test_torch_runtime_conforms(tmp_path: Path) -> None:
    torch.manual_seed(0)
    sample = np.random.default_rng(0).normal(size=(32, 4))
    path = _save(shipyard.package(TinyMLP(), sample, name="mlp"), tmp_path)
    assert "unload" in check_runtime(runtime_class("torch"), path, runtime="torch",
                                  trust=True)
    assert "unload" in check_runtime(runtime_class("onnx"), path, runtime="onnx")


def test_python_runtime_conforms(iris: tuple[Any, Any], tmp_path: Path) -> None:
    x, _ = iris
    path = _save(shipyard.package(Threshold(), x, name="rule"), tmp_path)
    passed = check_runtime(runtime_class("python"), path, trust=True)
    assert "concurrent predicts agree" not in passed  # python runtime is not thread-safe
    assert "predict is deterministic" in passed


class DropsARow(OnnxRuntime):
    def predict(self, inputs: Columns) -> Columns:
        return {k: v[:-1] for k, v in super().predict(inputs).items()}


class Noisy(OnnxRuntime):
    def predict(self, inputs: Columns) -> Columns:
        out = super().predict(inputs)
        out["probabilities"] = out["probabilities"] + np.random.default_rng().normal(0, 1e-3)
        return out


class MutatesInput(OnnxRuntime):
    def predict(self, inputs: Columns) -> Columns:
        out = super().predict(inputs)
        next(iter(inputs.values()))[0] = 1e6
        return out


@pytest.mark.parametrize(("broken", "check"), [
    (DropsARow, "one row per input row"),
    (Noisy, "deterministic"),
    (MutatesInput, "not mutated"),
])
def test_broken_runtimes_fail_conformance(iris: tuple[Any, Any], tmp_path: Path,
                                          broken: type[OnnxRuntime], check: str) -> None:
    x, y = iris
    path = _save(shipyard.package(LogisticRegression(max_iter=1000).fit(x, y), x, name="lr"),
                 tmp_path)
    with pytest.raises(ConformanceError, match=check):
        check_runtime(broken, path)
