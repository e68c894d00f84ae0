"""One adapter per model family: how to read its task, run it natively and convert it.

``adapter_for(model)`` picks the adapter; the packager drives it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from shipyard.errors import ConversionError
from shipyard.runtimes.adapters.base import Artifact, ModelAdapter

SKLEARN_API_MODULES = ("sklearn", "lightgbm", "xgboost")


def adapter_for(model: Any, model_kwargs: dict[str, Any]) -> ModelAdapter:
    """The adapter for ``model``; ConversionError naming what is supported if none fits.
    An adapter given as the model is used as it is (importers build their own)."""
    if isinstance(model, ModelAdapter):
        return model
    if isinstance(model, (str, Path)) and str(model).endswith(".onnx"):
        from shipyard.runtimes.adapters.onnx_file import OnnxFileAdapter

        return OnnxFileAdapter(Path(model))
    if isinstance(model, str):
        from shipyard.runtimes.adapters.custom import CustomAdapter

        return CustomAdapter.from_import_path(model, model_kwargs)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        from shipyard.runtimes.adapters.torch_module import TorchAdapter

        return TorchAdapter(model, model_kwargs)
    root = type(model).__module__.split(".")[0]
    if root in SKLEARN_API_MODULES and hasattr(model, "predict"):
        from shipyard.runtimes.adapters.sklearn_api import SklearnAdapter

        return SklearnAdapter(model)
    if callable(getattr(model, "predict", None)):
        from shipyard.runtimes.adapters.custom import CustomAdapter

        return CustomAdapter(model, model_kwargs)
    raise ConversionError(
        f"cannot package a {type(model).__module__}.{type(model).__qualname__}: pass a "
        "scikit-learn/LightGBM/XGBoost estimator or Pipeline, a torch.nn.Module, a path to an "
        ".onnx file, or a custom model (an object with predict(), or its 'module:Class' path)")


__all__ = ["Artifact", "ModelAdapter", "adapter_for"]
