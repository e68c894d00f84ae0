"""Arrow columns in, arrow columns out: which input columns feed the model, how a record
batch becomes what ``prepare`` takes, and how a ``Prediction`` becomes output columns.

Output columns have the names ``Prediction.to_pandas`` gives: ``prediction``, then
``proba_<class>`` per class for classifiers; any further output keeps its own name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from shipyard.packaging import Signature
from shipyard.packaging.signature import NUMERIC_DTYPES
from shipyard.stores.table_sources import InputError
from shipyard.types import Array, Columns


@dataclass(frozen=True)
class InputPlan:
    """How the file's columns feed the signature's inputs.

    ``by_input``: input name -> the file column holding it. ``stacked``: a tensor model with
    one 2-D input of width k and no column of its name takes the file's other columns (all
    but the passthrough ones, in file order) stacked into one (rows, k) matrix."""

    signature: Signature
    by_input: dict[str, str]
    stacked: tuple[str, ...] = ()

    @property
    def read_columns(self) -> list[str]:
        return list(self.stacked) if self.stacked else list(self.by_input.values())

    def numeric_columns(self) -> list[str]:
        """The file columns the model reads as numbers (a CSV reads them as text first)."""
        if self.stacked:
            return list(self.stacked)
        return [col for name, col in self.by_input.items()
                if self.signature.input(name).dtype in NUMERIC_DTYPES]


def plan_inputs(signature: Signature, names: Sequence[str],
                passthrough: Sequence[str]) -> InputPlan:
    """The plan for a file with columns ``names``, or InputError naming what is missing."""
    wanted = signature.input_names
    present = [n for n in wanted if n in names]
    if len(present) == len(wanted):
        return InputPlan(signature, {n: n for n in wanted})
    if signature.kind == "tensor" and len(signature.inputs) == 1:
        spec = signature.inputs[0]
        features = tuple(n for n in names if n not in passthrough)
        width = spec.shape[1] if len(spec.shape) == 2 else None
        if width is not None and (width == -1 or width == len(features)) and features:
            return InputPlan(signature, {}, features)
        raise InputError(
            f"the model takes one input {spec.name!r} of shape {list(spec.shape)}: give a "
            f"column {spec.name!r} of lists, or {width} feature columns besides the "
            f"passthrough ones (the input has {len(features)}: {list(features)[:10]})")
    missing = [n for n in wanted if n not in names]
    raise InputError(f"the input lacks the model's columns {missing} (it has {list(names)})")


def to_numpy(column: pa.Array | pa.ChunkedArray, *, numeric: bool = False) -> Array:
    """A column as numpy, as pandas would give it: nulls NaN in numbers, None in objects.
    ``numeric``: text (a CSV column) parsed as numbers; a value that is not one stays a
    string, so validation rejects its row alone."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_decimal(column.type):  # validation takes ints and floats, not Decimals
        column = column.cast(pa.float64())
    if numeric and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return _parse_numbers(column)
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type) \
            or pa.types.is_large_list(column.type):
        return _list_matrix(column)
    plain = _PLAIN.get(column.type)
    if plain is not None and column.null_count == 0:  # the usual case, without a copy
        return np.frombuffer(column.buffers()[1], dtype=plain, count=len(column),
                             offset=column.offset * plain.itemsize)
    return np.asarray(column.to_numpy(zero_copy_only=False))


# Arrow's fixed-width numbers and their numpy dtypes: read straight from the values buffer
# (``Array.to_numpy`` imports pandas, ~0.25 s of a batch run's start, when it is installed)
_PLAIN: dict[pa.DataType, np.dtype[Any]] = {
    t: np.dtype(d) for t, d in [
        (pa.float64(), "<f8"), (pa.float32(), "<f4"), (pa.int64(), "<i8"),
        (pa.int32(), "<i4"), (pa.int16(), "<i2"), (pa.int8(), "i1"), (pa.uint64(), "<u8"),
        (pa.uint32(), "<u4"), (pa.uint16(), "<u2"), (pa.uint8(), "u1")]}
_ARROW: dict[np.dtype[Any], pa.DataType] = {d: t for t, d in _PLAIN.items()}


def _parse_numbers(column: pa.Array) -> Array:
    try:
        return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = np.empty(len(column), dtype=object)
    for i, value in enumerate(column.to_pylist()):
        out[i] = _number(value)
    return out


def _number(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _list_matrix(column: pa.Array) -> Array:
    """A column of equal-length lists as a (rows, width) matrix; ragged lists as objects."""
    if column.null_count == 0 and len(column):
        if pa.types.is_fixed_size_list(column.type):
            width = column.type.list_size
        else:
            import pyarrow.compute as pc  # ~30 ms to import: only for list columns

            lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
            width = int(lengths[0]) if (lengths == lengths[0]).all() else -1
        if width >= 0:
            values = column.flatten().to_numpy(zero_copy_only=False)
            return np.asarray(values).reshape(len(column), width)
    out = np.empty(len(column), dtype=object)
    out[:] = [None if v is None else np.asarray(v) for v in column.to_pylist()]
    return out


def model_input(plan: InputPlan, batch: pa.RecordBatch) -> Any:
    """What ``prepare`` takes for these rows: a matrix for a one-input tensor model (the
    validation's fast path), else a dict of columns."""
    numeric = set(plan.numeric_columns())
    if plan.stacked:
        parts = [to_numpy(batch.column(c), numeric=c in numeric) for c in plan.stacked]
        if all(p.dtype == parts[0].dtype for p in parts) and parts[0].dtype.kind in "iufb":
            matrix = np.empty((batch.num_rows, len(parts)), dtype=parts[0].dtype)
            for i, part in enumerate(parts):
                matrix[:, i] = part
            return matrix
        return np.column_stack([p.astype(object) for p in parts])
    data: Columns = {name: to_numpy(batch.column(col), numeric=col in numeric)
                     for name, col in plan.by_input.items()}
    if plan.signature.kind == "tensor" and len(data) == 1:
        return next(iter(data.values()))
    return data


def rows_of(data: Any, index: slice | Array) -> Any:
    """The rows ``index`` of what ``model_input`` gave."""
    if isinstance(data, dict):
        return {k: v[index] for k, v in data.items()}
    return data[index]


def output_columns(outputs: Columns, signature: Signature) -> dict[str, pa.Array]:
    """A prediction's outputs as arrow columns, named as ``Prediction.to_pandas`` names them."""
    out: dict[str, pa.Array] = {}
    main = next((n for n in ("label", "value") if n in outputs), next(iter(outputs)))
    out["prediction"] = arrow_column(outputs[main])
    labels = signature.class_labels
    for name, arr in outputs.items():
        if name == main:
            continue
        if name == "probabilities" and labels is not None:
            for i, label in enumerate(labels):
                out[f"proba_{label}"] = arrow_column(np.ascontiguousarray(arr[:, i]))
        else:
            out[name] = arrow_column(arr)
    return out


def arrow_column(arr: Array) -> pa.Array:
    if arr.dtype.kind == "O":
        return pa.array(arr.tolist())
    if arr.ndim > 1:
        width = int(np.prod(arr.shape[1:]))
        return pa.FixedSizeListArray.from_arrays(
            arrow_column(np.ascontiguousarray(arr).reshape(-1)), width)
    plain = _ARROW.get(arr.dtype)
    if plain is not None:  # wraps the array's own buffer (and keeps it alive)
        arr = np.ascontiguousarray(arr)
        return pa.Array.from_buffers(plain, len(arr), [None, pa.py_buffer(arr)])
    return pa.array(arr)
