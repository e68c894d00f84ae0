"""The optimised package: the original's manifest and files with the new ONNX graph.

Same name, signature, input example, reference profile and reference rows (the model's
inputs and the reference data did not change); one runtime, ``onnx``, reading the new
graph under the original file's name; a native runtime the original had (torch weights, a
pickle) is left out, since it would run the float model. ``metadata["optimization"]`` holds
what was done and measured; ``metadata["metrics"]`` the gate's numbers (the original's own
metrics described the float model, so they are not carried over).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from shipyard.errors import PackageError
from shipyard.packaging import FileEntry, Manifest, RuntimeSpec
from shipyard.runtimes.model import VerifiedPackage
from shipyard.runtimes.packager import Package


def optimized_package(original: VerifiedPackage, spec: RuntimeSpec, model: bytes,
                      optimization: Mapping[str, Any], metrics: Mapping[str, float]) -> Package:
    """A new ``Package`` (unsaved) running ``model`` where ``spec`` ran the original."""
    manifest = original.manifest
    runtime_files = {path for rt in manifest.runtimes for path in rt.files}
    files: dict[str, bytes] = {}
    for entry in manifest.files:
        if entry.path in runtime_files:
            continue
        try:
            files[entry.path] = (original.path / entry.path).read_bytes()
        except OSError as exc:
            raise PackageError(f"cannot read {entry.path} of the original package: {exc}"
                               ) from exc
    model_file = spec.files[0]
    files[model_file] = model
    meta = dict(manifest.metadata)
    meta["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["metrics"] = dict(metrics)
    meta["optimization"] = dict(optimization)
    meta["versions"] = {**dict(meta.get("versions") or {}), "onnxruntime": _version("onnxruntime"),
                        "onnx": _version("onnx")}
    new = Manifest(
        name=manifest.name, signature=manifest.signature,
        runtimes=(RuntimeSpec("onnx", (model_file,), dict(spec.options)),),
        files=tuple(FileEntry(p, len(d), hashlib.sha256(d).hexdigest())
                    for p, d in sorted(files.items())),
        metadata=meta, conversion=dict(manifest.conversion),
        input_example=manifest.input_example, reference_profile=manifest.reference_profile)
    return Package(new, files)


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
