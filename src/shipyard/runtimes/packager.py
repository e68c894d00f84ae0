"""``shipyard.package()``: model + sample -> a verified, self-describing package.

Flow: pick the adapter -> infer the signature -> run the native model on the sample (the
reference) -> convert to ONNX and check parity through the real load path -> fall back to the
native runtime when conversion or parity fails, saying why -> profile the reference rows
(held-out rows when given, else the sample) with the model's outputs on them and their target
(the monitoring reference) -> write files + manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shipyard._version import __version__
from shipyard.errors import ConversionError, InputValidationError, PackageError
from shipyard.packaging import (
    MANIFEST_FILE,
    FileEntry,
    Manifest,
    OutputSpec,
    Signature,
    check_name,
    describe_files,
    prepare,
)
from shipyard.packaging.inference import dtype_name
from shipyard.runtimes.adapters import Artifact, ModelAdapter, adapter_for
from shipyard.runtimes.lineage import code_version, data_fingerprint
from shipyard.runtimes.outputs import concat
from shipyard.runtimes.parity import RowSet, check_parity, describe_mismatch
from shipyard.runtimes.reference import PROFILE_FILE, reference_profile
from shipyard.runtimes.reference_rows import ROWS_FILE, rows_file
from shipyard.stores.directories import replace_directory
from shipyard.types import Columns, num_rows

Format = Literal["auto", "onnx", "native"]
EXAMPLE_FILE = "input_example.json"
EXAMPLE_ROWS = 5
PROBE_BASE_ROWS = 512


class Package:
    """An unsaved package: files in memory plus everything the manifest says about them."""

    def __init__(self, manifest: Manifest, files: Mapping[str, bytes]) -> None:
        self.manifest = manifest
        self.files = dict(files)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def signature(self) -> Signature:
        return self.manifest.signature

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the package to the directory ``path`` atomically; returns the path."""
        target = Path(path)
        if target.exists() and not target.is_dir():
            raise PackageError(f"{target} is a file; a package is a directory")
        if target.exists() and any(target.iterdir()) and not overwrite:
            raise PackageError(f"{target} already exists and is not empty; pass overwrite=True "
                               "(or --force) to replace it")
        with replace_directory(target) as staging:
            write_package(staging, self.manifest, self.files)
        return target

    def __repr__(self) -> str:
        return f"Package(name={self.name!r}, runtime={self.manifest.runtime.name!r})"


def write_package(root: Path, manifest: Manifest, files: Mapping[str, bytes]) -> Manifest:
    """Write ``files`` and a manifest listing each with its size and SHA-256."""
    for rel, data in files.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    final = dataclasses.replace(manifest, files=describe_files(root, files))
    (root / MANIFEST_FILE).write_text(final.to_json(), encoding="utf-8")
    return final


def package(model: Any, sample: Any = None, *, name: str, target: Any = None,
            params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
            description: str | None = None, tags: Mapping[str, str] | None = None,
            format: Format = "auto", signature: Signature | None = None,
            model_kwargs: Mapping[str, Any] | None = None,
            data_uri: str | None = None, reference: Any = None) -> Package:
    """Package ``model`` with the signature and reference of ``sample`` (training rows).

    ``target``: the sample's labels (or values), one per sample row.
    ``reference``: held-out rows the model did not train on, as ``(X, y)`` or just ``X``;
    when given, the monitoring reference (``profile.bin``) is built from them (their inputs,
    the model's outputs on them and ``y``) instead of from the training sample, on which an
    overfit model is over-confident and the label-free performance estimate optimistic. They
    must satisfy the signature inferred from ``sample``, and ``y`` needs one value per row.
    The manifest's ``metadata["reference"]`` says which rows the profile came from.
    ``format``: ``auto`` converts to ONNX when parity holds and falls back to the native
    runtime otherwise; ``onnx`` refuses the fallback; ``native`` skips conversion.
    ``model_kwargs`` rebuild a torch module or custom class at load time. ``data_uri`` says
    where the sample came from (recorded in lineage beside its fingerprint).
    """
    check_name(name)
    if format not in ("auto", "onnx", "native"):
        raise PackageError(f"format must be 'auto', 'onnx' or 'native', got {format!r}")
    adapter = adapter_for(model, dict(model_kwargs or {}))
    if sample is None and adapter.framework != "onnx":
        raise PackageError("a sample of the training inputs is required to infer the signature")
    sig = signature or adapter.signature(sample)
    task, labels = adapter.task()
    sig = sig.with_outputs((), task, labels)
    columns: Columns | None = None
    outputs: Columns = {}  # the native model's, on the sample: the parity reference
    if sample is not None:
        columns = prepare(sample, sig)  # the sample must satisfy its own signature
        outputs = adapter.native_outputs(sample, sig)
    holdout = None if reference is None else _holdout(adapter, sig, reference)
    sig = sig.with_outputs(_output_specs(outputs), task, labels)
    row_sets: list[RowSet] = [("sample", sample, outputs)]
    if holdout is not None:
        row_sets.append(("holdout", holdout[0], holdout[1]))
    artifacts, conversion = _artifacts(adapter, sig, sample, row_sets, format)
    files: dict[str, bytes] = {}
    for art in artifacts:
        files.update(art.files)
    example = _example(columns, sig) if columns is not None else None
    if example is not None:
        files[EXAMPLE_FILE] = example
    ref_columns, ref_outputs, ref_target, ref_source = columns, outputs, target, "sample"
    if holdout is not None:
        ref_columns, ref_outputs, ref_target = holdout
        ref_source = "holdout"
    profile_bytes = reference_profile(ref_columns, ref_outputs, sig, ref_target)
    if profile_bytes is not None:
        files[PROFILE_FILE] = profile_bytes
    rows_bytes = rows_file(ref_columns, ref_target, sig)  # tensor inputs: not in the profile
    if rows_bytes is not None:
        files[ROWS_FILE] = rows_bytes
    metadata = {
        "params": dict(params or {}), "metrics": dict(metrics or {}),
        "description": description, "tags": dict(tags or {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "framework": adapter.framework,
        "versions": {"python": platform.python_version(), "shipyard": __version__,
                     **adapter.versions()},
        "sample_rows": len(next(iter(columns.values()))) if columns else 0,
        "data": data_fingerprint(columns, data_uri) if columns is not None else None,
        "code": code_version(),
        "target": None if target is None else _describe_target(target),
        "reference": None if profile_bytes is None and rows_bytes is None else
        _describe_reference(ref_source, ref_columns, ref_target,
                            None if rows_bytes is None else ROWS_FILE),
    }
    manifest = Manifest(
        name=name, signature=sig, runtimes=tuple(a.runtime for a in artifacts),
        files=tuple(FileEntry(p, len(d), hashlib.sha256(d).hexdigest())
                    for p, d in sorted(files.items())),
        metadata=metadata, conversion=conversion,
        input_example=EXAMPLE_FILE if example is not None else None,
        reference_profile=PROFILE_FILE if profile_bytes is not None else None)
    return Package(manifest, files)


def _holdout(adapter: ModelAdapter, sig: Signature,
             given: Any) -> tuple[Columns, Columns, Any]:
    """The held-out reference rows as columns, the model's outputs on them, their target."""
    if isinstance(given, tuple) and len(given) != 2:
        raise PackageError(f"reference must be X or an (X, y) pair, got a tuple of "
                           f"{len(given)} items")
    rows, truth = given if isinstance(given, tuple) else (given, None)
    if rows is None:
        raise PackageError("reference=(X, y) has no rows: X is None")
    try:
        columns = prepare(rows, sig)
    except InputValidationError as exc:
        raise PackageError(f"the reference rows do not match the signature inferred from the "
                           f"sample: {exc}") from exc
    n = len(next(iter(columns.values())))  # prepare() refuses empty input
    if truth is not None:
        size = len(truth) if hasattr(truth, "__len__") else None
        if size != n:
            raise PackageError(f"the reference target has {size} values for {n} reference rows; "
                               "give one per row")
    return columns, adapter.native_outputs(rows, sig), truth


def _artifacts(adapter: ModelAdapter, sig: Signature, sample: Any, row_sets: list[RowSet],
               fmt: Format) -> tuple[list[Artifact], dict[str, Any]]:
    conversion: dict[str, Any] = {"source": adapter.framework, "onnx": None,
                                  "fallback_reason": None}
    artifacts: list[Artifact] = []
    if adapter.framework == "onnx":
        return [adapter.native(sig, sample)], conversion
    if fmt == "onnx" and not adapter.converts_to_onnx:
        raise ConversionError(f"{adapter.framework} models cannot be converted to ONNX")
    if fmt != "native" and adapter.converts_to_onnx:
        try:
            onnx = adapter.to_onnx(sig, sample)
            parity = check_parity(onnx, sig, [*row_sets, *_probes(adapter, onnx, sig, row_sets)],
                                  write_package)
            conversion["onnx"] = parity
            if not parity["ok"]:
                raise ConversionError(describe_mismatch(parity))
            artifacts.append(onnx)
        except ConversionError as exc:
            if fmt == "onnx":
                raise ConversionError(f"cannot convert to ONNX: {exc}") from exc
            conversion["fallback_reason"] = f"ONNX conversion failed: {exc}"
    if not artifacts or adapter.native_always:
        try:
            artifacts.append(adapter.native(sig, sample))
        except ConversionError as exc:
            if not artifacts:
                raise
            conversion["native_unavailable"] = str(exc)
    if conversion["fallback_reason"]:
        msg = (f"packaging {adapter.framework} model with the native "
               f"{artifacts[0].runtime.name!r} runtime: {conversion['fallback_reason']}")
        warnings.warn(msg, stacklevel=3)
    return artifacts, conversion


def _probes(adapter: ModelAdapter, art: Artifact, sig: Signature,
            row_sets: list[RowSet]) -> list[RowSet]:
    """Rows on the converted model's split thresholds, with the native outputs on them."""
    base = concat([prepare(rows, sig) for _, rows, _ in row_sets])
    n = len(next(iter(base.values())))
    if n > PROBE_BASE_ROWS:  # enough rows to reach every split; keeps the probing fast
        pick = np.linspace(0, n - 1, PROBE_BASE_ROWS).astype(int)
        base = {k: v[pick] for k, v in base.items()}
    probes = adapter.probe_rows(art, sig, base)
    if probes is None or not _row_count(probes):
        return []
    return [("split_probes", probes, adapter.native_outputs(probes, sig))]


def _row_count(rows: Any) -> int:
    return len(rows) if isinstance(rows, np.ndarray) else num_rows(rows)


def _output_specs(reference: Columns) -> list[OutputSpec]:
    specs = []
    for name, arr in reference.items():
        dtype = "string" if arr.dtype.kind in "OU" else dtype_name(arr)
        specs.append(OutputSpec(name, dtype, (-1, *arr.shape[1:])))
    return specs


def _example(columns: Columns, sig: Signature) -> bytes:
    """The first rows of the sample as JSON: records for tables, {input: nested lists} else."""
    head = {k: v[:EXAMPLE_ROWS] for k, v in columns.items()}
    if sig.kind == "tabular":
        n = len(next(iter(head.values())))
        payload: Any = [{k: _json_value(v[i]) for k, v in head.items()} for i in range(n)]
    else:
        payload = {k: v.tolist() for k, v in head.items()}
    return json.dumps(payload, indent=1).encode()


def _json_value(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _describe_reference(source: str, columns: Columns | None, target: Any,
                        stored_rows: str | None) -> dict[str, Any]:
    """Which rows ``profile.bin`` profiles, how many, whether it holds their target, and
    the file holding a sample of them when the profile cannot (tensor inputs)."""
    rows = len(next(iter(columns.values()))) if columns else 0
    out: dict[str, Any] = {"source": source, "rows": rows,
                           "target": target is not None and len(np.asarray(target)) == rows}
    if stored_rows is not None:
        out["rows_file"] = stored_rows
    return out


def _describe_target(target: Any) -> dict[str, Any]:
    arr = np.asarray(target)
    return {"name": getattr(target, "name", None), "rows": len(arr),
            "dtype": dtype_name(arr) if arr.dtype.kind != "O" else "string"}
