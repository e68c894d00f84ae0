"""What every model adapter provides to the packager."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from shipyard.errors import ConversionError
from shipyard.packaging import RuntimeSpec, Signature
from shipyard.packaging.signature import Task
from shipyard.types import Columns


@dataclass
class Artifact:
    """Files (name -> bytes) and the runtime entry that reads them."""

    runtime: RuntimeSpec
    files: dict[str, bytes] = field(default_factory=dict)


class ModelAdapter(ABC):
    """Reads one family of models. Constructors store the model; nothing runs until asked."""

    framework: str = ""
    native_always: bool = False  # ship the native artifact even when ONNX passes parity
    converts_to_onnx: bool = True  # False: native is the only way, and no fallback warning

    @abstractmethod
    def signature(self, sample: Any) -> Signature:
        """Input signature (outputs come later, from native predictions)."""

    @abstractmethod
    def task(self) -> tuple[Task, list[Any] | None]:
        """The task and, for classifiers, the class labels."""

    @abstractmethod
    def native_outputs(self, sample: Any, signature: Signature) -> Columns:
        """Normalised outputs of the model itself on the sample: the parity reference."""

    def to_onnx(self, signature: Signature, sample: Any) -> Artifact:
        raise ConversionError(f"{self.framework} models have no ONNX converter")

    @abstractmethod
    def native(self, signature: Signature, sample: Any) -> Artifact:
        """The artifact for the native runtime (raises ConversionError if there is none)."""

    def versions(self) -> dict[str, str]:
        return package_versions([self.framework])


def package_versions(names: list[str]) -> dict[str, str]:
    out = {}
    for name in names:
        dist = {"sklearn": "scikit-learn", "xgboost": "xgboost-cpu"}.get(name, name)
        for candidate in (dist, name):
            try:
                out[name] = metadata.version(candidate)
                break
            except metadata.PackageNotFoundError:
                continue
    return out
