"""ONNX Runtime: the default runtime. Pickle-free, fast, and inference runs outside the GIL."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from shipyard.errors import RuntimeUnavailableError
from shipyard.packaging import Manifest, RuntimeSpec
from shipyard.runtimes.base import Capabilities, Runtime
from shipyard.runtimes.onnx_external import check_external_data
from shipyard.runtimes.outputs import normalise
from shipyard.types import Array, Columns

_ONNX_NUMPY = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def session_options(intra_op_threads: int, inter_op_threads: int) -> ort.SessionOptions:
    """Options for serving: explicit thread counts, all graph optimisations, quiet logs."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = inter_op_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # idle intra-op threads would otherwise spin for a while after every run: in a server
    # that burned ~50 us of CPU per request, on the cores the event loop needs
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntime(Runtime):
    """Feeds columns to an ONNX graph.

    Options (set by the packager): ``feed`` is ``columns`` (one graph input per column, shape
    (N, 1)), ``stacked`` (all columns as one (N, k) matrix named ``input_name``) or ``tensors``
    (inputs by name); ``outputs`` maps shipyard's output names to graph output names.
    """

    name = "onnx"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._session: ort.InferenceSession | None = None
        self._input_types: dict[str, Any] = {}
        self._options: Mapping[str, Any] = {}
        self._manifest: Manifest | None = None

    @property
    def capabilities(self) -> Capabilities:
        device = "cpu"
        if self._session is not None and "CUDAExecutionProvider" in self._session.get_providers():
            device = "cuda"
        return Capabilities(batchable=True, thread_safe=True, releases_gil=True, device=device)

    def load(self, package_dir: Path, manifest: Manifest, spec: RuntimeSpec, *,
             trust: bool = False) -> None:
        if not spec.files:
            raise RuntimeUnavailableError("onnx runtime entry names no model file")
        opts = session_options(self.settings.ort_intra_op_threads,
                               self.settings.ort_inter_op_threads)
        path = package_dir / spec.files[0]
        check_external_data(path, spec.files[1:])
        self._session = ort.InferenceSession(str(path), sess_options=opts,
                                             providers=providers(self.settings.device))
        self._input_types = {i.name: _ONNX_NUMPY.get(i.type, np.float32)
                             for i in self._session.get_inputs()}
        self._options = spec.options
        self._manifest = manifest

    def predict(self, inputs: Columns) -> Columns:
        if self._session is None or self._manifest is None:
            raise RuntimeUnavailableError("onnx runtime used before load()")
        feeds = self.feeds(inputs)
        names = [o.name for o in self._session.get_outputs()]
        raw = dict(zip(names, self._session.run(None, feeds), strict=True))
        mapping: Mapping[str, str] = self._options.get("outputs") or {n: n for n in names}
        return normalise({ours: raw[theirs] for ours, theirs in mapping.items()},
                         self._manifest.signature)

    def feeds(self, inputs: Columns) -> dict[str, Array]:
        """What the graph is given for these columns (also static quantisation's
        calibration batches)."""
        feed = self._options.get("feed", "tensors")
        if feed == "stacked":
            name = str(self._options["input_name"])
            order = self._options.get("columns") or list(inputs)
            matrix = np.column_stack([inputs[c] for c in order])
            return {name: _cast(matrix, self._input_types[name])}
        renames: Mapping[str, str] = self._options.get("input_names", {})
        out = {}
        for col, arr in inputs.items():
            name = renames.get(col, col)
            value = arr.reshape(-1, 1) if feed == "columns" and arr.ndim == 1 else arr
            out[name] = _cast(value, self._input_types[name])
        return out

    def unload(self) -> None:
        self._session = None


def _cast(arr: Array, dtype: Any) -> Array:
    if dtype is np.object_:
        if arr.dtype.kind == "O":
            return np.where([v is None for v in arr.ravel()], "", arr.ravel()).reshape(
                arr.shape).astype(object)
        return arr.astype(str).astype(object)
    if arr.dtype.kind == "M":
        arr = arr.astype("int64")
    return np.ascontiguousarray(arr, dtype=dtype)
