"""An MLflow model directory: its ``MLmodel`` file read (YAML), its flavour picked.

Nothing here loads the model: reading ``MLmodel`` runs no code of the model's author.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import ConversionError

MLMODEL_FILE = "MLmodel"
# the flavours shipyard imports, in the order it prefers them when a directory has several
FLAVOURS = ("sklearn", "xgboost", "lightgbm", "pytorch", "python_model")
PYFUNC = "python_function"
PYFUNC_LOADER = "mlflow.pyfunc.model"  # pyfunc's loader for a python model (PythonModel)


class NotAnMlflowModelError(ConversionError):
    """The path is not an MLflow model directory (no ``MLmodel`` file, or not a mapping)."""


class UnsupportedFlavourError(ConversionError):
    """The MLflow model has none of the flavours shipyard imports."""


@dataclass(frozen=True)
class MlflowModelDir:
    """What ``MLmodel`` says: flavours (name -> their settings), the signature (JSON
    strings), the input example's description, and where the model came from."""

    path: Path
    flavours: Mapping[str, Mapping[str, Any]]
    signature: Mapping[str, Any] | None = None
    example_info: Mapping[str, Any] | None = None
    run_id: str | None = None
    model_id: str | None = None
    mlflow_version: str | None = None
    created: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def flavour(self) -> str:
        """The flavour shipyard imports: ``python_model`` for a pyfunc python model."""
        for name in FLAVOURS:
            if name == "python_model":
                if self.flavours.get(PYFUNC, {}).get("loader_module") == PYFUNC_LOADER:
                    return name
            elif name in self.flavours:
                return name
        found = ", ".join(sorted(self.flavours)) or "none"
        raise UnsupportedFlavourError(
            f"{self.path} has MLflow flavours {found}; shipyard imports sklearn, xgboost, "
            "lightgbm, pytorch and python_function with a python model (mlflow.pyfunc."
            "PythonModel)")

    def settings(self, flavour: str | None = None) -> Mapping[str, Any]:
        """The ``MLmodel`` settings of ``flavour`` (default: the imported one)."""
        name = flavour or self.flavour
        return self.flavours[PYFUNC if name == "python_model" else name]

    def file(self, relative: Any, what: str) -> Path:
        """A file or folder the model names, kept inside the model directory."""
        if not isinstance(relative, str) or not relative:
            raise ConversionError(f"{self.path}/{MLMODEL_FILE} names no {what}")
        root = self.path.resolve()
        target = (root / relative).resolve()
        if not target.is_relative_to(root):
            raise ConversionError(f"{self.path}/{MLMODEL_FILE}: {what} {relative!r} is outside "
                                  "the model directory")
        if not target.exists():
            raise ConversionError(f"{self.path}: {what} {relative!r} is missing")
        return target


def read_model_dir(path: str | Path) -> MlflowModelDir:
    """Read ``PATH/MLmodel``; NotAnMlflowModelError when PATH is not an MLflow model."""
    root = Path(path)
    mlmodel = root / MLMODEL_FILE
    if not root.is_dir():
        raise NotAnMlflowModelError(f"{root} is not a directory: an MLflow model is a directory "
                                    f"holding an {MLMODEL_FILE} file")
    if not mlmodel.is_file():
        raise NotAnMlflowModelError(f"{root} is not an MLflow model: it has no {MLMODEL_FILE} "
                                    "file (give the model's directory, e.g. mlruns/.../artifacts"
                                    ", or a runs:/RUN_ID/PATH URI)")
    doc = _yaml(mlmodel)
    flavours = doc.get("flavors")
    if not isinstance(flavours, Mapping) or not all(isinstance(v, Mapping)
                                                    for v in flavours.values()):
        raise NotAnMlflowModelError(f"{mlmodel} has no 'flavors' mapping: not an MLflow model")
    signature = doc.get("signature")
    example = doc.get("saved_input_example_info")
    return MlflowModelDir(
        path=root, flavours={str(k): dict(v) for k, v in flavours.items()},
        signature=signature if isinstance(signature, Mapping) else None,
        example_info=example if isinstance(example, Mapping) else None,
        run_id=_text(doc.get("run_id")), model_id=_text(doc.get("model_id")),
        mlflow_version=_text(doc.get("mlflow_version")),
        created=_text(doc.get("utc_time_created")), raw=doc)


def _yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - pyyaml comes with the mlflow extra
        raise ConversionError("reading MLflow's MLmodel file needs PyYAML: pip install "
                              "'shipyard-ml[mlflow]'") from exc
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise NotAnMlflowModelError(f"{path} is not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise NotAnMlflowModelError(f"{path} is not an MLflow MLmodel file (not a mapping)")
    return doc


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
