"""Which package a batch run scores with: a package directory, or a ``models:/NAME/V`` /
``models:/NAME@ALIAS`` URI fetched from the registry once (every worker loads the fetched
directory)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shipyard.names import is_model_uri
from shipyard.runtimes.model import LoadedModel, VerifiedPackage, describe, load
from shipyard.settings import Settings


@dataclass(frozen=True)
class ModelSource:
    """A package directory and the model name and version it is logged under (a package
    directory: its directory's name and version 1, as the server logs it). ``uri`` and
    ``registry``: where a ``models:/`` package came from, so a process on another machine
    (a Ray actor), where ``path`` does not exist, fetches it into its own cache."""

    path: Path
    model: str
    version: int
    trust: bool = False
    uri: str | None = None
    registry: str | None = None

    def describe(self) -> VerifiedPackage:
        """The manifest and signature, every file verified, no runtime loaded."""
        return describe(self.path)

    def load(self, *, threads: int | None = None) -> LoadedModel:
        """The package on its runtime; ``threads``: ONNX Runtime's intra-op threads."""
        settings = Settings.from_env(ort_intra_op_threads=threads)
        path = self.path
        if self.uri is not None and not path.is_dir():
            from shipyard.registry import Registry

            with Registry(settings=Settings.from_env(registry_url=self.registry)) as reg:
                path = reg.fetch(self.uri)
        return load(path, trust=self.trust, settings=settings)


def resolve(source: str | Path, *, trust: bool = False,
            registry: str | None = None) -> ModelSource:
    """The package behind ``source``, fetched from the registry (URL ``registry``, else the
    configured one) when it is a ``models:/`` URI."""
    if not is_model_uri(source):
        path = Path(source).expanduser()
        return ModelSource(path, path.resolve().name, 1, trust)
    from shipyard.registry import Registry

    settings = Settings.from_env(registry_url=registry)
    with Registry(settings=settings) as reg:
        version = reg.get_version(str(source))
        path = reg.fetch(f"models:/{version.name}/{version.version}")
    return ModelSource(path, version.name, version.version, trust,
                       uri=f"models:/{version.name}/{version.version}", registry=registry)
