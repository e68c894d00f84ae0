"""SimpleImputer in ONNX that fills in the input's own precision.

skl2onnx writes a numeric SimpleImputer as the ``ai.onnx.ml`` Imputer operator, whose fill
values are float32 and which ONNX Runtime computes in float32: every column after it (a
scaler, the model) is then rounded to float32 even in a double graph, which is within 1e-4
for linear models but flips tree splits (a Pipeline of SimpleImputer, StandardScaler and
gradient boosting differed by 3e-3 on held-out rows). Here the imputer becomes
``Where(IsNaN(x), statistics, x)`` (or ``Equal(x, missing_values)``) in the input's type,
with the fitted statistics as a tensor of that type: what scikit-learn computes, exactly.

``imputer_overrides(parts)`` gives skl2onnx's custom converters and shape calculators for the
SimpleImputers it can replace (numeric, no dropped columns; ``add_indicator``, which
skl2onnx's converter leaves out, becomes the 0/1 columns scikit-learn appends); any other
keeps skl2onnx's converter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Converter = Callable[..., Any]


def imputer_overrides(parts: list[Any]) -> tuple[dict[type, Converter], dict[type, Converter]]:
    """(converters, shape calculators) for the SimpleImputers among ``parts``."""
    from skl2onnx.common._registration import get_converter, get_shape_calculator

    found = [est for est in parts
             if type(est).__name__ == "SimpleImputer" and _replaceable(est)]
    if found:
        base: Converter = get_converter("SklearnSimpleImputer")
        shape: Converter = get_shape_calculator("SklearnSimpleImputer")
        cls = type(found[0])
        return ({cls: lambda scope, op, container: _convert(scope, op, container, base)},
                {cls: lambda op: _shape(op, shape)})
    return {}, {}


def _shape(operator: Any, base: Converter) -> None:
    """skl2onnx's shape, plus the indicator columns its converter leaves out."""
    base(operator)
    extra = len(_indicator_columns(operator.raw_operator))
    width = operator.outputs[0].type.shape[1]
    if extra and width is not None:
        operator.outputs[0].type.shape = [operator.outputs[0].type.shape[0], width + extra]


def _indicator_columns(est: Any) -> list[int]:
    indicator = getattr(est, "indicator_", None)
    return [] if indicator is None else [int(c) for c in getattr(indicator, "features_", [])]


def _replaceable(est: Any) -> bool:
    stats = np.asarray(getattr(est, "statistics_", np.array(["?"])))
    missing = est.missing_values
    numeric_missing = isinstance(missing, (int, float)) and not isinstance(missing, bool)
    return (stats.dtype.kind in "fiu" and not np.any(np.isnan(stats.astype(np.float64)))
            and numeric_missing)


def _convert(scope: Any, operator: Any, container: Any, base: Converter) -> None:
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType, StringTensorType

    est = operator.raw_operator
    first = operator.inputs[0].type
    if isinstance(first, StringTensorType) or not _replaceable(est):
        base(scope, operator, container)
        return
    kind = (TensorProto.DOUBLE if isinstance(first, DoubleTensorType)
            else TensorProto.INT64 if isinstance(first, Int64TensorType) else TensorProto.FLOAT)
    dtype = {TensorProto.DOUBLE: np.float64, TensorProto.INT64: np.int64,
             TensorProto.FLOAT: np.float32}[kind]
    stats = np.asarray(est.statistics_, dtype=np.float64)
    value = float(est.missing_values)
    if kind == TensorProto.INT64 and (math.isnan(value) or not np.all(stats == np.round(stats))):
        base(scope, operator, container)
        return
    x = _concat(scope, operator, container, kind)
    fill = scope.get_unique_variable_name("imputer_fill")
    container.add_initializer(fill, kind, [1, len(stats)], stats.astype(dtype).tolist())
    missing = scope.get_unique_variable_name("imputer_missing")
    if math.isnan(value):
        container.add_node("IsNaN", [x], [missing])
    else:
        mark = scope.get_unique_variable_name("imputer_mark")
        container.add_initializer(mark, kind, [], [np.array(value).astype(dtype).item()])
        container.add_node("Equal", [x, mark], [missing])
    columns = _indicator_columns(est)
    if not columns:
        container.add_node("Where", [missing, fill, x], [operator.outputs[0].full_name])
        return
    # add_indicator: one 0/1 column per feature that had missing values in training
    filled, picked, flags = (scope.get_unique_variable_name(n) for n in
                             ("imputer_filled", "imputer_columns", "imputer_flags"))
    container.add_node("Where", [missing, fill, x], [filled])
    container.add_initializer(picked, TensorProto.INT64, [len(columns)], columns)
    chosen = scope.get_unique_variable_name("imputer_chosen")
    container.add_node("Gather", [missing, picked], [chosen], axis=1)
    container.add_node("Cast", [chosen], [flags], to=kind)
    container.add_node("Concat", [filled, flags], [operator.outputs[0].full_name], axis=1)


def _concat(scope: Any, operator: Any, container: Any, kind: int) -> str:
    names = []
    for var in operator.inputs:
        name = var.full_name
        if type(var.type) is not type(operator.inputs[0].type):
            name = scope.get_unique_variable_name("imputer_cast")
            container.add_node("Cast", [var.full_name], [name], to=kind)
        names.append(name)
    if len(names) == 1:
        return str(names[0])
    out: str = scope.get_unique_variable_name("imputer_input")
    container.add_node("Concat", names, [out], axis=1)
    return out
