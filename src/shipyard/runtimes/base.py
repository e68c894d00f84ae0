"""The one interface every runtime implements, and the table of known runtimes."""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from shipyard.errors import RuntimeUnavailableError, UntrustedCodeError
from shipyard.packaging import Manifest, RuntimeSpec
from shipyard.settings import Settings
from shipyard.types import Columns

trust_log = logging.getLogger("shipyard.trust")


@dataclass(frozen=True)
class Capabilities:
    """What a runtime promises; the server and batcher read these instead of probing.

    batchable: predicting N rows at once equals predicting them one by one.
    thread_safe: ``predict`` may run on several threads at once.
    releases_gil: inference runs outside the GIL, so threads give real parallelism.
    """

    batchable: bool = True
    thread_safe: bool = True
    releases_gil: bool = False
    device: str = "cpu"


class Runtime(ABC):
    """Runs a loaded package. Constructors only store settings; ``load`` does the work.

    ``predict`` takes validated columns (``Signature`` order and dtypes) and returns normalised
    outputs: ``label`` + ``probabilities`` for classifiers, ``value`` for regressors, the
    model's own names otherwise. Every output's first axis is rows.
    """

    name: ClassVar[str]

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def load(self, package_dir: Path, manifest: Manifest, spec: RuntimeSpec, *,
             trust: bool = False) -> None:
        """Read the files ``spec`` names (hashes are already verified) and get ready.
        Unpickle or import what the package names only with ``trust`` (``import_named``)."""

    @abstractmethod
    def predict(self, inputs: Columns) -> Columns: ...

    def unload(self) -> None:  # noqa: B027 - optional hook, nothing to free by default
        """Free what ``load`` took."""


RUNTIMES: dict[str, str] = {
    "onnx": "shipyard.runtimes.onnx:OnnxRuntime",
    "sklearn": "shipyard.runtimes.sklearn:SklearnRuntime",
    "torch": "shipyard.runtimes.torch:TorchRuntime",
    "python": "shipyard.runtimes.python:PythonRuntime",
    "mlflow": "shipyard.runtimes.mlflow_pyfunc:MlflowPyfuncRuntime",
}


def runtime_class(name: str) -> type[Runtime]:
    """The Runtime class registered under ``name`` (imported on first use)."""
    if name not in RUNTIMES:
        raise RuntimeUnavailableError(f"unknown runtime {name!r}; known: {sorted(RUNTIMES)}")
    module_name, _, attr = RUNTIMES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = {"sklearn": "sklearn", "torch": "torch"}.get(name, name)
        raise RuntimeUnavailableError(
            f"runtime {name!r} needs an optional dependency that is not installed ({exc.name}); "
            f"install it with: pip install 'shipyard-ml[{extra}]'") from exc
    cls: type[Runtime] = getattr(module, attr)
    return cls


def import_named(spec: RuntimeSpec, option: str, *, trust: bool) -> object:
    """The object a package's runtime entry names in ``option`` (``module:attr``), imported
    only with trust: importing a module runs its code, and the manifest chose the module
    (``subprocess:run`` is an import path too). Every runtime that imports what a package
    names goes through here, so ``load``, the server and the inference process share it."""
    path = str(spec.options.get(option, ""))
    if not trust:
        raise UntrustedCodeError(f"{spec.name} runtime {option} {path!r}")
    record_trust(spec, f"imports {path!r}")
    return import_object(path)


def record_trust(spec: RuntimeSpec, action: str) -> None:
    """Say, every time, that trust let a package run code (DESIGN: every trust decision is
    recorded): the server's log and the CLI's output carry it."""
    trust_log.warning("trusted package: the %s runtime %s (trust=True)", spec.name, action)


def import_object(path: str) -> object:
    """The object at ``module:attr`` (or ``module.attr``). Runs the module's code: for a
    path a package names, use ``import_named``."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise RuntimeUnavailableError(f"{path!r} is not an import path like 'package.module:Name'")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise RuntimeUnavailableError(f"cannot import {path!r}: {exc}") from exc
    return obj


def import_path_of(cls: type) -> str:
    """``module:QualName`` for a class, refusing classes that cannot be imported again."""
    module = cls.__module__
    local = "<locals>" in cls.__qualname__
    if module == "__main__" or local:
        where = f"{module!r}" + (" inside a function" if local else "")
        raise RuntimeUnavailableError(
            f"class {cls.__qualname__} is defined in {where}; move it into an importable "
            "module so the package can rebuild it")
    return f"{module}:{cls.__qualname__}"
