"""What an image installs: shipyard at this version, with the extras its packages need, and
every dependency pinned to the version installed here (a constraints file).

The pins are the closure of shipyard's requirements (with those extras) over the
distributions installed in the running environment: what this process runs with is what the
image runs with. A requirement that is not installed here (one whose marker excludes this
platform) is left unpinned. Local version labels (``2.13.0+cpu``) are dropped from pins:
``==2.13.0`` matches them (PEP 440) and public indexes do not serve them.

shipyard itself comes from a wheel in the build context when one is at hand (``--wheel``, or
built from the source tree this shipyard runs from), else from the package index by
version. A wheel in the context is what makes the image's shipyard exactly this one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from shipyard._version import __version__
from shipyard.export.common import ExportError

DISTRIBUTION = "shipyard-ml"
# the extras a package's default runtime needs beside the server's
RUNTIME_EXTRAS = {"onnx": (), "sklearn": ("sklearn",), "torch": ("torch",),
                  "python": ("sklearn",), "mlflow": ("mlflow",)}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def canonical(name: str) -> str:
    """A distribution or extra name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extras_for(runtimes: Iterable[str]) -> tuple[str, ...]:
    """The extras an image needs to serve packages of ``runtimes``."""
    extras = {"server"}
    for runtime in runtimes:
        extras.update(RUNTIME_EXTRAS.get(runtime, ("sklearn",)))
    return tuple(sorted(extras))


def requirement(extras: Iterable[str]) -> str:
    """The one line of requirements.txt: shipyard at this version with ``extras``."""
    return f"{DISTRIBUTION}[{','.join(sorted(extras))}]=={__version__}"


def constraints(extras: Iterable[str]) -> list[str]:
    """``name==version`` for every installed distribution shipyard needs with ``extras``,
    shipyard excluded (requirements.txt names it), sorted by name."""
    pins: dict[str, str] = {}
    wanted: dict[str, set[str]] = {}
    todo: list[tuple[str, set[str]]] = [(DISTRIBUTION, {canonical(e) for e in extras})]
    while todo:
        name, asked = todo.pop()
        key = canonical(name)
        if key in wanted and asked <= wanted[key]:
            continue
        wanted[key] = wanted.get(key, set()) | asked
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here: its marker excludes this platform
        if key != DISTRIBUTION:
            pins[key] = f"{dist.metadata['Name']}=={dist.version.split('+')[0]}"
        for line in dist.requires or ():
            spec, _, marker = line.partition(";")
            match = _REQUIREMENT.match(spec)
            needs = {canonical(e) for e in _EXTRA_MARKER.findall(marker)}
            if match is None or (needs and not needs & wanted[key]):
                continue
            sub = {canonical(e) for e in (match.group(2) or "").split(",") if e.strip()}
            todo.append((match.group(1), sub))
    if DISTRIBUTION not in wanted or not pins:
        raise ExportError(f"{DISTRIBUTION} is not installed as a distribution here (run "
                          "from a source tree without `pip install -e .`?): cannot pin its "
                          "dependencies")
    return [pins[k] for k in sorted(pins)]


def source_tree() -> Path | None:
    """The source checkout this shipyard runs from (``src/shipyard`` beside a
    ``pyproject.toml`` naming shipyard-ml), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[3]
    project = root / "pyproject.toml"
    try:
        text = project.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if f'name = "{DISTRIBUTION}"' in text else None


def place_wheel(dest: Path, wheel: Path | None = None) -> Path | None:
    """shipyard's wheel in ``dest``: ``wheel`` (it must be this version), else one built
    from the source tree; None when neither exists (the image installs from the index)."""
    dest.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        prefix = f"{DISTRIBUTION.replace('-', '_')}-{__version__}-"
        if not (wheel.is_file() and wheel.name.startswith(prefix)
                and wheel.name.endswith(".whl")):
            raise ExportError(f"--wheel must be a {prefix}*.whl file (this shipyard is "
                              f"{__version__}), not {wheel}")
        return Path(shutil.copy2(wheel, dest / wheel.name))
    root = source_tree()
    return None if root is None else build_wheel(root, dest)


def build_wheel(root: Path, dest: Path) -> Path:
    """Build shipyard's wheel from ``root`` into ``dest`` (in a copy: the source tree gets
    no build/ or egg-info)."""
    with tempfile.TemporaryDirectory(prefix="shipyard-wheel-") as tmp:
        copy = Path(tmp) / "src-copy"
        copy.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, copy / name)
        shutil.copytree(root / "src", copy / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        out = Path(tmp) / "wheels"
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--quiet", "--wheel-dir", str(out), str(copy)],
            capture_output=True, text=True, check=False)
        built = sorted(out.glob("*.whl"))
        if done.returncode != 0 or len(built) != 1:
            raise ExportError(f"building shipyard's wheel from {root} failed "
                              f"(pip wheel exit {done.returncode}): {done.stderr[-2000:]}")
        return Path(shutil.copy2(built[0], dest / built[0].name))
