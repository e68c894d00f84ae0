"""Load an MLflow model per flavour, deciding first whether that needs trust.

Pickle-based files (scikit-learn and scikit-learn-API LightGBM in pickle/cloudpickle, a
pickled torch module, a pyfunc python model) run their author's code when loaded, so they
load only with ``trust=True`` (``UntrustedCodeError`` otherwise, before anything is read).
XGBoost models in their own formats (json, ubj, xgb), LightGBM Boosters in LightGBM's text
format and skops files holding only types skops trusts are data: they load without trust.
``needs_trust`` says which, without loading.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConversionError, UntrustedCodeError
from shipyard.importers.mlflow_dir import MlflowModelDir

trust_log = logging.getLogger("shipyard.trust")

XGBOOST_CLASSES = {
    "xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor",
    "xgboost.sklearn.XGBRFClassifier", "xgboost.sklearn.XGBRFRegressor",
}
XGBOOST_FORMATS = ("json", "ubj", "xgb", "deprecated")
LIGHTGBM_BOOSTER = "lightgbm.basic.Booster"
PICKLE_FORMATS = ("pickle", "cloudpickle")
BOOSTER_OBJECTIVES = frozenset({
    "regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma",
    "tweedie"})


@dataclass(frozen=True)
class TrustNeed:
    """Whether loading the model runs code, and which file(s) would run it."""

    needed: bool
    files: tuple[str, ...]
    reason: str


@dataclass
class LoadedFlavour:
    model: Any
    flavour: str
    trust: TrustNeed
    model_class: str | None = None


def needs_trust(model: MlflowModelDir) -> TrustNeed:
    """Whether importing ``model`` must unpickle (or import) its author's code."""
    flavour = model.flavour
    conf = model.settings()
    if flavour == "xgboost":
        return TrustNeed(False, (str(conf.get("data")),),
                         f"XGBoost's own {conf.get('model_format', 'xgb')} format: no pickle")
    if flavour == "lightgbm" and conf.get("model_class", LIGHTGBM_BOOSTER) == LIGHTGBM_BOOSTER:
        return TrustNeed(False, (str(conf.get("data")),), "LightGBM's text format: no pickle")
    if flavour in ("sklearn", "lightgbm"):
        fmt = str(conf.get("serialization_format", "cloudpickle"))
        data = conf.get("pickled_model") or conf.get("data")
        if fmt == "skops":
            return _skops_need(model.file(data, "skops model file"))
        return TrustNeed(True, (str(data),), f"a {fmt} file")
    if flavour == "pytorch":
        data = str(conf.get("model_data", "data"))
        exported = (model.path / data / "model.pt2").is_file()
        files = [f"{data}/model.pt2" if exported else f"{data}/model.pth"]
        if conf.get("code"):
            files.append(f"{conf['code']}/ (imported)")
        return TrustNeed(True, tuple(files), "a torch.export program" if exported
                         else "a pickled torch module")
    files = [str(conf.get("python_model", "python_model.pkl"))]
    if conf.get("code"):
        files.append(f"{conf['code']}/ (imported)")
    return TrustNeed(True, tuple(files), "a cloudpickled python model")


def load_flavour(model: MlflowModelDir, *, trust: bool) -> LoadedFlavour:
    """The model object (for the packager), loaded only as ``trust`` allows."""
    need = needs_trust(model)
    if need.needed and not trust:
        trust_log.warning("refused MLflow model %s: %s (%s; trust=False)", model.path,
                          ", ".join(need.files), need.reason)
        raise UntrustedCodeError(", ".join(need.files), (
            f"MLflow {model.flavour} model {model.path}: loading {', '.join(need.files)} "
            f"runs its author's code ({need.reason}). Import it with --trust (trust=True) "
            "only if you trust who made it; nothing was loaded. XGBoost models and LightGBM "
            "Boosters saved in their own formats need no trust"))
    if need.needed:
        trust_log.warning("trusted MLflow model %s: %s (%s; trust=True)", model.path,
                          ", ".join(need.files), need.reason)
    loader = {"sklearn": _sklearn, "xgboost": _xgboost, "lightgbm": _lightgbm,
              "pytorch": _pytorch, "python_model": _python_model}[model.flavour]
    obj, cls = loader(model)
    return LoadedFlavour(obj, model.flavour, need, cls)


def _sklearn(model: MlflowModelDir) -> tuple[Any, str | None]:
    conf = model.settings()
    path = model.file(conf.get("pickled_model"), "pickled model")
    return _unpickle(path, str(conf.get("serialization_format", "cloudpickle"))), None


def _skops_need(path: Path) -> TrustNeed:
    """skops files are not pickles: skops builds only the types it trusts (scikit-learn's),
    and lists the others without loading anything; those need trust."""
    untrusted = _skops().get_untrusted_types(file=path)
    if not untrusted:
        return TrustNeed(False, (path.name,), "skops format, only types skops trusts: no pickle")
    return TrustNeed(True, (path.name,), f"skops format naming types skops does not trust "
                                         f"({', '.join(untrusted)})")


def _skops() -> Any:
    try:
        import skops.io
    except ImportError as exc:
        raise ConversionError("the skops format (MLflow's default for scikit-learn) needs "
                              "skops: pip install 'shipyard-ml[mlflow]'") from exc
    return skops.io


def _unpickle(path: Path, fmt: str) -> Any:
    if fmt == "skops":  # trust was decided: the types skops lists are the ones trusted
        io = _skops()
        return io.load(path, trusted=io.get_untrusted_types(file=path))
    if fmt not in PICKLE_FORMATS:
        raise ConversionError(f"{path.name}: serialization format {fmt!r} is not supported "
                              f"(shipyard reads skops, and {', '.join(PICKLE_FORMATS)} with "
                              "--trust)")
    import pickle

    with path.open("rb") as handle:  # cloudpickle writes standard pickle streams
        return pickle.load(handle)  # the caller passed trust=True


def _xgboost(model: MlflowModelDir) -> tuple[Any, str | None]:
    conf = model.settings()
    cls_name = str(conf.get("model_class", "xgboost.core.Booster"))
    if cls_name not in XGBOOST_CLASSES:
        raise ConversionError(f"{model.path}: xgboost model class {cls_name!r} is not "
                              f"supported (shipyard imports {', '.join(sorted(XGBOOST_CLASSES))})")
    if str(conf.get("model_format", "xgb")) not in XGBOOST_FORMATS:
        raise ConversionError(f"{model.path}: unknown xgboost model format "
                              f"{conf.get('model_format')!r}")
    import xgboost

    estimator = getattr(xgboost, cls_name.rsplit(".", 1)[1])()
    estimator.load_model(str(model.file(conf.get("data"), "xgboost model file")))
    return estimator, cls_name


def _lightgbm(model: MlflowModelDir) -> tuple[Any, str | None]:
    conf = model.settings()
    cls_name = str(conf.get("model_class", LIGHTGBM_BOOSTER))
    path = model.file(conf.get("data"), "lightgbm model file")
    if cls_name == LIGHTGBM_BOOSTER:
        import lightgbm

        return booster_regressor(lightgbm.Booster(model_file=str(path)), model), cls_name
    return _unpickle(path, str(conf.get("serialization_format", "cloudpickle"))), cls_name


def booster_regressor(booster: Any, model: MlflowModelDir) -> Any:
    """A LightGBM Booster (the text format) as the scikit-learn-API regressor that wraps it,
    which the packager converts. Only regression objectives: a Booster does not know its
    class labels."""
    import lightgbm

    objective = str(booster.dump_model().get("objective", "")).split()[0]
    if objective not in BOOSTER_OBJECTIVES:
        raise ConversionError(
            f"{model.path}: a LightGBM Booster with objective {objective!r}; shipyard imports "
            f"Boosters with regression objectives ({', '.join(sorted(BOOSTER_OBJECTIVES))}). "
            "Log an LGBMClassifier (mlflow.lightgbm.log_model) for a classifier")
    estimator = lightgbm.LGBMRegressor(objective=objective)
    estimator._Booster = booster
    estimator.fitted_ = True
    estimator._n_features = estimator._n_features_in = booster.num_feature()
    estimator._objective = objective
    return estimator


def _pytorch(model: MlflowModelDir) -> tuple[Any, str | None]:
    conf = model.settings()
    data = model.file(conf.get("model_data", "data"), "torch model data")
    import torch

    with _code_on_path(model, conf.get("code")):
        if (data / "model.pth").is_file():
            module = torch.load(data / "model.pth", weights_only=False)  # trusted
        elif (data / "model.pt2").is_file():
            module = _exported(torch.export.load(str(data / "model.pt2")).module())
        else:
            raise ConversionError(f"{data} holds neither model.pth nor model.pt2")
    if not isinstance(module, torch.nn.Module):
        raise ConversionError(f"{data}: expected a torch.nn.Module, got "
                              f"{type(module).__qualname__}")
    return module, f"{type(module).__module__}.{type(module).__qualname__}"


def _exported(program: Any) -> Any:
    """A torch.export program as a plain module: the program refuses ``eval()``, which the
    packager calls, so it is held outside the module tree (already in inference form)."""
    import torch

    for tensor in [*program.parameters(), *program.buffers()]:
        tensor.requires_grad_(False)  # constants to the ONNX exporter's tracer

    class ExportedProgram(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # the program is not a submodule (eval() would reach it): forward closes over it

        def forward(self, *args: Any) -> Any:
            return program(*args)

    return ExportedProgram()


def _python_model(model: MlflowModelDir) -> tuple[Any, str | None]:
    try:
        import mlflow.pyfunc
    except ImportError as exc:
        raise ConversionError("a pyfunc python model unpickles classes of mlflow itself: "
                              "pip install mlflow-skinny") from exc
    return mlflow.pyfunc.load_model(str(model.path)), "mlflow.pyfunc.PythonModel"


@contextlib.contextmanager
def _code_on_path(model: MlflowModelDir, code: Any) -> Iterator[None]:
    """The model's ``code/`` folder importable while it loads (as MLflow does)."""
    if not code:
        yield
        return
    folder = str(model.file(code, "code folder"))
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
