"""Every error shipyard raises, in one tree. No HTTP status codes here: faces map them.

    ShipyardError
    ├── PackageError                  a model package cannot be written or read
    │   ├── ManifestError             the manifest is malformed
    │   │   └── UnsupportedFormatVersion
    │   ├── IntegrityError            files do not match the manifest
    │   │   ├── MissingFileError
    │   │   └── TamperedFileError
    │   ├── UntrustedPickleError      a pickle would be loaded without trust=True
    │   └── ConversionError           a model could not be converted or packaged
    ├── RuntimeUnavailableError       a runtime's optional dependency or artifact is missing
    └── InputValidationError          prediction input does not match the signature (.problems)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ShipyardError(Exception):
    """Base class of every error shipyard raises on purpose."""


class PackageError(ShipyardError):
    """A model package cannot be written or read."""


class ManifestError(PackageError):
    """The package manifest is missing, malformed or inconsistent."""


class UnsupportedFormatVersion(ManifestError):  # noqa: N818 - reads as a noun
    """The manifest was written by a format version this shipyard does not know."""

    def __init__(self, found: object, supported: Sequence[int]) -> None:
        self.found = found
        self.supported = tuple(supported)
        super().__init__(
            f"unknown package format version {found!r}; this shipyard reads versions "
            f"{', '.join(map(str, self.supported))}. Upgrade shipyard to load this package."
        )


class IntegrityError(PackageError):
    """A package file does not match its manifest entry."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


class MissingFileError(IntegrityError):
    """A file listed in the manifest is not in the package."""

    def __init__(self, path: str) -> None:
        super().__init__(path, f"package file {path!r} is listed in the manifest but missing")


class TamperedFileError(IntegrityError):
    """A package file's SHA-256 differs from the manifest."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            path,
            f"package file {path!r} has been modified: SHA-256 {actual[:16]}… "
            f"does not match the manifest's {expected[:16]}…",
        )


class UntrustedPickleError(PackageError):
    """A pickle/joblib file would be loaded but the caller has not said they trust it."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"package file {path!r} is a pickle, and unpickling runs arbitrary code. Its hash "
            "matches the manifest; if you trust who made this package, load it with "
            "shipyard.load(path, trust=True) or pass --trust on the command line."
        )


class ConversionError(PackageError):
    """A model could not be converted to the requested format or packaged at all."""


class RuntimeUnavailableError(ShipyardError):
    """A runtime cannot be used: its optional dependency or its artifact is missing."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with prediction input; `field` names the column or input."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InputValidationError(ShipyardError):
    """Prediction input does not match the model signature. Lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"input does not match the model signature:\n{lines}")
