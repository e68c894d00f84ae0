"""Every error shipyard raises, in one tree. No HTTP status codes here: faces map them
(``protocol.http_errors``: the caller's mistakes are 4xx, the server's own side 5xx).

Classes are defined here unless a module is named: those live beside the code that raises
them and derive from a class of this tree (tests/test_errors_tree.py checks both).

    ShipyardError
    ├── PackageError                  a model package cannot be written or read
    │   ├── ManifestError             the manifest is malformed
    │   │   └── UnsupportedFormatVersion
    │   ├── IntegrityError            files do not match the manifest
    │   │   ├── MissingFileError
    │   │   └── TamperedFileError
    │   ├── SignatureError            a signature is missing, untrusted or does not match
    │   │   │                         (packaging/signing.py, as are its subclasses)
    │   │   ├── UnsignedPackageError
    │   │   ├── UntrustedSignerError
    │   │   └── BadSignatureError
    │   ├── UntrustedCodeError        package code would run (import, unpickle) without trust
    │   │   └── UntrustedPickleError  a pickle would be loaded without trust=True
    │   └── ConversionError           a model could not be converted or packaged
    │       ├── NotAnMlflowModelError   the path is not an MLflow model directory
    │       │                           (importers/mlflow_dir.py, as is the next)
    │       └── UnsupportedFlavourError the MLflow model has no flavour shipyard imports
    ├── RuntimeUnavailableError       a runtime's optional dependency or artifact is missing
    ├── ConformanceError              a runtime breaks the Runtime interface
    │                                 (runtimes/conformance.py)
    ├── InvalidNameError              a name that becomes part of a path (an endpoint's) is
    │                                 not a safe name
    ├── InputValidationError          prediction input does not match the signature (.problems)
    │   └── InvalidLabelError         a feedback label does not fit the model's task
    ├── FeedbackError                 feedback refused
    │   ├── UnknownRequestError       names a request id the server never answered
    │   └── DuplicateLabelError       labels a row again without saying it replaces the label
    ├── RequestError                  a request cannot be read or is refused before validation
    │   ├── BadRequestError           malformed body or envelope (protocol/codec.py)
    │   ├── PayloadTooLargeError      (protocol/http_errors.py)
    │   ├── UnauthorizedError         missing or wrong API key (protocol/http_errors.py)
    │   ├── ForbiddenError            a valid API key that is not an admin key, on the
    │   │                             admin API (protocol/http_errors.py)
    │   ├── RateLimitedError          over a rate limit: 429 (protocol/http_errors.py)
    │   └── ClientGoneError           the client left before its body arrived
    │                                 (protocol/http_errors.py)
    ├── ServingError                  the server cannot answer a valid request now
    │   ├── ModelNotReadyError        the endpoint's model is not loaded (yet)
    │   ├── QueueFullError            the batcher's queue is full (batching.py)
    │   │   └── BatcherStuckError     calls past their deadline hold every slot (batching.py)
    │   ├── BatchTimeoutError         the request's deadline passed (batching.py)
    │   │   └── BatchDeadlineError    the batch call ran past its deadline (batching.py)
    │   │       └── _SlotKeptError    ... and its thread still holds the slot (private)
    │   ├── BatcherClosedError        the batcher is shutting down (batching.py)
    │   ├── InferenceProcessError     the inference process failed
    │   ├── RemoteModelError          the model raised in the inference process
    │   ├── RateLimitStoreError       the shared rate-limit store (Redis) fails
    │   │                             (stores/rate_limits.py)
    │   └── _RoutedError              a routed request's failure with its route, unwrapped
    │                                 before answering (server/hotpath.py, private)
    ├── OptimizationError             a package cannot be optimised: not ONNX, no reference
    │   │                             rows (runtimes/optimizing/errors.py, as are its
    │   │                             subclasses)
    │   ├── AccuracyGateError         the optimised model lost more than the tolerance (.result)
    │   └── LatencyTargetError        the optimised model is slower than the target latency
    ├── ConfigError                   the serve configuration is invalid (service/config_values.py)
    ├── DefenceConfigError            a defence setting is invalid; raised as a ConfigError
    │                                 (service/defence_config.py)
    ├── RateError                     a rate limit's rate or burst is invalid
    │                                 (defences/buckets.py)
    ├── OutputPolicyError             an output policy is invalid (defences/outputs.py)
    ├── RoutingError                  a traffic policy, its stored form or a routing key
    │                                 spec is invalid (routing/)
    ├── RegistryError                 a registry request is invalid
    │   ├── NotFoundError             unknown model, version or alias
    │   ├── ConflictError             refused because of the registry's state (e.g. archive
    │   │   │                         a version an alias points at)
    │   │   └── EvaluationRequiredError  no passed evaluation where one is required
    │   │                             (registry/evaluations.py)
    │   ├── IncompatibleSignatureError  promotion to a version that would break clients (.diff)
    │   ├── SchemaOutOfDateError      the database needs `shipyard db upgrade`
    │   └── RegistryUnavailableError  the registry's database cannot be reached
    ├── ArtifactStoreError            a blob is missing, corrupt or cannot be written
    ├── NothingLoggedError            an endpoint has nothing logged yet (stores/log_reader.py)
    ├── LogLocationError              a prediction-log location that cannot be used: a URL
    │                                 with a password, a missing bucket (stores/log_location.py)
    ├── InputError                    batch input cannot be found or read
    │                                 (stores/table_sources.py)
    ├── OutputError                   a batch output cannot be written where it was asked
    │                                 for: a missing bucket, no access (scoring/publish.py)
    ├── RejectLimitError              a batch run rejected more rows than --max-rejects
    │                                 allows (scoring/batch.py)
    ├── MonitoringError               monitoring cannot compute what was asked
    │   ├── ProfileError              data cannot be profiled, profiles cannot be merged, or
    │   │                             profile bytes are corrupt
    │   └── AlertError                alert configuration or state is invalid
    │       │                         (monitoring/alert_rules.py, as is AlertRuleError)
    │       └── AlertRuleError        a rule does not parse
    │           └── GateRuleError     an evaluation gate's rule does not parse
    │                                 (monitoring/evaluation_gate.py)
    ├── ExportError                   an endpoint cannot be exported to Docker, Kubernetes
    │                                 or KServe (export/common.py)
    └── ServerError                   the server answered an error status (client.py)
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


_HOW_TO_TRUST = ("if you trust who made this package, load it with shipyard.load(path, "
                "trust=True) or pass --trust on the command line (shipyard serve --trust, or "
                "trust: true on the endpoint in serve.yaml).")


class UntrustedCodeError(PackageError):
    """Loading would run code the package names (import a module it names, unpickle a file)
    but the caller has not said they trust the package. ``what`` names that code."""

    def __init__(self, what: str, message: str | None = None) -> None:
        self.what = what
        super().__init__(message or (
            f"the package names code to import ({what}), and importing it runs arbitrary "
            f"code. Its hashes match the manifest; {_HOW_TO_TRUST}"))


class UntrustedPickleError(UntrustedCodeError):
    """A pickle/joblib file would be loaded but the caller has not said they trust it."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(path, f"package file {path!r} is a pickle, and unpickling runs "
                               f"arbitrary code. Its hash matches the manifest; {_HOW_TO_TRUST}")


class ConversionError(PackageError):
    """A model could not be converted to the requested format or packaged at all."""


class RuntimeUnavailableError(ShipyardError):
    """A runtime cannot be used: its optional dependency or its artifact is missing."""


class InvalidNameError(ShipyardError):
    """A name that becomes part of a file path (an endpoint's) is not a safe name."""


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


class InvalidLabelError(InputValidationError):
    """A feedback label does not fit the model's task (``problems`` name each)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        self.args = (f"feedback labels do not fit the model:\n{lines}",)


class FeedbackError(ShipyardError):
    """Feedback the server refuses to log."""

    def __init__(self, message: str, request_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.request_ids = tuple(request_ids)


class UnknownRequestError(FeedbackError):
    """Feedback names a request id the server never answered (within its horizon)."""


class DuplicateLabelError(FeedbackError):
    """Feedback labels rows that already have labels, without ``replace``."""


class RoutingError(ShipyardError):
    """A traffic policy, its stored form or a routing key spec is invalid."""


class RegistryError(ShipyardError):
    """A registry request is invalid (bad name, malformed URI, ...)."""


class NotFoundError(RegistryError):
    """An unknown model, version or alias."""


class ConflictError(RegistryError):
    """The request conflicts with the registry's state."""


class IncompatibleSignatureError(RegistryError):
    """Moving an alias to a version whose signature would break the current one's clients."""

    def __init__(self, target: str, diff: Sequence[str]) -> None:
        self.diff = tuple(diff)
        lines = "\n".join(f"  - {d}" for d in self.diff)
        super().__init__(f"refusing to point {target}: its signature is incompatible with "
                         f"the version it replaces:\n{lines}\nPass force=True (--force) to "
                         "promote anyway; the override is audited.")


class SchemaOutOfDateError(RegistryError):
    """The registry database is not at the schema this shipyard needs."""


class RegistryUnavailableError(RegistryError):
    """The registry's database cannot be reached (refused, unknown host, wrong credentials)."""


class ArtifactStoreError(ShipyardError):
    """A blob is missing or corrupt, or the store cannot be written."""


class MonitoringError(ShipyardError):
    """Profiles, drift, quality or performance cannot be computed from what was given."""


class ProfileError(MonitoringError):
    """Data cannot be profiled (empty, ragged, unsupported type), two profiles cannot be
    merged, or profile bytes are corrupt."""


class RequestError(ShipyardError):
    """A request cannot be read, or is refused before its input is validated."""


class ServingError(ShipyardError):
    """The server cannot answer a valid request now (not loaded, overloaded, timed out,
    its inference process or its model failed)."""


class ModelNotReadyError(ServingError):
    """The endpoint has no model loaded (yet): it is still loading, or its load failed."""


class InferenceProcessError(ServingError):
    """The inference process failed to start, died, or could not run a batch."""


class RemoteModelError(ServingError):
    """The model raised in the inference process (an internal error, as it would be in a
    thread); the message is the child's error."""
