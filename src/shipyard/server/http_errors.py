"""The one place that maps errors to HTTP statuses: core errors carry no status codes.

Both the raw-ASGI hot routes and the Starlette routes answer errors through ``error_parts``.
"""

from __future__ import annotations

import logging

from shipyard.batching import BatcherClosedError, BatchTimeoutError, QueueFullError
from shipyard.errors import (
    DuplicateLabelError,
    InputValidationError,
    NotFoundError,
    ShipyardError,
    UnknownRequestError,
)
from shipyard.runtimes.process import InferenceProcessError
from shipyard.server import codec

log = logging.getLogger("shipyard.serve")

RawHeaders = list[tuple[bytes, bytes]]


class PayloadTooLargeError(ShipyardError):
    pass


class UnauthorizedError(ShipyardError):
    pass


class ClientGoneError(Exception):
    """The client disconnected before its request body arrived: there is no one to answer."""


def error_parts(exc: Exception) -> tuple[int, bytes, RawHeaders]:
    """Status, JSON body and extra headers for ``exc``."""
    if isinstance(exc, InputValidationError):
        return 422, codec.error_body(str(exc), exc.problems), []
    if isinstance(exc, codec.BadRequestError):
        return 400, codec.error_body(str(exc)), []
    if isinstance(exc, PayloadTooLargeError):
        return 413, codec.error_body(str(exc)), []
    if isinstance(exc, UnauthorizedError):
        return 401, codec.error_body(str(exc)), [(b"www-authenticate", b"Bearer")]
    if isinstance(exc, NotFoundError | UnknownRequestError):
        return 404, codec.error_body(str(exc)), []
    if isinstance(exc, DuplicateLabelError):
        return 409, codec.error_body(str(exc)), []
    if isinstance(exc, (QueueFullError, BatcherClosedError)):
        return 503, codec.error_body(f"overloaded: {exc}"), [(b"retry-after", b"1")]
    if isinstance(exc, InferenceProcessError):
        return 503, codec.error_body(f"model unavailable: {exc}"), [(b"retry-after", b"1")]
    if isinstance(exc, BatchTimeoutError):
        return 504, codec.error_body(f"timed out: {exc}"), []
    if isinstance(exc, ShipyardError):
        return 400, codec.error_body(str(exc)), []
    if isinstance(exc, ClientGoneError):  # the server drops this answer: nobody is there
        return 400, codec.error_body("the client disconnected before sending its body"), []
    log.exception("internal error")
    return 500, codec.error_body(f"internal error: {type(exc).__name__}"), []
