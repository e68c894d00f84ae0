"""A zoo of common estimators and pipelines, each packaged, saved, loaded and compared.

Shared by the fast test (tests/test_model_zoo.py) and a table printer (``python
tests/model_zoo.py``). Every data set is generated in-process or ships inside scikit-learn.
For each case: ``shipyard.package(model, X_train, target=y_train, reference=(X_holdout,
y_holdout))``, save, ``shipyard.load`` (trust only where the runtime needs it), then
``run_case`` reports the runtime, the task, the outputs and the largest difference from the
native model on held-out rows, and ``problems`` lists whatever breaks the rules:

- the task is right (classifier or regressor; the class labels), and probabilities are
  output only by a model that has ``predict_proba``;
- the runtime is ONNX unless the case states why not;
- held-out predictions equal the native ones: labels exactly, probabilities within 1e-4,
  values within 1e-4 x max(1, max |y|) (the parity rule of ``runtimes/parity.py``);
- a fallback (or a runtime left out) states its root cause.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import shipyard
from shipyard.errors import ShipyardError

TOLERANCE = 1e-4
Data = tuple[Any, Any, Any, Any]  # X_train, y_train, X_holdout, y_holdout


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], tuple[Any, Data]]  # -> (fitted model, data)
    task: str  # classification | regression | other
    runtime: str = "onnx"
    why_not_onnx: str | None = None  # a case that is not ONNX says why (found in the manifest)
    trust: bool = False  # the runtime loads code or a pickle
    native: Callable[[Any, Any], Any] | None = None  # native outputs, for non-sklearn models
    model_kwargs: dict[str, Any] | None = None


# ---- data -------------------------------------------------------------------------------

def _split(x: Any, y: Any, train: int) -> Data:
    return x[:train], y[:train], x[train:], y[train:]


def _frame(x: np.ndarray, prefix: str = "f") -> pd.DataFrame:
    return pd.DataFrame(x, columns=[f"{prefix}{i}" for i in range(x.shape[1])])


def classification(n: int = 600, features: int = 6, classes: int = 3, frame: bool = True,
                   labels: Any = None, seed: int = 0) -> Data:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=features, n_informative=4,
                               n_redundant=1, n_classes=classes, random_state=seed)
    if labels is not None:
        y = np.asarray(labels)[y]
    return _split(_frame(x) if frame else x, y, n // 2)


def regression(n: int = 600, features: int = 6, frame: bool = True, seed: int = 0) -> Data:
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=n, n_features=features, n_informative=4, noise=5.0,
                           random_state=seed)
    return _split(_frame(x) if frame else x, y, n // 2)


def iris() -> Data:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    order = np.random.default_rng(0).permutation(len(data.frame))
    x, y = data.data.iloc[order].reset_index(drop=True), data.target.to_numpy()[order]
    return _split(x, np.asarray(data.target_names)[y], 100)


def diabetes() -> Data:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return _split(data.data, data.target.to_numpy(), 300)


def breast_cancer() -> Data:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    order = np.random.default_rng(1).permutation(len(x))
    return _split(x.iloc[order].reset_index(drop=True), y.to_numpy()[order], 350)


def wine() -> Data:
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True, as_frame=True)
    order = np.random.default_rng(2).permutation(len(x))
    return _split(x.iloc[order].reset_index(drop=True), y.to_numpy()[order], 110)


CITIES = ["oslo", "lima", "pune", "kyiv", "baku"]


def mixed_table(n: int = 700, nan: bool = False, unseen: bool = True, seed: int = 0) -> Data:
    """Float, int and string columns; the held-out rows hold a city the model never saw, and
    with ``nan`` about 10% of the float values are missing."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"size": rng.normal(50.0, 15.0, n), "price": rng.lognormal(8, 1, n),
                          "rooms": rng.integers(1, 7, n), "city": rng.choice(CITIES[:4], n)})
    score = (0.05 * (frame["size"] - 50) + 0.4 * np.log(frame["price"]) - 3.2
             + 0.3 * frame["rooms"] + frame["city"].map({"oslo": 1.0, "lima": -1.0,
                                                          "pune": 0.3, "kyiv": -0.2}))
    y = np.digitize(score + rng.normal(0, 0.4, n), [0.0, 1.5])
    if unseen:
        frame.loc[frame.index[-40:], "city"] = CITIES[4]
    if nan:
        for col in ("size", "price"):
            frame.loc[rng.random(n) < 0.1, col] = np.nan
    return _split(frame, y, n // 2)


def categorical_with_nan(n: int = 800, seed: int = 0) -> Data:
    """Numeric features with NaN plus a small-integer categorical column (also with NaN)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(10, 3, n),
                          "kind": rng.integers(0, 5, n).astype(np.float64)})
    y = (frame["a"] + 0.2 * frame["b"] + frame["kind"].map({0: 1, 1: -1, 2: 0, 3: 2, 4: -2})
         + rng.normal(0, 0.3, n)).to_numpy()
    for col in ("a", "b", "kind"):
        frame.loc[rng.random(n) < 0.08, col] = np.nan
    return _split(frame, y, n // 2)


# ---- models -----------------------------------------------------------------------------

def fitted(make_model: Callable[[], Any], data: Callable[[], Data]) -> Callable[[], Any]:
    def build() -> tuple[Any, Data]:
        d = data()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of tiny fits
            return make_model().fit(d[0], d[1]), d

    return build


def _sk(name: str) -> Any:
    module, _, cls = name.rpartition(".")
    return getattr(__import__(module, fromlist=[cls]), cls)


def est(name: str, **kwargs: Any) -> Callable[[], Any]:
    return lambda: _sk(name)(**kwargs)


def column_pipeline(final: Any, nan: bool = False, indicator: bool = False) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric: Any = StandardScaler()
    if nan:
        numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=indicator),
                                StandardScaler())
    pre = ColumnTransformer([("num", numeric, ["size", "price", "rooms"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])])
    return Pipeline([("pre", pre), ("model", final)])


def pca_logistic() -> Any:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), PCA(n_components=5),
                         LogisticRegression(max_iter=1000))


def scaled(final: Callable[[], Any]) -> Callable[[], Any]:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return lambda: make_pipeline(StandardScaler(), final())


def torch_sequential() -> tuple[Any, Data]:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = np.random.default_rng(0).normal(size=(400, 6)).astype(np.float32)
    return module.eval(), (x[:200], None, x[200:], None)


def torch_subclass() -> tuple[Any, Data]:
    import torch

    from models_for_tests import MLP

    torch.manual_seed(0)
    module = MLP(n_in=6, hidden=16, n_out=3)
    x = np.random.default_rng(1).normal(size=(400, 6)).astype(np.float32)
    return module.eval(), (x[:200], None, x[200:], None)


def torch_native(model: Any, x: Any) -> dict[str, np.ndarray]:
    import torch

    with torch.inference_mode():
        return {"output": model(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()}


def custom_python() -> tuple[Any, Data]:
    from models_for_tests import LinearScorer

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(0, 1, 400), "b": rng.normal(0, 1, 400)})
    return LinearScorer(weight=2.0, bias=0.5), (frame[:200], None, frame[200:], None)


def custom_native(model: Any, x: Any) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in model.predict(x).items()}


C, R = "classification", "regression"
CASES = [
    Case("linear-regression", fitted(est("sklearn.linear_model.LinearRegression"), diabetes), R),
    Case("logistic-regression", fitted(est("sklearn.linear_model.LogisticRegression",
                                           max_iter=1000), iris), C),
    Case("ridge", fitted(est("sklearn.linear_model.Ridge"), regression), R),
    Case("lasso", fitted(est("sklearn.linear_model.Lasso", alpha=0.5), regression), R),
    Case("elasticnet", fitted(est("sklearn.linear_model.ElasticNet", alpha=0.5), diabetes), R),
    Case("sgd-classifier", fitted(scaled(est("sklearn.linear_model.SGDClassifier",
                                             random_state=0)), breast_cancer), C),
    Case("sgd-regressor", fitted(scaled(est("sklearn.linear_model.SGDRegressor",
                                            random_state=0)), regression), R),
    Case("linear-svc", fitted(scaled(est("sklearn.svm.LinearSVC")), wine), C),
    Case("svc", fitted(est("sklearn.svm.SVC"), classification), C),
    Case("svc-probability", fitted(est("sklearn.svm.SVC", probability=True, random_state=0),
                                   classification), C),
    Case("svr", fitted(est("sklearn.svm.SVR", C=50.0), regression), R),
    Case("knn-classifier", fitted(est("sklearn.neighbors.KNeighborsClassifier"),
                                  lambda: classification(frame=False)), C),
    Case("knn-regressor", fitted(est("sklearn.neighbors.KNeighborsRegressor"), regression), R),
    Case("gaussian-nb", fitted(est("sklearn.naive_bayes.GaussianNB"), wine), C),
    Case("decision-tree-classifier", fitted(est("sklearn.tree.DecisionTreeClassifier",
                                                max_depth=6, random_state=0), iris), C),
    Case("decision-tree-regressor", fitted(est("sklearn.tree.DecisionTreeRegressor",
                                               max_depth=6, random_state=0), diabetes), R),
    Case("random-forest-classifier", fitted(est("sklearn.ensemble.RandomForestClassifier",
                                                n_estimators=20, max_depth=6,
                                                random_state=0), breast_cancer), C),
    Case("random-forest-regressor", fitted(est("sklearn.ensemble.RandomForestRegressor",
                                               n_estimators=20, max_depth=6,
                                               random_state=0), diabetes), R),
    Case("extra-trees-classifier", fitted(est("sklearn.ensemble.ExtraTreesClassifier",
                                              n_estimators=20, max_depth=6,
                                              random_state=0), classification), C),
    Case("gradient-boosting-classifier", fitted(
        est("sklearn.ensemble.GradientBoostingClassifier", n_estimators=20, random_state=0),
        classification), C),
    Case("gradient-boosting-regressor", fitted(
        est("sklearn.ensemble.GradientBoostingRegressor", n_estimators=20, random_state=0),
        diabetes), R),
    Case("hist-gradient-boosting-classifier", fitted(
        est("sklearn.ensemble.HistGradientBoostingClassifier", max_iter=20, random_state=0),
        classification), C),
    Case("hist-gradient-boosting-regressor", fitted(
        est("sklearn.ensemble.HistGradientBoostingRegressor", max_iter=20, random_state=0),
        diabetes), R),
    Case("hist-gradient-boosting-nan", fitted(
        est("sklearn.ensemble.HistGradientBoostingRegressor", max_iter=20, random_state=0),
        categorical_with_nan), R),
    Case("hist-gradient-boosting-categorical-nan", fitted(
        est("sklearn.ensemble.HistGradientBoostingRegressor", max_iter=20, random_state=0,
            categorical_features=[2]), categorical_with_nan), R, runtime="sklearn",
         trust=True, why_not_onnx="skl2onnx writes each categorical split as a numeric "
                                  "threshold and drops its category set"),
    Case("lightgbm-classifier", fitted(est("lightgbm.LGBMClassifier", n_estimators=20,
                                           verbose=-1, random_state=0), classification), C),
    Case("lightgbm-regressor-nan", fitted(est("lightgbm.LGBMRegressor", n_estimators=20,
                                              verbose=-1, random_state=0),
                                          categorical_with_nan), R),
    Case("xgboost-classifier", fitted(est("xgboost.XGBClassifier", n_estimators=20,
                                          max_depth=4, n_jobs=1), breast_cancer), C),
    Case("xgboost-regressor", fitted(est("xgboost.XGBRegressor", n_estimators=20, max_depth=4,
                                         n_jobs=1), regression), R),
    Case("mlp-classifier", fitted(scaled(est("sklearn.neural_network.MLPClassifier",
                                             hidden_layer_sizes=(16,), max_iter=300,
                                             random_state=0)), wine), C),
    Case("mlp-regressor", fitted(scaled(est("sklearn.neural_network.MLPRegressor",
                                            hidden_layer_sizes=(16,), max_iter=300,
                                            random_state=0)), diabetes), R),
    Case("column-pipeline-logistic", fitted(
        lambda: column_pipeline(_sk("sklearn.linear_model.LogisticRegression")(max_iter=1000)),
        mixed_table), C),
    Case("column-pipeline-random-forest", fitted(
        lambda: column_pipeline(_sk("sklearn.ensemble.RandomForestClassifier")(
            30, max_depth=6, random_state=0)), mixed_table), C),
    Case("imputer-pipeline-gradient-boosting", fitted(
        lambda: column_pipeline(_sk("sklearn.ensemble.GradientBoostingClassifier")(
            n_estimators=20, random_state=0), nan=True),
        lambda: mixed_table(nan=True)), C),
    Case("imputer-indicator-pipeline-random-forest", fitted(
        lambda: column_pipeline(_sk("sklearn.ensemble.RandomForestRegressor")(
            20, max_depth=6, random_state=0), nan=True, indicator=True),
        lambda: mixed_table(nan=True, seed=1)), R),
    Case("pca-logistic", fitted(pca_logistic, breast_cancer), C),
    Case("torch-sequential", torch_sequential, "other", native=torch_native),
    Case("torch-module-subclass", torch_subclass, "other", native=torch_native, trust=False),
    Case("custom-python-class", custom_python, "other", runtime="python", trust=True,
         native=custom_native, model_kwargs={"weight": 2.0, "bias": 0.5}),
]


# ---- running a case ---------------------------------------------------------------------

@dataclass
class Result:
    case: Case
    runtime: str
    runtimes: list[str]
    max_diff: float
    tolerance: float
    problems: list[str]
    seconds: float
    fallback: str | None

    @property
    def status(self) -> str:
        return "ok" if not self.problems else "FAIL"


def native_outputs(case: Case, model: Any, x: Any) -> dict[str, np.ndarray]:
    if case.native is not None:
        return case.native(model, x)
    out = {("label" if case.task == C else "value"): np.asarray(model.predict(x))}
    if hasattr(model, "predict_proba"):
        out["probabilities"] = np.asarray(model.predict_proba(x), dtype=np.float64)
    return out


def run_case(case: Case, workdir: Path) -> Result:
    start = time.perf_counter()
    model, (x_train, y_train, x_hold, y_hold) = case.make()
    reference = x_hold if y_hold is None else (x_hold, y_hold)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pkg = shipyard.package(model, x_train, name=case.name, target=y_train,
                               reference=reference, model_kwargs=case.model_kwargs)
    warned = [str(w.message) for w in caught if "native" in str(w.message)]
    path = pkg.save(workdir / case.name)
    problems: list[str] = []
    try:
        loaded = shipyard.load(path, trust=case.trust)
    except ShipyardError as exc:  # a fallback to a pickle: note it, then look further
        problems.append(f"does not load without trust: {type(exc).__name__}")
        loaded = shipyard.load(path, trust=True)
    conversion = pkg.manifest.conversion
    fallback = conversion.get("fallback_reason")
    problems += _task_problems(case, model, pkg)
    if loaded.runtime.name != case.runtime:
        problems.append(f"runtime {loaded.runtime.name}, expected {case.runtime}: {fallback}")
    if fallback and (case.why_not_onnx is None or case.why_not_onnx not in fallback):
        problems.append(f"fallback reason does not state the known root cause: {fallback!r}")
    if fallback and not warned:
        problems.append("fell back without a warning")
    left_out = conversion.get("native_unavailable")
    if left_out and not _names_root_cause(left_out):
        problems.append(f"left-out runtime's reason names no root cause: {left_out!r}")
    if case.trust:
        problems += _refused_without_trust(path)
    got = loaded.predict(x_hold).outputs
    want = native_outputs(case, model, x_hold)
    diff, tolerance, found = compare(got, want)
    problems += found
    loaded.close()
    return Result(case, loaded.runtime.name, [r.name for r in pkg.manifest.runtimes], diff,
                  tolerance, problems, time.perf_counter() - start, fallback)


def _task_problems(case: Case, model: Any, pkg: Any) -> list[str]:
    sig = pkg.signature
    problems = []
    if sig.task != case.task:
        problems.append(f"task {sig.task}, expected {case.task}")
    if case.task == C:
        classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes_]
        if list(sig.class_labels or ()) != classes:
            problems.append(f"class labels {sig.class_labels}, expected {classes}")
        outputs = {o.name for o in sig.outputs}
        if ("probabilities" in outputs) != hasattr(model, "predict_proba"):
            problems.append(f"outputs {sorted(outputs)} but predict_proba "
                            f"{'exists' if hasattr(model, 'predict_proba') else 'does not'}")
    return problems


def _names_root_cause(reason: str) -> bool:
    """An exception's type and message (``SomeError: ...``) or a parity finding naming the
    row set and the difference; never a bare repr or an empty string."""
    import re

    parity = re.search(r"differ from the native model's by \S+ \(tolerance \S+\) on \d+ ",
                       reason)
    error = re.search(r"\b[A-Z]\w*(Error|Exception|Failure)\b: \S", reason)
    return bool(parity or error)


def _refused_without_trust(path: Path) -> list[str]:
    try:
        shipyard.load(path).close()
    except ShipyardError:
        return []
    return ["loaded without trust although its runtime needs it"]


def compare(got: dict[str, np.ndarray],
            want: dict[str, np.ndarray]) -> tuple[float, float, list[str]]:
    problems = []
    diff, tolerance = 0.0, TOLERANCE
    if set(got) != set(want):
        problems.append(f"outputs {sorted(got)}, native {sorted(want)}")
    for name, ref in want.items():
        if name not in got:
            continue
        if name == "label":
            same = np.asarray(got[name]).astype(str) == np.asarray(ref).astype(str)
            if not np.all(same):
                problems.append(f"{int(np.sum(~same))} held-out labels differ")
            continue
        a, b = np.asarray(got[name], dtype=np.float64), np.asarray(ref, dtype=np.float64)
        if a.shape != b.shape:
            problems.append(f"{name}: shape {a.shape}, native {b.shape}")
            continue
        scale = 1.0 if name == "probabilities" else max(1.0, float(np.max(np.abs(b))))
        tolerance = max(tolerance, TOLERANCE * scale)
        d = float(np.max(np.abs(a - b))) if a.size else 0.0
        diff = max(diff, d)
        if d > TOLERANCE * scale:
            problems.append(f"{name} differ by {d:.3g} (tolerance {TOLERANCE * scale:.3g})")
    return diff, tolerance, problems


def main() -> None:
    picked = [c for c in CASES if not sys.argv[1:] or c.name in sys.argv[1:]]
    total = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'model':40} {'runtime':8} {'max diff':>9} {'tol':>8} {'s':>5}  status")
        for case in picked:
            r = run_case(case, Path(tmp))
            print(f"{case.name:40} {r.runtime:8} {r.max_diff:9.2g} {r.tolerance:8.2g} "
                  f"{r.seconds:5.2f}  {r.status} {'; '.join(r.problems)}", flush=True)
    print(f"total {time.perf_counter() - total:.1f} s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
