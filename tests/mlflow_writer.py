"""Writes MLflow model directories with the real ``mlflow`` package (run as a script, in its
own process: ``python tests/mlflow_writer.py OUT``), for tests/test_mlflow_import.py.

For each flavour it logs a run (params, metrics) and the model to a file store at OUT/mlruns
(the last case, ``sqlite_store``, to a SQLite store at OUT/sqlite/mlflow.db), downloads the
model to OUT/<case>, and writes OUT/<case>.expected.json:
MLflow's own ``pyfunc.load_model(...).predict`` on the rows of OUT/rows.json, the run id and
the logged model's runs:/ URI. Torch and python models import their classes from
mlflow_writer_code/ (logged with code_paths, as a user's would be).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MLFLOW_ALLOW_MODEL_CODE_EXECUTION", "true")
os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
os.environ["GIT_PYTHON_REFRESH"] = "quiet"
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # the file store the importer reads
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

CODE = Path(__file__).resolve().parent / "mlflow_writer_code"
sys.path.insert(0, str(CODE))


def data(seed: int = 0) -> tuple[object, np.ndarray]:
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(int)
    frame = pd.DataFrame(x, columns=["sepal", "petal", "stem", "leaf"])
    return frame, y


def main(out: Path) -> None:
    import mlflow
    from mlflow.models import infer_signature

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # MLflow's SQLite store puts artifacts under ./mlruns by default
    mlflow.set_tracking_uri((out / "mlruns").resolve().as_uri())
    mlflow.set_experiment("shipyard-import")
    frame, y = data()
    cases = {"sklearn": _sklearn, "sklearn_skops": _sklearn_skops, "xgboost": _xgboost,
             "lightgbm": _lightgbm,
             "lightgbm_booster": _lightgbm_booster, "pytorch": _pytorch,
             "pytorch_pt2": _pytorch_pt2,
             "pyfunc": _pyfunc, "sqlite_store": _xgboost}
    wanted = sys.argv[2:] or list(cases)
    for case in wanted:
        started = time.monotonic()
        if case == "sqlite_store":  # MLflow 3's default store: a SQLite database
            (out / "sqlite").mkdir(exist_ok=True)
            mlflow.set_tracking_uri(f"sqlite:///{(out / 'sqlite' / 'mlflow.db').resolve()}")
            mlflow.set_experiment("shipyard-import")
        with mlflow.start_run(run_name=case) as run:
            mlflow.log_params({"case": case, "rows": len(frame)})
            model, rows_in, save = cases[case](frame, y)
            mlflow.log_metric("accuracy", 0.5, step=0)
            mlflow.log_metric("accuracy", 0.9, step=1)
            mlflow.log_metric("loss", 0.25)
            example = rows_in[:5] if not hasattr(rows_in, "iloc") else rows_in.iloc[:5]
            signature = infer_signature(rows_in, _raw_predict(model, rows_in))
            info = save(model, signature, example, name="model")
            path = out / case
            mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(path))
        loaded = mlflow.pyfunc.load_model(str(path))
        predicted = loaded.predict(rows_in)
        expected = {"run_id": run.info.run_id, "model_uri": info.model_uri,
                    "runs_uri": f"runs:/{run.info.run_id}/model",
                    "rows": np.asarray(rows_in).tolist(),
                    "columns": list(rows_in.columns) if hasattr(rows_in, "columns") else None,
                    "predictions": np.asarray(predicted).tolist()}
        (out / f"{case}.expected.json").write_text(json.dumps(expected))
        print(f"{case} written in {time.monotonic() - started:.1f} s", flush=True)


def _raw_predict(model: object, rows: object) -> object:
    if hasattr(model, "forward"):
        import torch

        with torch.no_grad():
            return model(torch.from_numpy(np.asarray(rows))).numpy()
    if hasattr(model, "load_context"):  # a PythonModel: predict(context, model_input)
        return model.predict(None, rows)
    return model.predict(rows)  # type: ignore[attr-defined]


def _saver(log_model, **options):  # type: ignore[no-untyped-def]
    def save(m, signature, example, name):  # type: ignore[no-untyped-def]
        return log_model(m, name=name, signature=signature, input_example=example,
                         pip_requirements=[], **options)
    return save


def _sklearn(frame, y):  # type: ignore[no-untyped-def]
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y)

    save = _saver(mlflow.sklearn.log_model, serialization_format="cloudpickle")
    return model, frame.iloc[:40], save


def _sklearn_skops(frame, y):  # type: ignore[no-untyped-def]
    """MLflow 3's default format for scikit-learn: skops (trees' node arrays are a type
    skops does not trust: a linear model here, which needs no trust)."""
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    model = make_pipeline(MinMaxScaler(), LogisticRegression(C=0.5)).fit(frame, y)
    return model, frame.iloc[:40], _saver(mlflow.sklearn.log_model)


def _xgboost(frame, y):  # type: ignore[no-untyped-def]
    import mlflow
    from xgboost import XGBClassifier

    model = XGBClassifier(n_estimators=20, max_depth=3).fit(frame, y)

    save = _saver(mlflow.xgboost.log_model, model_format="json")
    return model, frame.iloc[:40], save


def _lightgbm(frame, y):  # type: ignore[no-untyped-def]
    import mlflow
    from lightgbm import LGBMClassifier

    model = LGBMClassifier(n_estimators=20, verbose=-1).fit(frame, y)

    save = _saver(mlflow.lightgbm.log_model, serialization_format="cloudpickle")
    return model, frame.iloc[:40], save


def _lightgbm_booster(frame, y):  # type: ignore[no-untyped-def]
    import lightgbm as lgb
    import mlflow

    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 7},
                        lgb.Dataset(frame, label=frame["sepal"] * 2 + y), num_boost_round=15)

    save = _saver(mlflow.lightgbm.log_model)
    return booster, frame.iloc[:40], save


def _pytorch(frame, y):  # type: ignore[no-untyped-def]
    import mlflow
    import torch
    from writer_models import TinyNet

    torch.manual_seed(0)
    net = TinyNet(4, 8, 2)
    x = torch.from_numpy(frame.to_numpy(np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), torch.from_numpy(y))
        loss.backward()
        opt.step()
    net.eval()

    save = _saver(mlflow.pytorch.log_model, serialization_format="pickle",
                  code_paths=[str(CODE / "writer_models.py")])
    return net, frame.to_numpy(np.float32)[:40], save


def _pytorch_pt2(frame, y):  # type: ignore[no-untyped-def]
    """MLflow 3's default for pytorch: a torch.export program (model.pt2)."""
    import mlflow

    net, rows, _ = _pytorch(frame, y)
    return net, rows, _saver(mlflow.pytorch.log_model)


def _pyfunc(frame, y):  # type: ignore[no-untyped-def]
    import mlflow
    from writer_models import Thresholds

    model = Thresholds(weights=[1.0, 0.5, -1.0, 0.0], bias=0.1)

    def save(m, signature, example, name):  # type: ignore[no-untyped-def]
        return mlflow.pyfunc.log_model(name=name, python_model=m, signature=signature,
                                       pip_requirements=[],
                                       input_example=example,
                                       code_paths=[str(CODE / "writer_models.py")])
    return model, frame.iloc[:40], save


if __name__ == "__main__":
    main(Path(sys.argv[1]))
