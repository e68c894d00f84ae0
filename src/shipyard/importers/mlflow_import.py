"""``import_mlflow``: an MLflow model directory (or ``runs:/`` URI) -> a shipyard ``Package``.

Flow: read ``MLmodel`` (flavour, signature, example) -> decide trust (pickles need it) ->
map MLflow's signature -> read the input example as the sample -> load the model as its
flavour says -> ``shipyard.package`` (ONNX with parity checks where a converter exists, the
native runtime otherwise) -> the run's metrics and params, and how the model was imported
(``metadata["imported"]``, the trust decision included), into the manifest.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConversionError
from shipyard.importers.mlflow_dir import MlflowModelDir, read_model_dir
from shipyard.importers.mlflow_example import example_file, read_example
from shipyard.importers.mlflow_flavours import TrustNeed, load_flavour, needs_trust
from shipyard.importers.mlflow_runs import (
    MlflowRun,
    find_run,
    is_runs_uri,
    resolve_runs_uri,
)
from shipyard.importers.mlflow_schema import describe_schema, map_signature
from shipyard.runtimes.packager import Format, Package, package


@dataclass(frozen=True)
class MlflowImport:
    """The package and what the import decided on the way."""

    package: Package
    source: str
    model_dir: Path
    flavour: str
    trust: TrustNeed
    trusted: bool
    run: MlflowRun | None


def locate(source: str | Path) -> tuple[MlflowModelDir, MlflowRun | None]:
    """The MLflow model at ``source`` (a directory or ``runs:/RUN_ID/PATH``) and its run,
    when a local file store holds it. Reads files only: nothing is loaded."""
    text = str(source)
    if is_runs_uri(text):
        path, run = resolve_runs_uri(text)
        return read_model_dir(path), run
    model = read_model_dir(Path(source))
    return model, find_run(model.path, model.run_id)


def trust_decision(model: MlflowModelDir, *, trust: bool) -> dict[str, Any]:
    """What the audit log records: whether loading runs code, which files, and the answer."""
    need = needs_trust(model)
    return {"needed": need.needed, "granted": trust and need.needed, "refused":
            need.needed and not trust, "files": list(need.files), "reason": need.reason}


def import_mlflow(source: str | Path, *, name: str | None = None, trust: bool = False,
                  format: Format = "auto", description: str | None = None,
                  reference: Any = None) -> MlflowImport:
    """Package the MLflow model at ``source``. Pickle-based flavours load only with
    ``trust=True`` (``UntrustedCodeError`` otherwise, before any file is unpickled).
    ``reference``: held-out rows (``X`` or ``(X, y)``, as ``shipyard.package`` takes them):
    the ONNX conversion is checked on them too (an input example has a few rows only), and
    the monitoring reference is profiled from them."""
    model, run = locate(source)
    flavour = model.flavour  # UnsupportedFlavourError names the supported ones
    signature = map_signature(model.signature)
    sample = read_example(model, signature)
    if sample is None:
        raise ConversionError(
            f"{model.path} was saved without an input example; shipyard needs rows to check "
            "its conversion and profile the inputs: log the model with input_example=...")
    loaded = load_flavour(model, trust=trust)
    obj: Any = loaded.model
    if flavour == "python_model":
        from shipyard.runtimes.adapters.mlflow_pyfunc import MlflowPyfuncAdapter

        obj = MlflowPyfuncAdapter(model.path, obj)
    model_name = name or default_name(model, run)
    pkg = package(obj, sample, name=model_name, signature=signature, format=format,
                  params=run.params if run else None, metrics=run.metrics if run else None,
                  description=description, reference=reference,
                  tags={"mlflow.flavour": flavour,
                        **({"mlflow.run_id": model.run_id} if model.run_id else {})})
    imported = {
        "from": "mlflow", "source": str(source), "flavour": flavour,
        "model_class": loaded.model_class, "mlflow_version": model.mlflow_version,
        "run_id": model.run_id, "model_id": model.model_id, "created": model.created,
        "run": None if run is None else {"name": run.name, "experiment_id": run.experiment_id,
                                         "metrics": len(run.metrics), "params": len(run.params)},
        "signature": describe_schema(model.signature),
        "input_example": example_file(model),
        "trust": trust_decision(model, trust=trust),
    }
    manifest = pkg.manifest
    metadata = {**manifest.metadata, "imported": imported}
    pkg = Package(dataclasses.replace(manifest, metadata=metadata), pkg.files)
    return MlflowImport(pkg, str(source), model.path, flavour, loaded.trust, trust, run)


def default_name(model: MlflowModelDir, run: MlflowRun | None) -> str:
    """A model name from the run's name or the directory's, made a valid shipyard name."""
    base = (run.name if run and run.name else None) or model.path.resolve().name
    if base == "artifacts":  # mlruns/EXP/models/ID/artifacts: the logged model's id
        base = model.path.resolve().parent.name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "mlflow-model"
    return cleaned.replace("..", ".")[:128]
