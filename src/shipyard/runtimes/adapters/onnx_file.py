"""An existing .onnx file: the signature comes from the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ConversionError
from shipyard.packaging import ColumnSpec, RuntimeSpec, Signature
from shipyard.packaging.signature import Task
from shipyard.runtimes.adapters.base import Artifact, ModelAdapter
from shipyard.types import Columns

ONNX_FILE = "model.onnx"
_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool",
    "tensor(string)": "string",
}


class OnnxFileAdapter(ModelAdapter):
    framework = "onnx"
    native_always = True  # the file is already the native artifact

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConversionError(f"ONNX file {path} does not exist")
        self.path = path
        self.data = path.read_bytes()
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(self.data, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConversionError(f"{path} is not a loadable ONNX model: {exc}") from exc

    def signature(self, sample: Any) -> Signature:
        specs = []
        for node in self.session.get_inputs():
            if node.type not in _DTYPES:
                raise ConversionError(f"ONNX input {node.name!r} has unsupported type {node.type}")
            shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in node.shape) or (-1,)
            specs.append(ColumnSpec(node.name, _DTYPES[node.type], (-1, *shape[1:])))
        return Signature("tensor", tuple(specs))

    def task(self) -> tuple[Task, list[Any] | None]:
        return "other", None

    def native_outputs(self, sample: Any, signature: Signature) -> Columns:
        from shipyard.packaging import prepare

        columns = prepare(sample, signature)
        feeds = {k: (v.astype(str).astype(object) if v.dtype.kind in "OU" else v)
                 for k, v in columns.items()}
        names = [o.name for o in self.session.get_outputs()]
        return {n: np.asarray(v) for n, v in zip(names, self.session.run(None, feeds),
                                                  strict=True)}

    def native(self, signature: Signature, sample: Any) -> Artifact:
        return Artifact(RuntimeSpec("onnx", (ONNX_FILE,), {"feed": "tensors"}),
                        {ONNX_FILE: self.data})

    def versions(self) -> dict[str, str]:
        return {}
