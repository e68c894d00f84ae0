"""scikit-learn-API estimators and Pipelines (incl. LightGBM, XGBoost).

ONNX first; joblib only as the fallback.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from shipyard.errors import ConversionError
from shipyard.packaging import RuntimeSpec, Signature
from shipyard.packaging.inference import infer_signature
from shipyard.packaging.signature import NUMERIC_DTYPES, Task
from shipyard.packaging.tabular import is_dataframe, raw_columns
from shipyard.runtimes.adapters.base import Artifact, ModelAdapter, package_versions
from shipyard.runtimes.outputs import normalise
from shipyard.runtimes.sklearn import predict_estimator
from shipyard.types import Columns

ONNX_FILE = "model.onnx"
NATIVE_FILE = "model.joblib"


def _estimators(model: Any) -> list[Any]:
    """The model and every estimator nested in it (Pipeline steps, ColumnTransformer parts)."""
    found = [model]
    for _, step in getattr(model, "steps", []):
        found.extend(_estimators(step))
    for _, part, _cols in getattr(model, "transformers", []):
        if not isinstance(part, str):
            found.extend(_estimators(part))
    return found


def _framework(est: Any) -> str:
    return str(type(est).__module__.split(".")[0])


class SklearnAdapter(ModelAdapter):
    def __init__(self, model: Any) -> None:
        self.model = model
        self.parts = _estimators(model)
        roots = {_framework(p) for p in self.parts}
        self.framework = next((f for f in ("lightgbm", "xgboost") if f in roots), "sklearn")

    def signature(self, sample: Any) -> Signature:
        return infer_signature(sample)

    def task(self) -> tuple[Task, list[Any] | None]:
        from sklearn.base import is_classifier

        if is_classifier(self.model) and hasattr(self.model, "predict_proba"):
            return "classification", [_py(c) for c in self.model.classes_]
        return "regression", None

    def native_input(self, sample: Any, signature: Signature) -> Any:
        if signature.kind == "tabular" and not is_dataframe(sample):
            import pandas as pd

            return pd.DataFrame(raw_columns(sample))
        return sample

    def native_outputs(self, sample: Any, signature: Signature) -> Columns:

        return predict_estimator(self.model, self.native_input(sample, signature), signature)

    def native(self, signature: Signature, sample: Any) -> Artifact:
        import joblib

        buf = io.BytesIO()
        joblib.dump(self.model, buf)
        kind = "dataframe" if signature.kind == "tabular" else "array"
        return Artifact(RuntimeSpec("sklearn", (NATIVE_FILE,), {"input": kind}),
                        {NATIVE_FILE: buf.getvalue()})

    def to_onnx(self, signature: Signature, sample: Any) -> Artifact:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                onx, options = self._convert(signature)
        except ConversionError:
            raise
        except Exception as exc:  # converters raise anything from RuntimeError to KeyError
            raise ConversionError(f"{type(exc).__name__}: {_first_line(exc)}") from exc
        task, _ = self.task()
        outputs = [o.name for o in onx.graph.output]
        mapping = ({"label": outputs[0], "probabilities": outputs[1]}
                   if task == "classification" else {"value": outputs[0]})
        return Artifact(RuntimeSpec("onnx", (ONNX_FILE,), {**options, "outputs": mapping}),
                        {ONNX_FILE: onx.SerializeToString()})

    def _convert(self, signature: Signature) -> tuple[Any, dict[str, Any]]:
        from skl2onnx.common.data_types import FloatTensorType

        stacked = signature.kind == "tensor" or (
            all(c.dtype in NUMERIC_DTYPES for c in signature.inputs)
            and not any(type(p).__name__ == "ColumnTransformer" for p in self.parts))
        if signature.kind == "tensor":
            spec = signature.inputs[0]
            types = [("input", FloatTensorType([None, *spec.shape[1:]]))]
            options: dict[str, Any] = {"feed": "tensors"}
        elif stacked:
            fitted = [str(c) for c in getattr(self.model, "feature_names_in_", ())]
            # LightGBM reports sanitised names ("a b" -> "a_b"); then trust the sample's order
            order = (fitted if fitted and set(fitted) <= set(signature.input_names)
                     else signature.input_names)
            types = [("input", FloatTensorType([None, len(order)]))]
            options = {"feed": "stacked", "input_name": "input", "columns": order}
        else:
            types = [(c.name, _column_type(c.dtype, c.name)) for c in signature.inputs]
            options = {"feed": "columns"}
        if self.model is self.parts[-1] and self.framework in ("lightgbm", "xgboost"):
            return _convert_booster(self.model, self.framework, types), options
        _register_boosters()
        from skl2onnx import convert_sklearn

        final = self.parts[-1] if not hasattr(self.model, "steps") else self.model.steps[-1][1]
        zip_opts = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
        onx = convert_sklearn(self.model, initial_types=types, options=zip_opts,
                              target_opset={"": 17, "ai.onnx.ml": 3})
        return onx, options

    def versions(self) -> dict[str, str]:
        names = ["sklearn", *({self.framework} - {"sklearn"})]
        return package_versions([*names, "skl2onnx", "onnxmltools"])


def _column_type(dtype: str, name: str) -> Any:
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    if dtype.startswith("float"):
        return FloatTensorType([None, 1])
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
    """Teach skl2onnx to convert LightGBM/XGBoost steps inside Pipelines."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    opts = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier",
                                    calculate_linear_classifier_output_shapes, convert_lightgbm,
                                    options=opts)
        update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor",
                                    calculate_linear_regressor_output_shapes, convert_lightgbm)
    except ImportError:
        pass
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier",
                                    calculate_linear_classifier_output_shapes, convert_xgboost,
                                    options=opts)
        update_registered_converter(XGBRegressor, "XGBoostXGBRegressor",
                                    calculate_linear_regressor_output_shapes, convert_xgboost)
    except ImportError:
        pass


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else ""


__all__ = ["SklearnAdapter", "normalise"]
