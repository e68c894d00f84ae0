"""Runtimes (onnx, sklearn, torch, python) behind one interface, plus packaging and loading.

Importing this room is cheap: each runtime and converter imports its framework on first use,
and the names below load their module when first asked for (``runtimes.model`` for a batch
run or a server loads no packager, converter or profile code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_names

if TYPE_CHECKING:
    from shipyard.runtimes.base import RUNTIMES, Capabilities, Runtime, runtime_class
    from shipyard.runtimes.conformance import ConformanceError, check_runtime
    from shipyard.runtimes.model import LoadedModel, Prediction, load
    from shipyard.runtimes.packager import Package, package

_LAZY = {
    "RUNTIMES": "shipyard.runtimes.base", "Capabilities": "shipyard.runtimes.base",
    "Runtime": "shipyard.runtimes.base", "runtime_class": "shipyard.runtimes.base",
    "ConformanceError": "shipyard.runtimes.conformance",
    "check_runtime": "shipyard.runtimes.conformance",
    "LoadedModel": "shipyard.runtimes.model", "Prediction": "shipyard.runtimes.model",
    "load": "shipyard.runtimes.model",
    "Package": "shipyard.runtimes.packager", "package": "shipyard.runtimes.packager",
}

__all__ = [
    "RUNTIMES", "Capabilities", "ConformanceError", "LoadedModel", "Package", "Prediction",
    "Runtime", "check_runtime", "load", "package", "runtime_class",
]


__getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
