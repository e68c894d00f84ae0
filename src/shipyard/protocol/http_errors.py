"""The one place that maps errors to HTTP statuses: core errors carry no status codes.

Both the raw-ASGI hot routes and the Starlette routes answer errors through ``error_parts``,
and so does the raw inference process (``runtimes/raw_child.py``).
"""

from __future__ import annotations

import logging

from shipyard.batching import BatcherClosedError, BatchTimeoutError, QueueFullError
from shipyard.errors import (
    ArtifactStoreError,
    ConflictError,
    DuplicateLabelError,
    IncompatibleSignatureError,
    InferenceProcessError,
    InputValidationError,
    InvalidNameError,
    ModelNotReadyError,
    NotFoundError,
    RegistryError,
    RegistryUnavailableError,
    RemoteModelError,
    RequestError,
    RoutingError,
    SchemaOutOfDateError,
    ShipyardError,
    UnknownRequestError,
)
from shipyard.protocol import codec
from shipyard.stores.predictions import NothingLoggedError
from shipyard.stores.rate_limits import RateLimitStoreError

log = logging.getLogger("shipyard.serve")

RawHeaders = list[tuple[bytes, bytes]]


class PayloadTooLargeError(RequestError):
    """The request body is over the server's limit."""


class UnauthorizedError(RequestError):
    """The request has no API key, or a wrong one."""


class ForbiddenError(RequestError):
    """The request's API key is valid but does not allow this route (the admin API)."""


class RateLimitedError(RequestError):
    """A rate limit refused the request (429): which limit, its rate and burst, and the
    whole seconds to wait (``Retry-After``, at least 1)."""

    def __init__(self, message: str, *, limit: str, rate: float, burst: int,
                 retry_after: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.rate = rate
        self.burst = burst
        self.retry_after = retry_after


class ClientGoneError(RequestError):
    """The client disconnected before its request body arrived: there is no one to answer."""


# (error class, status, Retry-After seconds or None): the first class that matches wins.
# The caller's mistakes are 4xx; the server's own side (overloaded, not loaded, its store
# or runtime or model failing) is 5xx, never a 400 that would tell the caller to fix a
# request that was fine.
_STATUSES: tuple[tuple[type[Exception], int, bytes | None], ...] = (
    (InputValidationError, 422, None),
    (UnauthorizedError, 401, None),
    (ForbiddenError, 403, None),
    (PayloadTooLargeError, 413, None),
    (RateLimitedError, 429, None),  # its own Retry-After
    (RequestError, 400, None),
    (InvalidNameError, 400, None),
    (RoutingError, 400, None),  # a traffic policy or routing key spec that is not valid
    (NotFoundError, 404, None),
    (UnknownRequestError, 404, None),
    (NothingLoggedError, 404, None),
    (ConflictError, 409, None),
    (DuplicateLabelError, 409, None),
    (ModelNotReadyError, 503, b"5"),
    (QueueFullError, 503, b"1"),
    (BatcherClosedError, 503, b"1"),
    (InferenceProcessError, 503, b"1"),
    (ArtifactStoreError, 503, b"5"),
    (SchemaOutOfDateError, 503, None),
    (RegistryUnavailableError, 503, b"5"),
    (RateLimitStoreError, 503, b"1"),  # the shared limits' store fails, and fails closed
    (IncompatibleSignatureError, 409, None),
    (RegistryError, 400, None),  # any other registry request that is not valid
    (BatchTimeoutError, 504, None),
)
_PREFIX = {503: "unavailable: ", 504: "timed out: "}


def error_parts(exc: Exception) -> tuple[int, bytes, RawHeaders]:
    """Status, JSON body and extra headers for ``exc``."""
    if isinstance(exc, ShipyardError) and not isinstance(exc, RemoteModelError):
        for cls, status, retry in _STATUSES:
            if isinstance(exc, cls):
                return status, _body(exc, status), _headers(exc, retry)
        # any other error of the tree is the server's own (runtime missing, package or
        # configuration broken): a 500 that names it
        log.error("server error: %s: %s", type(exc).__name__, exc)
        return 500, codec.error_body(f"server error: {exc}"), []
    # a model's own exception (also one raised in the inference process) or a bug
    log.exception("internal error")
    return 500, codec.error_body(f"internal error: {type(exc).__name__}"), []


def _body(exc: ShipyardError, status: int) -> bytes:
    problems = exc.problems if isinstance(exc, InputValidationError) else None
    if isinstance(exc, (QueueFullError, BatcherClosedError)):
        return codec.error_body(f"overloaded: {exc}")
    if isinstance(exc, InferenceProcessError):
        return codec.error_body(f"model unavailable: {exc}")
    if isinstance(exc, RateLimitedError):
        return codec.dumps({"error": str(exc), "limit": exc.limit, "rate": exc.rate,
                            "burst": exc.burst, "retry_after": exc.retry_after})
    if isinstance(exc, ClientGoneError):  # the server drops this answer: nobody is there
        return codec.error_body("the client disconnected before sending its body")
    return codec.error_body(_PREFIX.get(status, "") + str(exc), problems)


def _headers(exc: ShipyardError, retry: bytes | None) -> RawHeaders:
    if isinstance(exc, UnauthorizedError):
        return [(b"www-authenticate", b"Bearer")]
    if isinstance(exc, RateLimitedError):
        return [(b"retry-after", b"%d" % exc.retry_after)]
    return [] if retry is None else [(b"retry-after", retry)]
