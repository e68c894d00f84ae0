"""The wiring layer: where the registry, the artifact store and the runtimes meet.

``load("models:/fraud@production")`` resolves through the registry, fetches the package from
the artifact store and loads it; a path loads directly.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.registry import Registry, is_model_uri
from shipyard.runtimes.model import LoadedModel
from shipyard.runtimes.model import load as load_path
from shipyard.settings import Settings


def load(source: str | Path, *, trust: bool = False, runtime: str | None = None,
         registry: Registry | None = None, settings: Settings | None = None) -> LoadedModel:
    """Load a package directory or a ``models:/NAME/V`` / ``models:/NAME@ALIAS`` URI.

    Every file's SHA-256 is verified; pickles and classes the package names load only with
    ``trust=True``.
    """
    if is_model_uri(source):
        owned = registry is None
        reg = registry or Registry(settings=settings)
        try:
            path = reg.fetch(str(source))
        finally:
            if owned:
                reg.close()
        return load_path(path, trust=trust, runtime=runtime, settings=settings)
    return load_path(source, trust=trust, runtime=runtime, settings=settings)
