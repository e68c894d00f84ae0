"""scikit-learn-API models (and Pipelines around LightGBM/XGBoost) to ONNX graphs.

Float columns enter the graph as double, so preprocessing (scalers, imputers) computes what
scikit-learn computes in float64; tree models decide their splits exactly as natively
(``exact_trees``). A graph in double that a converter cannot build is retried in float32
(the converters' own precision), and the parity check decides whether it ships.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from shipyard.errors import ConversionError
from shipyard.packaging import Signature
from shipyard.packaging.signature import NUMERIC_DTYPES
from shipyard.runtimes.adapters.base import failure_text
from shipyard.runtimes.adapters.exact_imputer import imputer_overrides
from shipyard.runtimes.adapters.exact_trees import tree_converters

OPSETS = {"": 17, "ai.onnx.ml": 3}


def estimators(model: Any) -> list[Any]:
    """The model and every estimator nested in it (Pipeline steps, ColumnTransformer parts)."""
    found = [model]
    for _, step in getattr(model, "steps", []):
        found.extend(estimators(step))
    # a fitted ColumnTransformer's parts are in transformers_ (transformers holds the
    # unfitted templates it cloned)
    for _, part, _cols in getattr(model, "transformers_", getattr(model, "transformers", [])):
        if not isinstance(part, str):
            found.extend(estimators(part))
    return found


def convert(model: Any, signature: Signature) -> tuple[Any, dict[str, Any]]:
    """(ONNX model, runtime feed options); ConversionError with each attempt's root cause."""
    model = _without_xgboost_names(model)
    parts = estimators(model)
    _refuse_unsupported(parts)
    errors = []
    for double in (True, False):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                onx, options = _convert(model, parts, signature, double=double)
            _check_loads(onx)
            return onx, options
        except ConversionError:
            raise
        except Exception as exc:  # converters raise anything from RuntimeError to KeyError
            errors.append(f"{'float64' if double else 'float32'} graph: {failure_text(exc)}")
    raise ConversionError("; ".join(errors))


def _refuse_unsupported(parts: list[Any]) -> None:
    """Models the converters turn into a graph that answers differently, with the reason."""
    for part in parts:
        categorical = getattr(part, "is_categorical_", None)
        if type(part).__name__.startswith("HistGradientBoosting") and categorical is not None \
                and bool(np.any(categorical)):
            raise ConversionError(
                f"{type(part).__name__} with categorical features (columns "
                f"{np.flatnonzero(categorical).tolist()}) has no exact ONNX form: skl2onnx "
                "writes each categorical split as a numeric threshold and drops its category "
                "set; one-hot encode the categories in the Pipeline instead to get an ONNX "
                "package")


def _convert(model: Any, parts: list[Any], signature: Signature, *,
             double: bool) -> tuple[Any, dict[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    real = DoubleTensorType if double else FloatTensorType
    stacked = signature.kind == "tensor" or (
        all(c.dtype in NUMERIC_DTYPES for c in signature.inputs)
        and not any(type(p).__name__ == "ColumnTransformer" for p in parts))
    if signature.kind == "tensor":
        spec = signature.inputs[0]
        types = [("input", real([None, *spec.shape[1:]]))]
        options: dict[str, Any] = {"feed": "tensors"}
    elif stacked:
        fitted = [str(c) for c in getattr(model, "feature_names_in_", ())]
        # LightGBM reports sanitised names ("a b" -> "a_b"); then trust the sample's order
        order = (fitted if fitted and set(fitted) <= set(signature.input_names)
                 else signature.input_names)
        types = [("input", real([None, len(order)]))]
        options = {"feed": "stacked", "input_name": "input", "columns": order}
    else:
        # in a double graph, integer columns are numbers too: a scaler over int and float
        # columns concatenates them first, and int64 casts to double exactly below 2**53
        types = [(c.name, real([None, 1]) if double and c.dtype.startswith(("int", "uint"))
                  else _column_type(c.dtype, c.name, real)) for c in signature.inputs]
        options = {"feed": "columns"}
    root = type(model).__module__.split(".")[0]
    if root in ("lightgbm", "xgboost") and not hasattr(model, "classes_") \
            and not hasattr(model, "n_features_in_"):
        return _convert_booster(model, root, types), options  # a raw Booster
    _register_boosters()
    from skl2onnx import convert_sklearn

    imputers, shapes = imputer_overrides(parts)
    onx = convert_sklearn(model, initial_types=types, options=_options(model),
                          target_opset=OPSETS, custom_shape_calculators=shapes,
                          custom_conversion_functions={**tree_converters(parts), **imputers})
    return onx, options


def _options(model: Any) -> dict[int, dict[str, Any]]:
    """Converter options for the final estimator: probabilities as a tensor (no ZipMap).

    A classifier without probabilities (LinearSVC) gets an empty entry: without one, skl2onnx
    gives a classifier step of a Pipeline ``zipmap=True``, which LinearSVC's converter refuses
    (``NameError: Option 'zipmap' not in [...]``), while the bare estimator converts."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return {id(final): {"zipmap": False} if hasattr(final, "predict_proba") else {}}


def _without_xgboost_names(model: Any) -> Any:
    """A copy whose XGBoost boosters name features f0, f1, ... (onnxmltools reads split
    features from the dump, and a model fitted on a DataFrame dumps the column names)."""
    named = [p for p in estimators(model) if type(p).__module__.startswith("xgboost")
             and getattr(p.get_booster(), "feature_names", None)]
    if not named:
        return model
    import copy

    model = copy.deepcopy(model)
    for part in estimators(model):
        if type(part).__module__.startswith("xgboost"):
            part.get_booster().feature_names = None
    return model


def _check_loads(onx: Any) -> None:
    """ONNX Runtime accepts the graph (a converter may mix float and double in one node)."""
    import onnxruntime as ort

    ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])


def _column_type(dtype: str, name: str, real: Any) -> Any:
    from skl2onnx.common.data_types import BooleanTensorType, Int64TensorType, StringTensorType

    if dtype.startswith("float"):
        return real([None, 1])
    if dtype.startswith(("int", "uint")):
        return Int64TensorType([None, 1])
    if dtype == "string":
        return StringTensorType([None, 1])
    if dtype == "bool":
        return BooleanTensorType([None, 1])
    raise ConversionError(f"column {name!r} of type {dtype} has no ONNX input type")


def _convert_booster(model: Any, framework: str, types: list[Any]) -> Any:
    from onnxmltools.convert.common.data_types import FloatTensorType

    ml_types = [(name, FloatTensorType(t.shape)) for name, t in types]
    if framework == "lightgbm":
        from onnxmltools import convert_lightgbm

        return convert_lightgbm(model, initial_types=ml_types, zipmap=False)
    from onnxmltools import convert_xgboost

    return convert_xgboost(model, initial_types=ml_types)


_REGISTERED = False


def _register_boosters() -> None:
    """Teach skl2onnx to convert LightGBM/XGBoost estimators, alone or in Pipelines."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        _register_pair("LightGbm", LGBMClassifier, LGBMRegressor, convert_lightgbm)
    except ImportError:
        pass
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        _register_pair("XGBoost", XGBClassifier, XGBRegressor, convert_xgboost)
    except ImportError:
        pass


def _register_pair(prefix: str, classifier: type, regressor: type, convert: Any) -> None:
    """Register one booster library's classifier (with its nocl/zipmap options) and
    regressor with skl2onnx, under the aliases ``prefix + class name``."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    opts = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    update_registered_converter(classifier, prefix + classifier.__name__,
                                calculate_linear_classifier_output_shapes, convert, options=opts)
    update_registered_converter(regressor, prefix + regressor.__name__,
                                calculate_linear_regressor_output_shapes, convert)
