"""A package loaded into a runtime, and what its predictions look like."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import PackageError
from shipyard.packaging import Manifest, Signature, prepare, verify_files
from shipyard.packaging.validation import UnknownCategories
from shipyard.runtimes.base import Runtime, runtime_class
from shipyard.settings import Settings
from shipyard.types import Array, Columns

if TYPE_CHECKING:
    from shipyard.profiles import Profile


@dataclass(frozen=True)
class Prediction:
    """Normalised model outputs for a batch of rows.

    ``predictions`` is the label (classifiers), the value (regressors) or the first output;
    ``probabilities`` has one column per class, in ``classes`` order.
    """

    outputs: Columns
    signature: Signature

    @property
    def predictions(self) -> Array:
        for name in ("label", "value"):
            if name in self.outputs:
                return self.outputs[name]
        return next(iter(self.outputs.values()))

    @property
    def probabilities(self) -> Array | None:
        return self.outputs.get("probabilities")

    @property
    def classes(self) -> list[Any] | None:
        labels = self.signature.class_labels
        return None if labels is None else list(labels)

    def __len__(self) -> int:
        return len(self.predictions)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``predictions`` plus ``probabilities`` as {class: [per row]} if any."""
        out: dict[str, Any] = {"predictions": _json_list(self.predictions)}
        proba, classes = self.probabilities, self.classes
        if proba is not None and classes is not None:
            out["probabilities"] = {str(c): proba[:, i].tolist() for i, c in enumerate(classes)}
        for name, arr in self.outputs.items():
            if name not in ("label", "value", "probabilities"):
                out.setdefault("outputs", {})[name] = _json_list(arr)
        return out

    def to_pandas(self) -> Any:
        """A DataFrame: ``prediction`` plus ``proba_<class>`` columns for classifiers."""
        import pandas as pd

        frame = pd.DataFrame({"prediction": list(self.predictions)
                              if self.predictions.ndim > 1 else self.predictions})
        proba, classes = self.probabilities, self.classes
        if proba is not None and classes is not None:
            for i, c in enumerate(classes):
                frame[f"proba_{c}"] = proba[:, i]
        return frame


def _json_list(arr: Array) -> list[Any]:
    if arr.dtype.kind == "M":
        return [str(v) for v in arr]
    return arr.tolist()  # type: ignore[no-any-return]


class VerifiedPackage:
    """A package whose files were verified, read without a runtime: its manifest, input
    checks and reference profile. The server holds one for a model whose inference process
    loads the runtime (``describe``); ``LoadedModel`` adds the runtime."""

    def __init__(self, path: Path, manifest: Manifest, runtime_name: str) -> None:
        self.path = path
        self.manifest = manifest
        self.runtime_name = runtime_name

    @property
    def signature(self) -> Signature:
        return self.manifest.signature

    @property
    def name(self) -> str:
        return self.manifest.name

    def prepare(self, data: Any, *, unknown_categories: UnknownCategories = "pass",
                finite: bool = False) -> Columns:
        """``data`` checked against the signature and coerced (InputValidationError if not);
        ``finite``: float arrays hold no NaN (parsed from strict JSON), see ``prepare``."""
        return prepare(data, self.signature, unknown_categories=unknown_categories,
                       finite=finite)

    def reference_profile(self) -> Profile | None:
        """The profile of the packaging sample and its outputs (the monitoring reference);
        None for a package made before profiles existed. Its bytes were verified at load."""
        from shipyard.profiles import Profile  # DataSketches loads only when monitoring asks

        if self.manifest.reference_profile is None:
            return None
        path = self.path / self.manifest.reference_profile
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PackageError(f"cannot read the reference profile {path}: {exc}") from exc
        return Profile.from_bytes(data)

    def close(self) -> None:
        """Release what loading took (nothing without a runtime)."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, runtime={self.runtime_name!r}, "
                f"path={str(self.path)!r})")


class LoadedModel(VerifiedPackage):
    """A verified package running on a runtime. Build with ``shipyard.load``."""

    def __init__(self, path: Path, manifest: Manifest, runtime: Runtime) -> None:
        super().__init__(path, manifest, runtime.name)
        self.runtime = runtime

    def predict(self, data: Any, *, unknown_categories: UnknownCategories = "pass") -> Prediction:
        """Predict on a DataFrame, a dict of columns, a list of records or a numpy array."""
        columns = self.prepare(data, unknown_categories=unknown_categories)
        return Prediction(self.runtime.predict(columns), self.signature)

    def predict_columns(self, columns: Columns) -> Prediction:
        """Predict on columns already prepared (the server's hot path)."""
        return Prediction(self.runtime.predict(columns), self.signature)

    def close(self) -> None:
        self.runtime.unload()


def describe(path: str | Path, *, runtime: str | None = None,
             model_files: bool = True) -> VerifiedPackage:
    """A package directory's manifest, every file's SHA-256 verified, without loading a
    runtime (no model code runs, nothing is unpickled). ``runtime`` must be one of the
    package's runtimes (default: its first). ``model_files=False`` leaves out the files the
    runtimes read: for a caller whose inference process loads (and so verifies) them, which
    would otherwise read a large model twice."""
    package_dir = Path(path)
    manifest = Manifest.read(package_dir)
    skip = set() if model_files else {f for spec in manifest.runtimes for f in spec.files}
    verify_files(package_dir, [f for f in manifest.files if f.path not in skip])
    spec = manifest.runtime if runtime is None else manifest.runtime_spec(runtime)
    return VerifiedPackage(package_dir, manifest, spec.name)


def load(path: str | Path, *, trust: bool = False, runtime: str | None = None,
         settings: Settings | None = None) -> LoadedModel:
    """Load a package directory, verifying every file's SHA-256 first.

    ``runtime`` picks one of the package's runtimes (default: its first). Pickled models, and
    classes the package names (custom Python models, torch modules), load only with
    ``trust=True`` (``UntrustedCodeError`` otherwise, before any of their code runs).
    """
    package = describe(path, runtime=runtime)
    manifest = package.manifest
    spec = manifest.runtime_spec(package.runtime_name)
    engine = runtime_class(spec.name)(settings)
    engine.load(package.path, manifest, spec, trust=trust)
    return LoadedModel(package.path, manifest, engine)


def max_abs_diff(a: Array, b: Array) -> float:
    """Largest absolute difference between two numeric arrays (inf if shapes differ)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        return float("inf")
    return float(np.max(np.abs(x - y))) if x.size else 0.0
