"""What a monitor compares a window with: the reference profile, and what it knows.

By default the reference is the profile the package ships (``profile.bin``, built from the
training sample with the model's outputs and the target), of the model version that served
the window's rows: ``models:/NAME/V`` from the registry, or the package directory an endpoint
serves from. Anything else can be named instead (``--reference`` or ``monitor.reference``): a
package directory, a ``models:/`` URI, a saved profile, or a dataset (``.parquet`` /
``.csv``; name its label column ``target`` and its outputs ``prediction`` / ``proba.C`` to
get target and prediction drift).

Only the manifest and the profile are read — never the model — so a monitor does not load
ONNX sessions; the profile's SHA-256 is checked against the manifest. For classifiers, a
calibrator is fitted on the profile's row sample when it holds both probabilities and the
target, so the label-free performance estimate uses calibrated confidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.monitoring.estimation import Calibrator
from shipyard.monitoring.outliers import OutlierModel
from shipyard.profiles import Profile, profile
from shipyard.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """A reference profile, where it came from, and what is learned from its row sample
    once: the calibrator (classifiers with a target) and the outlier model."""

    profile: Profile
    source: str
    calibrator: Calibrator | None = None
    outliers: OutlierModel | None = None
    task: str | None = None  # the package manifest's; None for a profile or dataset file

    @property
    def inputs(self) -> list[str] | None:
        """The model's input columns in a package's profile (what per-column alert rules
        may name); None for a profile or dataset file, whose columns are not known to be."""
        if self.task is None:
            return None
        return [c for c in self.profile.columns if c not in ("prediction", "target")
                and not c.startswith(("proba.", "output."))]

    @property
    def classes(self) -> list[str]:
        return [c[len("proba."):] for c in self.profile.columns if c.startswith("proba.")]


class ReferenceResolver:
    """Finds and caches references: by override, or by the (model, version) logged.

    ``model_source`` is what the endpoint serves (its serve-config ``model``); when it is a
    package directory, that directory is the reference of every version logged (the server
    logs path-served models as version 1 under the directory's name).
    """

    def __init__(self, override: str | None = None, *, model_source: str | None = None,
                 settings: Settings | None = None) -> None:
        self.override = override
        self.model_source = model_source
        self.settings = settings
        self._cache: dict[tuple[str, int] | None, Reference] = {}

    def get(self, model: str, version: int) -> Reference:
        key = None if self.override else (model, version)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._resolve(model, version)
        return found

    def _resolve(self, model: str, version: int) -> Reference:
        if self.override:
            return load_reference(self.override, self.settings)
        from shipyard.registry import is_model_uri

        source = self.model_source
        if source is not None and not is_model_uri(source):
            return load_reference(source, self.settings)
        uri = f"models:/{model}/{version}"
        try:
            return load_reference(uri, self.settings)
        except ShipyardError as exc:
            raise ShipyardError(
                f"no reference for {model} v{version}: {exc}. Pass --reference (a package "
                "directory, models:/ URI, profile or dataset file) or --config serve.yaml "
                "naming the endpoint's model") from exc


def load_reference(spec: str, settings: Settings | None = None) -> Reference:
    """A reference from a package directory, ``models:/`` URI, saved profile or dataset."""
    from shipyard.registry import is_model_uri

    if is_model_uri(spec):
        from shipyard.registry import Registry

        with Registry(settings=settings) as registry:
            path = registry.fetch(spec)
        return _reference(*_package_profile(path), source=spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _reference(*_package_profile(path), source=str(path))
    if not path.is_file():
        raise ShipyardError(f"reference {spec!r} is neither a file, a package directory nor "
                            "a models:/ URI")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq", ".csv"):
        return _reference(profile(_dataset(path)), source=str(path))
    return _reference(Profile.load(path), source=str(path))


def _dataset(path: Path) -> Any:
    """A reference dataset file as an Arrow table; a file that is not what its suffix says
    is one clear error (pyarrow raises OSError or ValueError kinds, with a traceback)."""
    csv = path.suffix.lower() == ".csv"
    try:
        if csv:
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise ShipyardError(f"cannot read reference {path} as {'CSV' if csv else 'Parquet'}: "
                            f"{str(exc).splitlines()[0]}") from None


def _package_profile(path: Path) -> tuple[Profile, str]:
    """The package's reference profile and its model's task."""
    from shipyard.packaging import Manifest, verify_files

    manifest = Manifest.read(path)
    name = manifest.reference_profile
    if name is None:
        raise ShipyardError(f"package {manifest.name} in {path} has no reference profile "
                            "(packaged by an older shipyard); repackage it or pass --reference")
    verify_files(path, [f for f in manifest.files if f.path == name])
    return Profile.load(path / name), manifest.signature.task


def _reference(reference: Profile, task: str | None = None, *, source: str) -> Reference:
    try:
        outliers: OutlierModel | None = OutlierModel.fit(reference)
    except ShipyardError as exc:  # no row sample, no usable column
        log.info("reference %s: no outlier model (%s)", source, exc)
        outliers = None
    return Reference(reference, source, fit_calibrator(reference), outliers, task)


def fit_calibrator(reference: Profile) -> Calibrator | None:
    """Isotonic calibration from the reference sample's probabilities and target, if any."""
    sample: dict[str, Any] = reference.sample
    classes = [c[len("proba."):] for c in reference.columns if c.startswith("proba.")]
    if len(classes) < 2 or "target" not in sample or any(
            f"proba.{c}" not in sample for c in classes):
        return None
    proba = {c: np.asarray(sample[f"proba.{c}"], dtype=np.float64) for c in classes}
    try:
        return Calibrator.fit(proba, np.asarray(sample["target"]), classes)
    except ShipyardError as exc:  # e.g. no sampled row has a known label
        log.info("reference %s: no calibrator (%s)", reference, exc)
        return None
