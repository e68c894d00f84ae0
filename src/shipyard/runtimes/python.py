"""Runtime for a custom Python model: any class with ``predict``, rebuilt from its import path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import RuntimeUnavailableError
from shipyard.packaging import Manifest, RuntimeSpec
from shipyard.runtimes.base import Capabilities, Runtime, import_named
from shipyard.runtimes.outputs import normalise
from shipyard.runtimes.sklearn import model_input
from shipyard.types import Columns


class PythonRuntime(Runtime):
    """Options: ``model_class``, ``init_kwargs``, ``input`` (dataframe | columns | array).

    ``predict`` may return an array (output ``prediction``) or a dict of named arrays.
    The class is user code: it is imported only with trust, and assumed not thread-safe.
    """

    name = "python"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._model: Any = None
        self._manifest: Manifest | None = None
        self._input = "columns"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batchable=True, thread_safe=False, releases_gil=False)

    def load(self, package_dir: Path, manifest: Manifest, spec: RuntimeSpec, *,
             trust: bool = False) -> None:
        cls = import_named(spec, "model_class", trust=trust)
        if not callable(cls):
            raise RuntimeUnavailableError(f"{spec.options['model_class']} is not a class")
        model = cls(**dict(spec.options.get("init_kwargs", {})))
        if not callable(getattr(model, "predict", None)):
            raise RuntimeUnavailableError(f"{spec.options['model_class']} has no predict()")
        self._model = model
        self._manifest = manifest
        self._input = str(spec.options.get("input", "columns"))

    def predict(self, inputs: Columns) -> Columns:
        if self._model is None or self._manifest is None:
            raise RuntimeUnavailableError("python runtime used before load()")
        x = dict(inputs) if self._input == "columns" else model_input(inputs, self._input)
        return normalise(custom_outputs(self._model.predict(x)), self._manifest.signature)


def custom_outputs(result: Any) -> dict[str, Any]:
    if isinstance(result, Mapping):
        return {str(k): np.asarray(v) for k, v in result.items()}
    return {"prediction": np.asarray(result)}
