"""An MLflow model's input example (``input_example.json``) as rows shipyard can package.

MLflow writes a DataFrame in pandas' ``split`` orient without the index (``{"columns": [...],
"data": [[...]]}``; no ``columns`` when they were 0..n-1), an array as nested lists, a dict of
arrays as ``{name: nested lists}``; with inference params the data sits under ``inputs``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from shipyard.errors import ConversionError
from shipyard.importers.mlflow_dir import MlflowModelDir
from shipyard.importers.mlflow_schema import TENSOR_INPUT
from shipyard.packaging import Signature

EXAMPLE_TYPES = ("dataframe", "ndarray")


def example_file(model: MlflowModelDir) -> str | None:
    """The example's path inside the model directory, None when it was saved without one."""
    info = model.example_info
    if not info:
        return None
    return str(info.get("artifact_path") or "input_example.json")


def read_example(model: MlflowModelDir, signature: Signature | None) -> Any:
    """The input example as a DataFrame (a table) or an array / dict of arrays (tensors),
    cast to the signature's dtypes; None when the model has none."""
    relative = example_file(model)
    if relative is None:
        return None
    info = model.example_info or {}
    kind = info.get("type")
    if kind not in EXAMPLE_TYPES:
        raise ConversionError(f"{model.path}: input example of type {kind!r} cannot be a "
                              f"sample of rows (shipyard reads {', '.join(EXAMPLE_TYPES)})")
    path = model.file(relative, "input example")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path} is not JSON: {exc}") from exc
    if info.get("params") and isinstance(data, dict) and "inputs" in data:
        data = data["inputs"]
    if kind == "dataframe":
        return _frame(data, signature, path.name)
    return _arrays(data, signature, path.name)


def _frame(data: Any, signature: Signature | None, where: str) -> Any:
    import pandas as pd

    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ConversionError(f"{where}: a DataFrame example needs a 'data' list of rows")
    rows = data["data"]
    columns = data.get("columns")
    if columns is None:
        width = len(rows[0]) if rows else 0
        columns = ([c.name for c in signature.inputs] if signature is not None
                   and signature.kind == "tabular" and len(signature.inputs) == width
                   else list(range(width)))
    frame = pd.DataFrame(rows, columns=columns)
    if signature is None or signature.kind != "tabular":
        return frame
    for spec in signature.inputs:
        if spec.name not in frame.columns:
            continue
        if spec.dtype == "datetime":
            frame[spec.name] = pd.to_datetime(frame[spec.name])
        elif spec.dtype != "string" and not frame[spec.name].isna().any():
            frame[spec.name] = frame[spec.name].astype(np.dtype(spec.dtype))
    return frame


def _arrays(data: Any, signature: Signature | None, where: str) -> Any:
    dtypes = {c.name: c.dtype for c in signature.inputs} if signature is not None else {}
    if isinstance(data, dict):
        if not data:
            raise ConversionError(f"{where}: an empty dict of arrays")
        return {str(k): np.asarray(v, dtype=_numpy(dtypes.get(str(k)))) for k, v in data.items()}
    if not isinstance(data, list) or not data:
        raise ConversionError(f"{where}: an array example must be a non-empty list")
    name = signature.inputs[0].name if signature is not None else TENSOR_INPUT
    return np.asarray(data, dtype=_numpy(dtypes.get(name)))


def _numpy(dtype: str | None) -> Any:
    if dtype is None or dtype == "datetime":
        return None
    return object if dtype == "string" else dtype
