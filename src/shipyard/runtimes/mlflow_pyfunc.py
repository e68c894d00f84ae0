"""Runtime for an MLflow pyfunc model kept whole in the package (``mlflow_model/``).

The native fallback of ``shipyard import mlflow`` for models no converter reads (a pyfunc
python model): ``mlflow.pyfunc.load_model`` on the package's copy of the MLflow directory,
whose every file the manifest hashes. It unpickles the author's code, so it needs trust, and
it needs ``mlflow`` (``mlflow-skinny`` is enough) installed where the package is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import RuntimeUnavailableError, UntrustedPickleError
from shipyard.packaging import Manifest, RuntimeSpec
from shipyard.runtimes.base import Capabilities, Runtime, record_trust
from shipyard.runtimes.outputs import normalise
from shipyard.runtimes.sklearn import model_input
from shipyard.types import Columns

MODEL_DIR = "mlflow_model"


class MlflowPyfuncRuntime(Runtime):
    """Options: ``model_dir`` (the MLflow directory inside the package), ``input``
    (``dataframe`` for a table, ``array`` for one tensor, ``columns`` for several)."""

    name = "mlflow"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._model: Any = None
        self._manifest: Manifest | None = None
        self._input = "dataframe"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batchable=True, thread_safe=False, releases_gil=False)

    def load(self, package_dir: Path, manifest: Manifest, spec: RuntimeSpec, *,
             trust: bool = False) -> None:
        folder = str(spec.options.get("model_dir", MODEL_DIR))
        root = package_dir.resolve()
        target = (root / folder).resolve()
        if not target.is_relative_to(root) or not (target / "MLmodel").is_file():
            raise RuntimeUnavailableError(f"mlflow runtime: no MLflow model at {folder!r} "
                                          "inside the package")
        if not trust:
            raise UntrustedPickleError(f"{folder}/ (an MLflow pyfunc model)")
        try:
            import mlflow.pyfunc
        except ImportError as exc:
            raise RuntimeUnavailableError("runtime 'mlflow' needs mlflow: pip install "
                                          "mlflow-skinny") from exc
        record_trust(spec, f"loads the MLflow pyfunc model in {folder!r}")
        self._model = mlflow.pyfunc.load_model(str(target))
        self._manifest = manifest
        self._input = str(spec.options.get("input", "dataframe"))

    def predict(self, inputs: Columns) -> Columns:
        if self._model is None or self._manifest is None:
            raise RuntimeUnavailableError("mlflow runtime used before load()")
        return pyfunc_predict(self._model, inputs, self._input, self._manifest)

    def unload(self) -> None:
        self._model = None


def pyfunc_predict(model: Any, inputs: Columns, kind: str, manifest: Manifest | None,
                   signature: Any = None) -> Columns:
    """A pyfunc model's answer on validated columns, normalised like every runtime's."""
    x = dict(inputs) if kind == "columns" else model_input(inputs, kind)
    result = model.predict(x)
    return normalise(pyfunc_outputs(result),
                     manifest.signature if manifest is not None else signature)


def pyfunc_outputs(result: Any) -> dict[str, Any]:
    """A DataFrame's columns, a dict's items, or one array named ``prediction``."""
    if hasattr(result, "columns") and hasattr(result, "to_numpy"):
        return {str(c): np.asarray(result[c].to_numpy()) for c in result.columns}
    if isinstance(result, Mapping):
        return {str(k): np.asarray(v) for k, v in result.items()}
    if hasattr(result, "to_numpy"):
        return {"prediction": np.asarray(result.to_numpy())}
    return {"prediction": np.asarray(result)}
