"""``shipyard package`` and ``shipyard inspect``: read files, call the library, print tables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shipyard.errors import PackageError
from shipyard.packaging import Manifest, verify_files
from shipyard.runtimes.packager import Format, package

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def read_sample(path: Path, target: str | None) -> tuple[Any, Any]:
    """Rows from .csv/.parquet (a DataFrame) or .npy (an array), and the target if named."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        import numpy as np

        return np.load(path, allow_pickle=False), None
    import pandas as pd

    if suffix == ".csv":
        frame = pd.read_csv(path)
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise PackageError(f"cannot read sample {path}: use .csv, .parquet or .npy")
    if target is None:
        return frame, None
    if target not in frame.columns:
        raise PackageError(f"target column {target!r} is not in {path} "
                           f"(columns: {list(frame.columns)})")
    return frame.drop(columns=[target]), frame[target]


def read_model(path: Path, trust: bool) -> Any:
    if path.suffix.lower() == ".onnx":
        return path
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not trust:
            raise PackageError(f"{path} is a pickle and unpickling runs arbitrary code; pass "
                               "--trust if you trust who made it")
        import joblib

        return joblib.load(path)
    raise PackageError(f"cannot read model {path}: use .onnx, or .joblib/.pkl with --trust")


def package_file(console: Console, model_file: Path, sample_file: Path, *, name: str,
                 output: Path, target: str | None, trust: bool, fmt: str,
                 description: str | None, force: bool) -> None:
    if fmt not in ("auto", "onnx", "native"):
        raise PackageError(f"--format must be auto, onnx or native, got {fmt!r}")
    model = read_model(model_file, trust)
    sample, target_values = read_sample(sample_file, target)
    fmt_: Format = fmt  # type: ignore[assignment]
    with console.status(f"packaging {model_file.name}…"):
        pkg = package(model, sample, name=name, target=target_values, format=fmt_,
                      description=description)
        pkg.save(output, overwrite=force)
    console.print(f"[green]✓[/] packaged [bold]{name}[/] → {output}")
    show_manifest(console, pkg.manifest)


def inspect_package(console: Console, path: Path) -> None:
    manifest = Manifest.read(path)
    verify_files(path, manifest.files)
    show_manifest(console, manifest)
    console.print(f"[green]✓[/] all {len(manifest.files)} files match their SHA-256")


def show_manifest(console: Console, manifest: Manifest, *, max_inputs: int | None = None) -> None:
    sig = manifest.signature
    meta = manifest.metadata
    others = ", ".join(r.name for r in manifest.runtimes[1:])
    console.print(f"[bold]{manifest.name}[/]  format v{manifest.format_version}  "
                  f"runtime [cyan]{manifest.runtime.name}[/]"
                  f"{f' (also: {others})' if others else ''}  "
                  f"task {sig.task}  framework {meta.get('framework')}")
    show_conversion(console, manifest)
    if manifest.reference_profile is not None:
        console.print(f"monitoring reference: {_reference_text(meta)}")
    inputs = Table(title=f"inputs ({sig.kind})")
    for col in ("name", "dtype", "shape", "nullable", "range / categories"):
        inputs.add_column(col)
    shown = sig.inputs if max_inputs is None else sig.inputs[:max_inputs]
    for c in shown:
        detail = (f"{c.minimum} … {c.maximum}" if c.minimum is not None
                  else ", ".join(map(str, c.categories[:8])) if c.categories else "")
        inputs.add_row(c.name, c.dtype, str(c.shape), "yes" if c.nullable else "no", detail)
    if len(shown) < len(sig.inputs):
        inputs.add_row(f"… {len(sig.inputs) - len(shown)} more", "", "", "", "")
    console.print(inputs)
    outputs = Table(title="outputs")
    for col in ("name", "dtype", "shape"):
        outputs.add_column(col)
    for o in sig.outputs:
        outputs.add_row(o.name, o.dtype, str(o.shape))
    console.print(outputs)
    if sig.class_labels is not None:
        console.print(f"classes: {list(sig.class_labels)}")
    files = Table(title="files")
    for col in ("path", "bytes", "sha256"):
        files.add_column(col)
    for f in manifest.files:
        files.add_row(f.path, f"{f.size:,}", f.sha256)
    console.print(files)


def show_conversion(console: Console, manifest: Manifest) -> None:
    """ONNX parity figures, or why the package fell back to the native runtime."""
    conv = manifest.conversion
    if conv.get("onnx"):
        onnx = conv["onnx"]
        console.print(f"ONNX parity: max |Δ| {onnx['max_abs_diff']:.3g} on {onnx['rows']} rows "
                      f"(tolerance {onnx['tolerance']:.3g})")
    if conv.get("fallback_reason"):
        console.print(f"[yellow]native fallback:[/] {conv['fallback_reason']}")


def _reference_text(meta: Mapping[str, Any]) -> str:
    """Which rows ``profile.bin`` profiles (older packages: the sample, unrecorded)."""
    ref = meta.get("reference") or {"source": "sample", "rows": meta.get("sample_rows"),
                                     "target": meta.get("target") is not None}
    rows = ref.get("rows")
    what = ("held-out rows" if ref.get("source") == "holdout"
            else "training-sample rows (an overfit model's estimate reads high on them)")
    label = "with target" if ref.get("target") else "no target"
    return f"{rows if rows is not None else '?'} {what}, {label}"
