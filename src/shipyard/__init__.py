"""shipyard: package, register, serve, roll out and monitor ML models.

    import shipyard
    pkg = shipyard.package(model, X_train, name="iris")
    pkg.save("iris-pkg")
    model = shipyard.load("iris-pkg")
    model.predict(X_test).predictions

Importing shipyard is light: frameworks (sklearn, torch, the web stack) load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_names
from shipyard._version import __version__
from shipyard.errors import (
    ArtifactStoreError,
    ConflictError,
    ConversionError,
    IncompatibleSignatureError,
    InputValidationError,
    IntegrityError,
    ManifestError,
    MissingFileError,
    MonitoringError,
    NotFoundError,
    PackageError,
    Problem,
    ProfileError,
    RegistryError,
    RuntimeUnavailableError,
    SchemaOutOfDateError,
    ShipyardError,
    TamperedFileError,
    UnsupportedFormatVersion,
    UntrustedCodeError,
    UntrustedPickleError,
)

if TYPE_CHECKING:
    from shipyard.client import AsyncClient, Client
    from shipyard.monitoring import DriftReport, compare
    from shipyard.packaging import ColumnSpec, Manifest, OutputSpec, Signature
    from shipyard.profiles import Profile, profile
    from shipyard.registry import ModelVersion, Registry
    from shipyard.routing.plans import ABPlan, BlueGreenPlan, CanaryPlan, ShadowPlan
    from shipyard.runtimes import (
        Capabilities,
        LoadedModel,
        Package,
        Prediction,
        Runtime,
        check_runtime,
        package,
    )
    from shipyard.scoring import BatchSummary, predict_batch
    from shipyard.service import load
    from shipyard.service.evaluation import evaluate
    from shipyard.service.optimizing import optimize

_LAZY = {
    "package": "shipyard.runtimes.packager",
    "Package": "shipyard.runtimes.packager",
    "load": "shipyard.service",
    "optimize": "shipyard.service.optimizing",
    "evaluate": "shipyard.service.evaluation",
    "Registry": "shipyard.registry",
    "Client": "shipyard.client",
    "AsyncClient": "shipyard.client",
    "ModelVersion": "shipyard.registry",
    "LoadedModel": "shipyard.runtimes.model",
    "Prediction": "shipyard.runtimes.model",
    "Runtime": "shipyard.runtimes.base",
    "Capabilities": "shipyard.runtimes.base",
    "check_runtime": "shipyard.runtimes.conformance",
    "Signature": "shipyard.packaging.signature",
    "ColumnSpec": "shipyard.packaging.signature",
    "OutputSpec": "shipyard.packaging.signature",
    "Manifest": "shipyard.packaging.manifest",
    "profile": "shipyard.profiles",
    "compare": "shipyard.monitoring",
    "DriftReport": "shipyard.monitoring",
    "Profile": "shipyard.profiles",
    "CanaryPlan": "shipyard.routing.plans",
    "ABPlan": "shipyard.routing.plans",
    "ShadowPlan": "shipyard.routing.plans",
    "BlueGreenPlan": "shipyard.routing.plans",
    "predict_batch": "shipyard.scoring",
    "BatchSummary": "shipyard.scoring",
}

__all__ = [
    "ABPlan",
    "ArtifactStoreError",
    "AsyncClient",
    "BatchSummary",
    "BlueGreenPlan",
    "CanaryPlan",
    "Capabilities",
    "Client",
    "ColumnSpec",
    "ConflictError",
    "ConversionError",
    "DriftReport",
    "IncompatibleSignatureError",
    "InputValidationError",
    "IntegrityError",
    "LoadedModel",
    "Manifest",
    "ManifestError",
    "MissingFileError",
    "ModelVersion",
    "MonitoringError",
    "NotFoundError",
    "OutputSpec",
    "Package",
    "PackageError",
    "Prediction",
    "Problem",
    "Profile",
    "ProfileError",
    "Registry",
    "RegistryError",
    "Runtime",
    "RuntimeUnavailableError",
    "SchemaOutOfDateError",
    "ShadowPlan",
    "ShipyardError",
    "Signature",
    "TamperedFileError",
    "UnsupportedFormatVersion",
    "UntrustedCodeError",
    "UntrustedPickleError",
    "__version__",
    "check_runtime",
    "compare",
    "evaluate",
    "load",
    "optimize",
    "package",
    "predict_batch",
    "profile",
]


__getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
