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

    def probe_rows(self, artifact: Artifact, signature: Signature, base: Columns) -> Any:
        """Rows (as a sample gives them) that the parity check must also pass, built from the
        ``base`` columns: tree models move them onto their split thresholds. None: none."""
        return None

    @abstractmethod
    def native(self, signature: Signature, sample: Any) -> Artifact:
        """The artifact for the native runtime (raises ConversionError if there is none)."""

    def versions(self) -> dict[str, str]:
        return package_versions([self.framework])


REBUILD_CHECK_ROWS = 64  # rows on which a rebuilt model must answer as the given one


def rebuilt_answers_differ(adapter: ModelAdapter, attr: str, rebuilt: Any, head: Any,
                           signature: Signature) -> str | None:
    """Run ``head`` through the adapter with its model (attribute ``attr``) swapped for
    ``rebuilt``, then through the model given: the first output that differs (see
    ``rebuilt_differs``), None when none does."""
    original = getattr(adapter, attr)
    try:
        setattr(adapter, attr, rebuilt)
        got = adapter.native_outputs(head, signature)
    finally:
        setattr(adapter, attr, original)
    return rebuilt_differs(adapter.native_outputs(head, signature), got)


def rebuilt_differs(want: Columns, got: Columns) -> str | None:
    """The first output on which a model rebuilt as its runtime will (class + kwargs, plus
    weights for torch) answers differently from the model given; None when none does."""
    import numpy as np

    for name, arr in want.items():
        other = got.get(name)
        if other is None or other.shape != arr.shape:
            return name
        if arr.dtype.kind in "iufb" and other.dtype.kind in "iufb":
            if not np.allclose(other, arr, rtol=1e-5, atol=1e-6, equal_nan=True):
                return name
        elif not np.array_equal(other, arr):
            return name
    return None


def failure_text(exc: BaseException, *, limit: int = 2000) -> str:
    """An exception and its causes, root cause first: type and message of each.

    Converters wrap the real error (``TypeError: ... Expected an int, got a boolean``) in
    one whose message dumps every attribute of a node; each outer message keeps its first
    line only, and a message longer than ``limit`` is cut with a note saying so.
    """
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    root, outer = chain[-1], chain[-2::-1]
    text = _message(root, limit, first_line=False)
    if outer:
        text += " (raised as " + " <- ".join(_message(e, 300, first_line=True)
                                             for e in outer) + ")"
    return text


def _message(exc: BaseException, limit: int, *, first_line: bool) -> str:
    message = str(exc).strip()
    if first_line and "\n" in message:
        message = message.splitlines()[0] + " ..."
    if len(message) > limit:
        message = f"{message[:limit]} ... [{len(message) - limit} more characters]"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


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
