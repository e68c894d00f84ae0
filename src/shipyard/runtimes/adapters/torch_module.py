"""PyTorch modules: safetensors weights for the torch runtime, plus an ONNX export."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shipyard.errors import ConversionError, RuntimeUnavailableError
from shipyard.packaging import ColumnSpec, RuntimeSpec, Signature
from shipyard.packaging.inference import dtype_name
from shipyard.packaging.signature import Task
from shipyard.runtimes.adapters.base import (
    REBUILD_CHECK_ROWS,
    Artifact,
    ModelAdapter,
    failure_text,
    package_versions,
    rebuilt_answers_differ,
)
from shipyard.runtimes.base import import_path_of
from shipyard.runtimes.outputs import normalise
from shipyard.types import Array, Columns

ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "weights.safetensors"


class TorchAdapter(ModelAdapter):
    framework = "torch"
    native_always = True

    def __init__(self, module: torch.nn.Module, init_kwargs: dict[str, Any]) -> None:
        self.module = module
        self.init_kwargs = init_kwargs
        self.output_names: list[str] = ["output"]

    def _arrays(self, sample: Any) -> dict[str, Array]:
        if isinstance(sample, torch.Tensor):
            sample = sample.detach().cpu().numpy()
        if isinstance(sample, np.ndarray):
            return {"input": sample}
        if isinstance(sample, dict):
            return {str(k): np.asarray(v.detach().cpu().numpy() if isinstance(v, torch.Tensor)
                                       else v) for k, v in sample.items()}
        raise ConversionError("a torch model's sample must be a numpy array, a tensor, or a "
                              "dict of them (one per forward() argument)")

    def signature(self, sample: Any) -> Signature:
        param = next(self.module.parameters(), None)
        float_dtype = str(param.dtype).removeprefix("torch.") if param is not None else "float32"
        specs = []
        for name, arr in self._arrays(sample).items():
            dtype = dtype_name(arr)
            if dtype.startswith("float"):
                dtype = float_dtype  # clients send float64; the module computes in its own type
            specs.append(ColumnSpec(name, dtype, (-1, *arr.shape[1:])))
        return Signature("tensor", tuple(specs))

    def task(self) -> tuple[Task, list[Any] | None]:
        return "other", None

    def _tensors(self, sample: Any, signature: Signature) -> list[torch.Tensor]:
        arrays = self._arrays(sample)
        return [torch.from_numpy(np.ascontiguousarray(arrays[s.name], dtype=s.dtype))
                for s in signature.inputs]

    def native_outputs(self, sample: Any, signature: Signature) -> Columns:
        self.module.eval()
        with torch.inference_mode():
            result = self.module(*self._tensors(sample, signature))
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        if len(outputs) > 1:
            self.output_names = [f"output_{i}" for i in range(len(outputs))]
        return normalise({n: o.detach().cpu().numpy()
                          for n, o in zip(self.output_names, outputs, strict=True)}, signature)

    def to_onnx(self, signature: Signature, sample: Any) -> Artifact:
        args = tuple(self._tensors(sample, signature))
        names = signature.input_names
        axes = {n: {0: "rows"} for n in [*names, *self.output_names]}
        errors = []
        # The TorchScript exporter is ~50x faster for plain modules; dynamo handles the rest.
        for dynamo in (False, True):
            with tempfile.TemporaryDirectory(prefix="shipyard-torch-") as tmp:
                path = Path(tmp) / ONNX_FILE
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        torch.onnx.export(self.module, args, str(path), input_names=names,
                                          output_names=self.output_names, dynamic_axes=axes,
                                          dynamo=dynamo)
                except Exception as exc:  # exporters raise many kinds; report and go on
                    errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                    continue
                data = path.read_bytes()
            return Artifact(RuntimeSpec("onnx", (ONNX_FILE,), {"feed": "tensors"}),
                            {ONNX_FILE: data})
        raise ConversionError("; ".join(errors))

    def native(self, signature: Signature, sample: Any) -> Artifact:
        from safetensors.torch import save

        try:
            path = import_path_of(type(self.module))
        except RuntimeUnavailableError as exc:
            raise ConversionError(f"the torch runtime cannot rebuild this module: {exc}") from exc
        state = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        self._check_rebuild(state, signature, sample)
        options = {"module_class": path, "init_kwargs": self.init_kwargs,
                   "output_names": self.output_names}
        return Artifact(RuntimeSpec("torch", (WEIGHTS_FILE,), options),
                        {WEIGHTS_FILE: save(state)})

    def _check_rebuild(self, state: dict[str, torch.Tensor], signature: Signature,
                       sample: Any) -> None:
        """Rebuild the module as the torch runtime will (class + init kwargs + weights) and
        compare its outputs: a runtime that cannot is never listed. A torch.nn.Sequential, for
        one, rebuilds empty from its class alone and then refuses its own weights."""
        try:
            rebuilt = type(self.module)(**self.init_kwargs)
            rebuilt.load_state_dict(state)
        except Exception as exc:  # constructors and load_state_dict raise many kinds
            raise ConversionError(
                f"the torch runtime cannot rebuild this {type(self.module).__name__} from its "
                f"class, model_kwargs={self.init_kwargs!r} and weights: {failure_text(exc)}; "
                "pass model_kwargs that rebuild it, or use a module class whose constructor "
                "builds its layers") from exc
        if sample is None:
            return
        head = {k: v[:REBUILD_CHECK_ROWS] for k, v in self._arrays(sample).items()}
        name = rebuilt_answers_differ(self, "module", rebuilt, head, signature)
        if name is not None:
            raise ConversionError(
                f"the torch runtime's rebuilt {type(self.module).__name__} (class, "
                f"model_kwargs={self.init_kwargs!r}, weights) answers differently from "
                f"the module given (output {name!r}): pass the model_kwargs that rebuild it")

    def versions(self) -> dict[str, str]:
        return package_versions(["torch", "safetensors"])
