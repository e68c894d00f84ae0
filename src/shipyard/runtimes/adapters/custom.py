"""Custom Python models: any class with ``predict``, rebuilt from its import path and kwargs."""

from __future__ import annotations

from typing import Any

from shipyard.errors import ConversionError, RuntimeUnavailableError
from shipyard.packaging import RuntimeSpec, Signature
from shipyard.packaging.inference import infer_signature
from shipyard.packaging.signature import Task
from shipyard.packaging.tabular import is_dataframe
from shipyard.runtimes.adapters.base import Artifact, ModelAdapter
from shipyard.runtimes.base import import_object, import_path_of
from shipyard.runtimes.outputs import normalise
from shipyard.runtimes.python import custom_outputs
from shipyard.runtimes.sklearn import model_input
from shipyard.types import Columns


class CustomAdapter(ModelAdapter):
    framework = "python"
    converts_to_onnx = False

    def __init__(self, model: Any, init_kwargs: dict[str, Any], path: str | None = None) -> None:
        self.model = model
        self.init_kwargs = init_kwargs
        try:
            self.path = path or import_path_of(type(model))
        except RuntimeUnavailableError as exc:
            raise ConversionError(str(exc)) from exc
        self.input = "columns"

    @classmethod
    def from_import_path(cls, path: str, init_kwargs: dict[str, Any]) -> CustomAdapter:
        try:
            factory = import_object(path)
        except RuntimeUnavailableError as exc:
            raise ConversionError(str(exc)) from exc
        if not callable(factory):
            raise ConversionError(f"{path!r} is not a class")
        return cls(factory(**init_kwargs), init_kwargs, path)

    def signature(self, sample: Any) -> Signature:
        sig = infer_signature(sample)
        self.input = ("dataframe" if is_dataframe(sample)
                      else "array" if sig.kind == "tensor" else "columns")
        return sig

    def task(self) -> tuple[Task, list[Any] | None]:
        return "other", None

    def native_outputs(self, sample: Any, signature: Signature) -> Columns:
        from shipyard.packaging import prepare

        columns = prepare(sample, signature)
        x = columns if self.input == "columns" else model_input(columns, self.input)
        return normalise(custom_outputs(self.model.predict(x)), signature)

    def native(self, signature: Signature, sample: Any) -> Artifact:
        options = {"model_class": self.path, "init_kwargs": self.init_kwargs, "input": self.input}
        return Artifact(RuntimeSpec("python", (), options))
