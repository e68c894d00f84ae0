"""Custom Python models: any class with ``predict``, rebuilt from its import path and kwargs."""

from __future__ import annotations

from typing import Any

from shipyard.errors import ConversionError, RuntimeUnavailableError
from shipyard.packaging import RuntimeSpec, Signature
from shipyard.packaging.inference import infer_signature
from shipyard.packaging.signature import Task
from shipyard.packaging.tabular import is_dataframe
from shipyard.runtimes.adapters.base import (
    REBUILD_CHECK_ROWS,
    Artifact,
    ModelAdapter,
    failure_text,
    rebuilt_answers_differ,
)
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
        self._check_rebuild(signature, sample)
        options = {"model_class": self.path, "init_kwargs": self.init_kwargs, "input": self.input}
        return Artifact(RuntimeSpec("python", (), options))

    def _check_rebuild(self, signature: Signature, sample: Any) -> None:
        """The python runtime rebuilds the model from its class and ``model_kwargs`` alone:
        one whose constructor was given other arguments, or that learned state after it, would
        be packaged as a different model. Rebuild it here and compare on the sample's head."""
        if sample is None:
            return
        try:
            rebuilt = type(self.model)(**self.init_kwargs)
        except Exception as exc:  # a user constructor raises anything
            raise ConversionError(
                f"the python runtime cannot rebuild this {type(self.model).__name__} from "
                f"{self.path} with model_kwargs={self.init_kwargs!r}: {failure_text(exc)}; "
                "pass the model_kwargs that rebuild it") from exc
        head = _head(sample, REBUILD_CHECK_ROWS)
        name = rebuilt_answers_differ(self, "model", rebuilt, head, signature)
        if name is not None:
            raise ConversionError(
                f"the python runtime rebuilds {self.path} from model_kwargs="
                f"{self.init_kwargs!r}, and that model answers differently from the one "
                f"given (output {name!r}): pass the model_kwargs its constructor was given; a "
                "model with learned state cannot be a custom python package")


def _head(sample: Any, rows: int) -> Any:
    """The first ``rows`` rows of a DataFrame, an array or a dict of columns."""
    if isinstance(sample, dict):
        return {k: v[:rows] for k, v in sample.items()}
    if hasattr(sample, "iloc"):
        return sample.iloc[:rows]
    return sample[:rows] if hasattr(sample, "__getitem__") else sample
