"""Tree ensembles in ONNX that decide every split exactly as the native model does.

The converters (skl2onnx, onnxmltools) write tree nodes with float32 thresholds
(``ai.onnx.ml`` opset 1), so a value between the model's float64 threshold and its float32
rounding takes the other branch: parity breaks on rows near a split, which training rows never
are. Here each converter runs as usual, but every tree node it adds is rewritten:

- thresholds, leaf weights and base values become double tensors (``ai.onnx.ml`` opset 3,
  ``*_as_tensor`` attributes), read before any float32 rounding;
- the node is fed in double, after the rounding the native model applies to its input:
  scikit-learn's trees and gradient boosting and XGBoost compare ``float32(x)``, so the input
  goes through Cast(float) and Cast(double); HistGradientBoosting and LightGBM compare the
  float64 value itself;
- the node's scores (float in ONNX) are cast to the type the converter declared for them;
- LightGBM reads a value within 1e-35 of zero as zero: so does the graph;
- boolean attribute arrays (skl2onnx's HistGradientBoosting ``missing_value_tracks_true``,
  which onnx >= 1.17 refuses) become integers.

``tree_converters(parts)`` gives skl2onnx's ``custom_conversion_functions`` for the tree
models among ``parts``: the rewrite is local to one conversion, never registered globally.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.runtimes.adapters.tree_arrays import arrays_from_trees

TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
_TENSOR_ATTRS = ("nodes_values", "nodes_hitrates", "base_values", "target_weights",
                 "class_weights")
# model classes whose native predict compares float32(x) with the thresholds
_FLOAT32_INPUT = ("DecisionTreeClassifier", "DecisionTreeRegressor",
                  "ExtraTreeClassifier", "ExtraTreeRegressor",
                  "RandomForestClassifier", "RandomForestRegressor",
                  "ExtraTreesClassifier", "ExtraTreesRegressor",
                  "GradientBoostingClassifier", "GradientBoostingRegressor",
                  "XGBClassifier", "XGBRegressor")
# models whose thresholds are float32 values (printed in decimal by their dump)
_FLOAT32_THRESHOLDS = ("XGBClassifier", "XGBRegressor")
# LightGBM reads |x| <= 1e-35f as zero (it keeps only non-zero features of a row)
_ZERO_SNAP = ("LGBMClassifier", "LGBMRegressor")
LIGHTGBM_ZERO = float(np.float32(1e-35))
# ... and the float64 value itself
_FLOAT64_INPUT = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
                  "LGBMClassifier", "LGBMRegressor")

Converter = Callable[..., Any]


def is_tree_model(est: Any) -> bool:
    return type(est).__name__ in (*_FLOAT32_INPUT, *_FLOAT64_INPUT)


def tree_converters(parts: list[Any]) -> dict[type, Converter]:
    """Exact-split converters for the tree models among ``parts`` (classes skl2onnx knows)."""
    out: dict[type, Converter] = {}
    for est in parts:
        cls = type(est)
        if not is_tree_model(est) or cls in out:
            continue
        base = _registered_converter(cls)
        if base is not None:
            out[cls] = _exact(base, _InputRule(float32=cls.__name__ in _FLOAT32_INPUT,
                                               float32_thresholds=cls.__name__ in
                                               _FLOAT32_THRESHOLDS,
                                               zero_snap=cls.__name__ in _ZERO_SNAP))
    return out


def _registered_converter(cls: type) -> Converter | None:
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter

    alias = sklearn_operator_name_map.get(cls)
    if alias is None:
        return None
    conv: Converter = get_converter(alias)
    return conv


@dataclass(frozen=True)
class _InputRule:
    """How the native model reads a feature before comparing it with a threshold."""

    float32: bool  # rounds it to float32
    float32_thresholds: bool  # its thresholds are float32 values
    zero_snap: bool  # |x| <= LIGHTGBM_ZERO counts as 0


def _exact(base: Converter, rule: _InputRule) -> Converter:
    def convert(scope: Any, operator: Any, container: Any) -> Any:
        proxy = _ExactTreeContainer(container, scope, operator, rule)
        target = getattr(base, "_fct", base)  # skl2onnx wraps converters in RegisteredConverter
        # the input is rounded to float32 as scikit-learn rounds it: its fitted thresholds
        # are exact as they are, and the nodes come from the trees' arrays (tree_arrays)
        with arrays_from_trees() if rule.float32 else nullcontext():
            if _accepts_op_version(target):
                # skl2onnx rounds thresholds to float32 itself below opset 3
                return target(scope, operator, proxy, op_version=3)
            return base(scope, operator, proxy)

    return convert


def _accepts_op_version(fn: Converter) -> bool:
    import inspect

    try:
        return "op_version" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class _ExactTreeContainer:
    """Forwards everything to skl2onnx's container; rewrites the tree nodes it is given."""

    def __init__(self, container: Any, scope: Any, operator: Any, rule: _InputRule) -> None:
        self._container = container
        self._scope = scope
        self._declared = {v.full_name: v.type for v in operator.outputs}
        self._input_type = operator.inputs[0].type if operator.inputs else None
        self._rule = rule

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, op_domain: str = "",
                 op_version: int | None = None, name: str | None = None,
                 **attrs: Any) -> Any:
        if op_type not in TREE_OPS or op_domain != "ai.onnx.ml":
            return self._container.add_node(op_type, inputs, outputs, op_domain=op_domain,
                                            op_version=op_version, name=name, **attrs)
        from onnx import TensorProto

        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        inputs[0] = self._double_input(inputs[0], TensorProto)
        score = 1 if op_type == "TreeEnsembleClassifier" else 0
        final = outputs[score]
        outputs[score] = self._scope.get_unique_variable_name(final + "_tree")
        self._container.add_node(op_type, inputs, outputs, op_domain=op_domain,
                                 op_version=3, name=name,
                                 **_exact_attrs(attrs, self._rule.float32_thresholds))
        # TreeEnsemble* (opset 3) yields float scores whatever the input type
        to = self._score_type(final, TensorProto)
        return self._container.add_node("Cast", [outputs[score]], [final], to=to)

    def _double_input(self, name: str, proto: Any) -> str:
        source = name
        if self._rule.float32:
            source = self._name(name + "_f32")
            self._container.add_node("Cast", [name], [source], to=proto.FLOAT)
        cast = self._name(name + "_f64")
        self._container.add_node("Cast", [source], [cast], to=proto.DOUBLE)
        if not self._rule.zero_snap:
            return cast
        limit, zero = self._name("zero_limit"), self._name("zero")
        self._container.add_initializer(limit, proto.DOUBLE, [], [LIGHTGBM_ZERO])
        self._container.add_initializer(zero, proto.DOUBLE, [], [0.0])
        size, small, snapped = self._name("abs"), self._name("is_zero"), self._name("snapped")
        self._container.add_node("Abs", [cast], [size])
        self._container.add_node("LessOrEqual", [size, limit], [small])
        self._container.add_node("Where", [small, zero, cast], [snapped])
        return snapped

    def _name(self, hint: str) -> str:
        name: str = self._scope.get_unique_variable_name(hint)
        return name

    def _score_type(self, name: str, proto: Any) -> int:
        declared = self._declared.get(name)
        if declared is None:  # an intermediate: the converter works in its input's type
            declared = self._input_type
        return int(proto.DOUBLE if type(declared).__name__ == "DoubleTensorType"
                   else proto.FLOAT)


def _exact_attrs(attrs: dict[str, Any], float32_thresholds: bool) -> dict[str, Any]:
    from onnx import numpy_helper

    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key in _TENSOR_ATTRS:
            arr = np.asarray(value, dtype=np.float64).ravel()
            if key == "nodes_values" and float32_thresholds:
                arr = arr.astype(np.float32).astype(np.float64)
            out[f"{key}_as_tensor"] = numpy_helper.from_array(arr)
        elif isinstance(value, (list, tuple, np.ndarray)) and _integral(value):
            # numpy bools and unsigned ints, which onnx's make_attribute refuses
            out[key] = np.asarray(value).astype(np.int64).ravel().tolist()
        else:
            out[key] = value
    return out


def _integral(value: Any) -> bool:
    kind = np.asarray(value).dtype.kind if len(value) else ""
    return kind in "biu"
