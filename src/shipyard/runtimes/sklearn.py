"""Native runtime for scikit-learn-API estimators (sklearn, LightGBM, XGBoost) stored with joblib.

Used only when ONNX conversion fails or is refused. Loading unpickles, so it needs trust=True;
the loader has already checked every file's SHA-256 against the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np

from shipyard.errors import RuntimeUnavailableError, UntrustedPickleError
from shipyard.packaging import Manifest, RuntimeSpec, Signature
from shipyard.runtimes.base import Capabilities, Runtime, record_trust
from shipyard.runtimes.outputs import normalise
from shipyard.types import Columns


class SklearnRuntime(Runtime):
    """Options: ``input`` is ``dataframe`` (columns by name, needs pandas) or ``array``."""

    name = "sklearn"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._model: Any = None
        self._manifest: Manifest | None = None
        self._input = "array"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batchable=True, thread_safe=True, releases_gil=False)

    def load(self, package_dir: Path, manifest: Manifest, spec: RuntimeSpec, *,
             trust: bool = False) -> None:
        if not spec.files:
            raise RuntimeUnavailableError("sklearn runtime entry names no model file")
        if not trust:
            raise UntrustedPickleError(spec.files[0])
        record_trust(spec, f"unpickles {spec.files[0]!r}")
        self._model = joblib.load(package_dir / spec.files[0])
        self._manifest = manifest
        self._input = str(spec.options.get("input", "array"))

    def predict(self, inputs: Columns) -> Columns:
        if self._model is None or self._manifest is None:
            raise RuntimeUnavailableError("sklearn runtime used before load()")
        return predict_estimator(self._model, model_input(inputs, self._input),
                                 self._manifest.signature)

    def unload(self) -> None:
        self._model = None


def model_input(inputs: Columns, kind: str) -> Any:
    """What a fitted estimator expects: a DataFrame with the training columns, or an array."""
    if kind == "dataframe":
        import pandas as pd

        return pd.DataFrame({name: arr for name, arr in inputs.items()})
    if len(inputs) == 1:
        return next(iter(inputs.values()))
    return np.column_stack(list(inputs.values()))


def predict_estimator(model: Any, x: Any, signature: Signature) -> Columns:
    """Normalised outputs of a scikit-learn-API estimator (probabilities where it has them)."""
    if signature.task == "classification" and hasattr(model, "predict_proba"):
        return normalise({"label": np.asarray(model.predict(x)),
                          "probabilities": np.asarray(model.predict_proba(x))}, signature)
    if signature.task == "classification":
        return normalise({"label": np.asarray(model.predict(x))}, signature)
    return normalise({"value": np.asarray(model.predict(x))}, signature)
