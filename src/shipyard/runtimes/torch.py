"""Native PyTorch runtime: rebuilds the module from its class and safetensors weights.

No pickle: the class is imported by path (only with trust: importing runs the module's code)
and built with the recorded keyword arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from shipyard.errors import RuntimeUnavailableError
from shipyard.packaging import Manifest, RuntimeSpec
from shipyard.runtimes.base import Capabilities, Runtime, import_named
from shipyard.runtimes.outputs import normalise
from shipyard.types import Columns


class TorchRuntime(Runtime):
    """Options: ``module_class`` (import path), ``init_kwargs``, ``output_names``."""

    name = "torch"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._module: torch.nn.Module | None = None
        self._manifest: Manifest | None = None
        self._output_names: list[str] = ["output"]
        self._device = "cpu"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batchable=True, thread_safe=True, releases_gil=True,
                            device=self._device)

    def load(self, package_dir: Path, manifest: Manifest, spec: RuntimeSpec, *,
             trust: bool = False) -> None:
        cls = import_named(spec, "module_class", trust=trust)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise RuntimeUnavailableError(f"{spec.options['module_class']} is not a torch module")
        module = cls(**dict(spec.options.get("init_kwargs", {})))
        module.load_state_dict(load_file(str(package_dir / spec.files[0])))
        if self.settings.device != "cpu" and torch.cuda.is_available():
            self._device = "cuda"
        self._module = module.to(self._device).eval()
        self._manifest = manifest
        self._output_names = list(spec.options.get("output_names", ["output"]))

    def predict(self, inputs: Columns) -> Columns:
        if self._module is None or self._manifest is None:
            raise RuntimeUnavailableError("torch runtime used before load()")
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[spec.name])).to(self._device)
                   for spec in self._manifest.signature.inputs]
        with torch.inference_mode():
            result = self._module(*tensors)
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        raw = {name: out.detach().cpu().numpy()
               for name, out in zip(self._output_names, outputs, strict=True)}
        return normalise(raw, self._manifest.signature)

    def unload(self) -> None:
        self._module = None
