"""An MLflow pyfunc model (a python model), packaged whole for the ``mlflow`` runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.errors import ConversionError
from shipyard.packaging import RuntimeSpec, Signature, prepare
from shipyard.packaging.inference import infer_signature
from shipyard.packaging.signature import Task
from shipyard.runtimes.adapters.base import Artifact, ModelAdapter, package_versions
from shipyard.runtimes.mlflow_pyfunc import MODEL_DIR, pyfunc_predict
from shipyard.types import Columns


class MlflowPyfuncAdapter(ModelAdapter):
    """``model`` is what ``mlflow.pyfunc.load_model(model_dir)`` returned."""

    framework = "mlflow"
    converts_to_onnx = False

    def __init__(self, model_dir: Path, model: Any) -> None:
        self.model_dir = Path(model_dir)
        self.model = model

    def signature(self, sample: Any) -> Signature:
        return infer_signature(sample)

    def task(self) -> tuple[Task, list[Any] | None]:
        return "other", None

    def native_outputs(self, sample: Any, signature: Signature) -> Columns:
        return pyfunc_predict(self.model, prepare(sample, signature), _input(signature), None,
                              signature)

    def native(self, signature: Signature, sample: Any) -> Artifact:
        links = [p for p in self.model_dir.rglob("*") if p.is_symlink()]
        if links:  # a link could copy any file of this machine into the package
            raise ConversionError(f"{self.model_dir} holds symbolic links ("
                                  f"{', '.join(str(p) for p in links[:3])}): copy the "
                                  "model without them")
        files = {f"{MODEL_DIR}/{p.relative_to(self.model_dir).as_posix()}": p.read_bytes()
                 for p in sorted(self.model_dir.rglob("*"))
                 if p.is_file() and "__pycache__" not in p.parts}
        return Artifact(RuntimeSpec("mlflow", tuple(files),
                                    {"model_dir": MODEL_DIR, "input": _input(signature)}), files)

    def versions(self) -> dict[str, str]:
        return package_versions(["mlflow", "mlflow-skinny", "cloudpickle"])


def _input(signature: Signature) -> str:
    if signature.kind == "tabular":
        return "dataframe"
    return "array" if len(signature.inputs) == 1 else "columns"
