"""MLflow runs in a local file store (``mlruns/``) or SQLite store (``mlflow_sqlite``):
``runs:/`` URIs, metrics and params.

The file store's layout is read directly, with no MLflow server or package:
``mlruns/EXP/RUN/{meta.yaml, metrics/NAME, params/NAME, artifacts/...}`` and, since MLflow 3,
logged models in ``mlruns/EXP/models/MODEL_ID/{meta.yaml, artifacts/}``. A metric file holds
one ``timestamp value step`` line per logged value; the run's value is the one at the highest
step, then the latest time (as MLflow reports it).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from shipyard.errors import ConversionError

RUNS_PREFIX = "runs:/"
MAX_PARENTS = 6  # how far up from a model directory to look for its run


@dataclass(frozen=True)
class MlflowRun:
    run_id: str
    path: Path
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    experiment_id: str | None = None


def is_runs_uri(source: str) -> bool:
    return source.startswith(RUNS_PREFIX)


def tracking_store() -> tuple[str, Path]:
    """The local tracking store as (kind, path): ``("file", mlruns/)`` or ``("sqlite",
    mlflow.db)``, from ``$MLFLOW_TRACKING_URI`` (a path, ``file:`` or ``sqlite:`` URI) or,
    unset, as MLflow picks: ``./mlruns`` when it holds runs, else ``./mlflow.db`` if there.
    Other stores (a server, another database) are refused naming the way round."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        if Path("mlflow.db").is_file() and not any(Path("mlruns").glob("*/meta.yaml")):
            return "sqlite", Path("mlflow.db")
        return "file", Path("mlruns")
    if uri.startswith("sqlite:"):
        from shipyard.importers.mlflow_sqlite import sqlite_file

        return "sqlite", sqlite_file(uri)
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return "file", Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive
        raise ConversionError(
            f"MLFLOW_TRACKING_URI={uri!r} is not a local file store or SQLite database; "
            "shipyard reads runs from those only. Download the model first (mlflow artifacts "
            "download -u runs:/RUN_ID/PATH -d DIR) and import DIR")
    return "file", Path(uri)


def resolve_runs_uri(uri: str) -> tuple[Path, MlflowRun]:
    """``runs:/RUN_ID/PATH`` -> (the model directory, the run)."""
    rest = uri[len(RUNS_PREFIX):].lstrip("/")
    run_id, _, artifact = rest.partition("/")
    artifact = artifact.strip("/")
    if not run_id or not artifact:
        raise ConversionError(f"{uri!r} is not a runs URI: use runs:/RUN_ID/PATH")
    if not _safe_part(run_id) or any(not _safe_part(p) for p in artifact.split("/")):
        raise ConversionError(f"{uri!r}: the run id and path must not hold '..' or be empty")
    kind, base = tracking_store()
    run: MlflowRun | None
    if kind == "sqlite":
        from shipyard.importers import mlflow_sqlite

        run = mlflow_sqlite.read_run(base, run_id)
        candidates = [] if run is None else mlflow_sqlite.model_candidates(base, run_id,
                                                                           artifact)
    else:
        run_dir = _find_run_dir(run_id, [base])
        run = None if run_dir is None else read_run(run_dir)
        candidates = [] if run_dir is None else _model_candidates(run_dir, run_id, artifact)
    if run is None:
        raise ConversionError(f"run {run_id} is not in the MLflow {kind} store {base} (set "
                              "MLFLOW_TRACKING_URI to the store that holds it)")
    for candidate in candidates:
        if (candidate / "MLmodel").is_file():
            return candidate, run
    raise ConversionError(f"run {run_id} has no MLflow model at {artifact!r} (looked in its "
                          "artifacts and in the experiment's logged models)")


def find_run(model_dir: Path, run_id: str | None) -> MlflowRun | None:
    """The run that logged the model at ``model_dir`` (``MLmodel``'s run_id), when a file
    store holding it is around the directory, or the tracking store holds it."""
    if not run_id or not _safe_part(run_id):
        return None
    places = [model_dir.resolve(), *model_dir.resolve().parents][:MAX_PARENTS]
    with contextlib.suppress(ConversionError):  # another kind of store: no run to read
        kind, store = tracking_store()
        if kind == "sqlite":
            from shipyard.importers import mlflow_sqlite

            found = mlflow_sqlite.read_run(store, run_id)
            if found is not None:
                return found
        else:
            places.append(store)
    run_dir = _find_run_dir(run_id, places)
    return None if run_dir is None else read_run(run_dir)


def read_run(run_dir: Path) -> MlflowRun:
    meta = _meta(run_dir / "meta.yaml")
    tags = _values(run_dir / "tags")
    return MlflowRun(
        run_id=run_dir.name, path=run_dir, metrics=_metrics(run_dir / "metrics"),
        params=_values(run_dir / "params"),
        name=meta.get("run_name") or tags.get("mlflow.runName"),
        experiment_id=None if meta.get("experiment_id") is None
        else str(meta.get("experiment_id")))


def _find_run_dir(run_id: str, places: list[Path]) -> Path | None:
    for place in places:
        candidates = [place / run_id, *sorted(place.glob(f"*/{run_id}")),
                      *sorted(place.glob(f"mlruns/*/{run_id}"))]
        for candidate in candidates:
            if (candidate / "meta.yaml").is_file() and candidate.is_dir():
                return candidate
    return None


def _model_candidates(run_dir: Path, run_id: str, artifact: str) -> list[Path]:
    found = [run_dir / "artifacts" / artifact]
    location = _meta(run_dir / "meta.yaml").get("artifact_uri")
    if isinstance(location, str) and location.startswith("file:"):
        found.append(Path(unquote(urlparse(location).path)) / artifact)
    # MLflow 3: log_model(name=...) stores a logged model beside the runs, linked by run id
    for meta_file in sorted((run_dir.parent / "models").glob("*/meta.yaml")):
        meta = _meta(meta_file)
        if meta.get("source_run_id") == run_id and meta.get("name") == artifact:
            found.append(meta_file.parent / "artifacts")
    return found


def _meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _metrics(folder: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        best: tuple[int, int, float] | None = None
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            try:
                stamp, value = int(parts[0]), float(parts[1])
                step = int(parts[2]) if len(parts) > 2 else 0
            except (IndexError, ValueError):
                continue
            if best is None or (step, stamp) >= best[:2]:
                best = (step, stamp, value)
        if best is not None and math.isfinite(best[2]):
            out[path.relative_to(folder).as_posix()] = best[2]
    return out


def _values(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _safe_part(part: str) -> bool:
    return bool(part) and part not in (".", "..") and "\\" not in part
