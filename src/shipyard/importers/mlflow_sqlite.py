"""MLflow runs in a local SQLite tracking store (``sqlite:///mlflow.db``, MLflow 3's default).

Read-only, with the standard library: a run's row (name, artifact location), its latest
metrics (MLflow keeps each metric's value at its highest step in ``latest_metrics``), its
params, and the logged models linked to it (``logged_models``).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlparse

from shipyard.errors import ConversionError
from shipyard.importers.mlflow_runs import MlflowRun


def sqlite_file(uri: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` -> the database file."""
    rest = uri.removeprefix("sqlite://")
    path = Path(unquote(rest[1:] if rest.startswith("/") else rest))
    if not path.is_file():
        raise ConversionError(f"no MLflow SQLite store at {path} (from {uri!r})")
    return path


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)


def read_run(db: Path, run_id: str) -> MlflowRun | None:
    """The run's name, experiment, metrics and params; None when the store has no such run."""
    with closing(_connect(db)) as conn:
        row = conn.execute("SELECT name, experiment_id FROM runs WHERE run_uuid = ?",
                           (run_id,)).fetchone()
        if row is None:
            return None
        metrics = {str(k): float(v) for k, v, nan in conn.execute(
            "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,))
            if not nan}
        params = {str(k): str(v) for k, v in conn.execute(
            "SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))}
    return MlflowRun(run_id=run_id, path=db, metrics=metrics, params=params, name=row[0],
                     experiment_id=None if row[1] is None else str(row[1]))


def model_candidates(db: Path, run_id: str, artifact: str) -> list[Path]:
    """Where the run's model ``artifact`` may be: under the run's artifacts, or the logged
    model of that name the run produced (MLflow 3)."""
    with closing(_connect(db)) as conn:
        found = [_local(uri) / artifact for (uri,) in conn.execute(
            "SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)) if uri]
        found += [_local(uri) for (uri,) in conn.execute(
            "SELECT artifact_location FROM logged_models WHERE source_run_id = ? AND name = ?",
            (run_id, artifact)) if uri]
    return found


def _local(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ConversionError(f"the run's artifacts are at {uri!r}, not on this machine: "
                              "download the model first (mlflow artifacts download)")
    return Path(uri)
