"""The MLflow side of ``bench/registry.py``; runs in ``bench/.envs/mlflow``, not the project venv.

It is driven over pipes by ``bench/registry.py``: one JSON request per line on stdin, one JSON
reply per line on stdout (``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``). Everything
else the process prints (MLflow's messages, warnings) goes to stderr, so the protocol stays
clean. Keeping one long-lived worker lets the driver interleave MLflow's trials with
shipyard's, trial by trial, instead of timing the two tools minutes apart.

Requests (``cmd``):

* ``hello``: versions of the packages involved.
* ``setup`` {dir, model, populate, production}: fit the iris model, build a template database
  (schema, an experiment, the model logged once) and the populated database used by the
  resolve/alias operations (``populate`` versions, alias ``production`` on version
  ``production``).
* ``register`` {variant, n}: copy the template to a fresh database, then time ``n``
  registrations of one variant; returns the elapsed seconds.
* ``calibrate`` {op, trial_seconds} and ``time`` {op, iterations}: timed loops over the
  populated database, as in ``bench/runtime.py``.
* ``quit``.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from _timing import calibrate, time_calls

# the protocol owns the real stdout; anything else printed at fd 1 lands on stderr
_PROTOCOL = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr

import mlflow  # noqa: E402
import mlflow.sklearn  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

EXPERIMENT = "bench"
ALIAS_MOVED = "staging"
REGISTER_VARIANTS = ("register_model", "create_model_version", "log_model",
                     "log_model_pinned")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _copy_db(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dest}{suffix}")


class Worker:
    def __init__(self) -> None:
        self.model: Any = None
        self.sample: Any = None
        self.name = "bench-iris"
        self.template_db: Path | None = None
        self.experiment_id = ""
        self.model_uri = ""
        self.run_id: str | None = None
        self.model_id: str | None = None
        self.client: MlflowClient | None = None
        self.root = Path()
        self.trial = 0
        self.alias_cursor = 0
        self.populate = 0
        self.production = 0
        self.ops: dict[str, Callable[[], object]] = {}
        # MLflow 3 names a logged model with ``name=``; MLflow 2 used ``artifact_path=``
        params = inspect.signature(mlflow.sklearn.log_model).parameters
        self.name_kw = "name" if "name" in params else "artifact_path"
        self.has_model_id = "model_id" in inspect.signature(
            MlflowClient.create_model_version).parameters

    # -- commands --------------------------------------------------------------------------

    def hello(self, _: dict[str, Any]) -> dict[str, Any]:
        import sklearn
        import sqlalchemy

        return {
            "python": platform.python_version(),
            "mlflow": mlflow.__version__,
            "distribution": "mlflow" if _version("mlflow") else "mlflow-skinny",
            "sqlalchemy": sqlalchemy.__version__,
            "alembic": _version("alembic"),
            "sklearn": sklearn.__version__,
            "executable": sys.executable,
        }

    def setup(self, req: dict[str, Any]) -> dict[str, Any]:
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        self.root = Path(req["dir"])
        self.name = req["model"]
        self.populate = int(req["populate"])
        self.production = int(req["production"])
        features, target = load_iris(return_X_y=True)
        self.model = LogisticRegression(max_iter=1000).fit(features, target)
        self.sample = features[:5]

        t0 = time.perf_counter()
        self.template_db = self.root / "template" / "mlflow.db"
        self.template_db.parent.mkdir(parents=True)
        self._use(self.template_db)
        self.experiment_id = mlflow.create_experiment(
            EXPERIMENT, artifact_location=(self.root / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=self.experiment_id) as run:
            info = self._log_model(pinned=False)
        self.model_uri, self.run_id = info.model_uri, run.info.run_id
        self.model_id = getattr(info, "model_id", None)
        template_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        resolve_db = self.root / "resolve" / "mlflow.db"
        _copy_db(self.template_db, resolve_db)
        client = self._use(resolve_db)
        for _ in range(self.populate):
            mlflow.register_model(self.model_uri, self.name)
        client.set_registered_model_alias(self.name, "production", self.production)
        self.client = client
        name, production = self.name, self.production

        def set_alias() -> None:
            self.alias_cursor += 1
            client.set_registered_model_alias(
                name, ALIAS_MOVED, 1 + self.alias_cursor % self.populate)

        self.ops = {
            "get_version": lambda: client.get_model_version(name, "3"),
            "get_by_alias": lambda: client.get_model_version_by_alias(name, "production"),
            "set_alias": set_alias,
        }
        check = {"get_version": client.get_model_version(name, "3").version,
                 "get_by_alias": client.get_model_version_by_alias(name, "production").version}
        if (int(check["get_version"]), int(check["get_by_alias"])) != (3, production):
            raise RuntimeError(f"populated database answers {check}")
        return {"template_s": template_s, "populate_s": time.perf_counter() - t1,
                "model_uri": self.model_uri, "log_model_kw": self.name_kw}

    def register(self, req: dict[str, Any]) -> dict[str, Any]:
        variant, n = req["variant"], int(req["n"])
        if variant not in REGISTER_VARIANTS:
            raise ValueError(f"unknown variant {variant!r}")
        assert self.template_db is not None, "setup first"
        self.trial += 1
        db = self.root / f"trial-{self.trial}" / "mlflow.db"
        _copy_db(self.template_db, db)
        client = self._use(db)
        name, uri, experiment = self.name, self.model_uri, self.experiment_id
        if variant == "register_model":
            def one() -> object:
                return mlflow.register_model(uri, name)
        elif variant == "create_model_version":
            extra = {"model_id": self.model_id} if self.has_model_id and self.model_id else {}
            created: list[bool] = []

            def one() -> object:  # what a client-API user writes: create the model once
                if not created:
                    client.create_registered_model(name)
                    created.append(True)
                return client.create_model_version(name, uri, run_id=self.run_id, **extra)
        else:
            pinned = variant == "log_model_pinned"

            def one() -> object:
                with mlflow.start_run(experiment_id=experiment):
                    return self._log_model(pinned=pinned, register=True)
        elapsed = time_calls(one, n)
        latest = max(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        if latest != n:
            raise RuntimeError(f"{variant}: expected {n} versions, the database has {latest}")
        return {"elapsed": elapsed}

    def calibrate(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"iterations": calibrate(self.ops[req["op"]], float(req["trial_seconds"]),
                                         min_calls=5)}

    def time(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"elapsed": time_calls(self.ops[req["op"]], int(req["iterations"]))}

    # -- helpers ---------------------------------------------------------------------------

    def _use(self, db: Path) -> MlflowClient:
        """Point MLflow (fluent API and a client) at ``db`` and open its stores untimed."""
        uri = f"sqlite:///{db}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
        return client

    def _log_model(self, *, pinned: bool, register: bool = False) -> Any:
        kwargs: dict[str, Any] = {self.name_kw: "model", "input_example": self.sample}
        if register:
            kwargs["registered_model_name"] = self.name
        if pinned:
            import sklearn

            kwargs["pip_requirements"] = [f"scikit-learn=={sklearn.__version__}"]
        return mlflow.sklearn.log_model(self.model, **kwargs)


def main() -> int:
    worker = Worker()
    handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "hello": worker.hello, "setup": worker.setup, "register": worker.register,
        "calibrate": worker.calibrate, "time": worker.time,
    }
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        try:
            reply = {"ok": True, **handlers[req["cmd"]](req)}
        except Exception as exc:  # report, keep serving: the driver decides what to do
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        _PROTOCOL.write(json.dumps(reply) + "\n")
        _PROTOCOL.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
