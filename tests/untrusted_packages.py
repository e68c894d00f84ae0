"""Hand-written packages whose manifests name code to run, with correct file hashes: only
trust stands between loading them and their code running.

``command_package``: the python runtime's ``model_class`` is ``subprocess:run`` and its
``init_kwargs`` run ``touch TARGET``. ``import_package``: the torch runtime's
``module_class`` lives in a module that creates ``TARGET`` when it is imported.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SIGNATURE = {"kind": "tabular", "task": "other",
             "inputs": [{"name": "x", "dtype": "float64", "shape": [-1], "nullable": False}],
             "outputs": [{"name": "prediction", "dtype": "float64", "shape": [-1]}]}


def write_package(root: Path, name: str, runtime: dict[str, Any],
                  files: dict[str, bytes]) -> Path:
    """A package directory with ``files`` (and an input example) listed with their hashes."""
    root.mkdir(parents=True)
    files = {"input_example.json": json.dumps({"x": [1.0, 2.0]}).encode(), **files}
    entries = []
    for path, data in files.items():
        (root / path).write_bytes(data)
        entries.append({"path": path, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"format_version": 1, "name": name, "signature": SIGNATURE,
                "runtimes": [runtime], "metadata": {}, "conversion": {},
                "input_example": "input_example.json", "reference_profile": None,
                "files": entries}
    (root / "shipyard.json").write_text(json.dumps(manifest, indent=2))
    return root


def command_package(root: Path, target: Path) -> Path:
    """The issue's package: loading it without the check runs ``touch TARGET``."""
    runtime = {"name": "python", "files": [],
               "options": {"model_class": "subprocess:run",
                           "init_kwargs": {"args": ["touch", str(target)]}}}
    return write_package(root, "evil", runtime, {})


def import_package(root: Path, module_dir: Path, module: str, target: Path) -> Path:
    """A torch-runtime package naming ``MODULE:Net``; ``MODULE`` (written into
    ``module_dir``, which the caller puts on ``sys.path``) creates ``TARGET`` on import."""
    module_dir.mkdir(parents=True, exist_ok=True)
    (module_dir / f"{module}.py").write_text(
        f"from pathlib import Path\nPath({str(target)!r}).touch()\n\n\nclass Net:\n    pass\n")
    runtime = {"name": "torch", "files": ["weights.safetensors"],
               "options": {"module_class": f"{module}:Net", "init_kwargs": {}}}
    return write_package(root, "evil-torch", runtime, {"weights.safetensors": b"not weights"})
