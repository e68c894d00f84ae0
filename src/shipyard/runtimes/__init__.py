"""Runtimes (onnx, sklearn, torch, python) behind one interface, plus packaging and loading.

Importing this room is cheap: each runtime and converter imports its framework on first use.
"""

from shipyard.runtimes.base import RUNTIMES, Capabilities, Runtime, runtime_class
from shipyard.runtimes.conformance import ConformanceError, check_runtime
from shipyard.runtimes.model import LoadedModel, Prediction, load
from shipyard.runtimes.packager import Package, package

__all__ = [
    "RUNTIMES", "Capabilities", "ConformanceError", "LoadedModel", "Package", "Prediction",
    "Runtime", "check_runtime", "load", "package", "runtime_class",
]
