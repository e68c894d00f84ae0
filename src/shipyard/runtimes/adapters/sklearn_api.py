"""scikit-learn-API estimators and Pipelines (incl. LightGBM, XGBoost).

ONNX first; joblib only as the fallback.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from shipyard.packaging import RuntimeSpec, Signature
from shipyard.packaging.inference import infer_signature
from shipyard.packaging.signature import Task
from shipyard.packaging.tabular import is_dataframe, raw_columns
from shipyard.runtimes.adapters.base import Artifact, ModelAdapter, package_versions
from shipyard.runtimes.adapters.exact_trees import is_tree_model
from shipyard.runtimes.adapters.sklearn_onnx import convert, estimators
from shipyard.runtimes.adapters.split_probes import threshold_probes
from shipyard.runtimes.outputs import normalise
from shipyard.runtimes.sklearn import predict_estimator
from shipyard.types import Columns

ONNX_FILE = "model.onnx"
NATIVE_FILE = "model.joblib"


def _framework(est: Any) -> str:
    return str(type(est).__module__.split(".")[0])


class SklearnAdapter(ModelAdapter):
    def __init__(self, model: Any) -> None:
        self.model = model
        self.parts = estimators(model)
        roots = {_framework(p) for p in self.parts}
        self.framework = next((f for f in ("lightgbm", "xgboost") if f in roots), "sklearn")

    def signature(self, sample: Any) -> Signature:
        return infer_signature(sample)

    def task(self) -> tuple[Task, list[Any] | None]:
        from sklearn.base import is_classifier

        # is_classifier reads the estimator's tags (LinearSVC has no predict_proba but is one)
        if is_classifier(self.model) and hasattr(self.model, "classes_"):
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
        onx, options = convert(self.model, signature)
        outputs = [o.name for o in onx.graph.output]
        if signature.task != "classification":
            mapping = {"value": outputs[0]}
        elif has_probabilities(self.model):
            mapping = {"label": outputs[0], "probabilities": outputs[1]}
        else:  # the second output holds decision scores, not probabilities
            mapping = {"label": outputs[0]}
        return Artifact(RuntimeSpec("onnx", (ONNX_FILE,), {**options, "outputs": mapping}),
                        {ONNX_FILE: onx.SerializeToString()})

    def probe_rows(self, artifact: Artifact, signature: Signature,
                   base: Columns) -> Any:
        """Rows of ``base`` moved onto the converted trees' split thresholds (None: no trees)."""
        graph = artifact.files.get(ONNX_FILE)
        final = self.model.steps[-1][1] if hasattr(self.model, "steps") else self.model
        if graph is None or not is_tree_model(final):
            return None
        if signature.kind == "tensor":
            name = signature.inputs[0].name
            if base[name].ndim != 2 or base[name].dtype.kind != "f":
                return None
            flat = {str(j): base[name][:, j] for j in range(base[name].shape[1])}
            probes = threshold_probes(graph, flat, list(flat), self._tree_input(
                lambda cols: {name: np.column_stack(list(cols.values()))}, signature))
            return None if probes is None else np.column_stack(list(probes.values()))
        floats = [c.name for c in signature.inputs if c.dtype in ("float64", "float32")]
        return threshold_probes(graph, base, floats, self._tree_input(lambda c: c, signature))

    def _tree_input(self, to_columns: Any, signature: Signature) -> Any:
        """Columns -> the matrix the final tree model reads (after a Pipeline's transformers)."""
        steps = getattr(self.model, "steps", None)
        order = [str(c) for c in getattr(self.model, "feature_names_in_", ())]

        def tree_input(cols: Columns) -> Any:
            data = to_columns(cols)
            if steps:
                x = (next(iter(data.values())) if signature.kind == "tensor"
                     else self.native_input(data, signature))
                out = self.model[:-1].transform(x)
                return out.toarray() if hasattr(out, "toarray") else np.asarray(out)
            if signature.kind == "tensor":
                return next(iter(data.values()))
            names = order if order and set(order) <= set(data) else signature.input_names
            return np.column_stack([data[c] for c in names])

        return tree_input

    def versions(self) -> dict[str, str]:
        names = ["sklearn", *({self.framework} - {"sklearn"})]
        return package_versions([*names, "skl2onnx", "onnxmltools"])


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def has_probabilities(model: Any) -> bool:
    """Whether the (fitted) classifier can give probabilities: LinearSVC cannot."""
    return hasattr(model, "predict_proba")


__all__ = ["SklearnAdapter", "normalise"]
