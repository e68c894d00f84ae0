"""One exception tree: every exception class shipyard defines derives from ShipyardError,
under the parent that the tree in ``shipyard.errors``' docstring draws for it; and the
server maps the caller's mistakes to 4xx, its own side to 5xx."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import shipyard
from shipyard import errors


def _defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(shipyard.__path__, "shipyard."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (torch, ray, ...) that is not installed
            continue
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) \
                    and value.__module__ == info.name:
                found[value.__name__] = value
    return found


def _drawn_parents() -> dict[str, str]:
    """``{class: parent}`` as the docstring's tree draws them (by indentation)."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(.*?)(?:├── |└── )(\w+)", line)
        root = re.match(r"^\s+(ShipyardError)\s*$", line)
        if root:
            stack = [(-1, "ShipyardError")]
            continue
        if not match:
            continue
        depth = len(match.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match.group(2)] = stack[-1][1]
        stack.append((depth, match.group(2)))
    return parents


def test_every_exception_class_is_in_the_one_tree() -> None:
    found = _defined_exceptions()
    drawn = _drawn_parents()
    assert len(found) > 20, sorted(found)  # the walk really imported the package
    outside = sorted(n for n, cls in found.items() if not issubclass(cls, errors.ShipyardError))
    assert not outside, f"not derived from ShipyardError: {outside}"
    undrawn = sorted(set(found) - set(drawn) - {"ShipyardError"})
    assert not undrawn, f"missing from the tree in errors.py's docstring: {undrawn}"
    wrong = {n: (found[n].__mro__[1].__name__, drawn[n]) for n in found
             if n in drawn and found[n].__mro__[1].__name__ != drawn[n]}
    assert not wrong, f"(real parent, drawn parent): {wrong}"
    assert not set(drawn) - set(found), "the tree draws classes that do not exist"


def _status(exc: Exception) -> tuple[int, dict[bytes, bytes]]:
    from shipyard.protocol.http_errors import error_parts

    status, _, headers = error_parts(exc)
    return status, dict(headers)


def test_the_callers_mistakes_are_4xx_the_servers_side_5xx() -> None:
    from shipyard.batching import QueueFullError
    from shipyard.errors import InferenceProcessError, Problem, RemoteModelError
    from shipyard.protocol.codec import BadRequestError
    from shipyard.protocol.http_errors import PayloadTooLargeError, UnauthorizedError

    client = {errors.InputValidationError([Problem("x", "bad")]): 422,
              BadRequestError("malformed"): 400, PayloadTooLargeError("big"): 413,
              UnauthorizedError("key"): 401, errors.NotFoundError("no such endpoint"): 404}
    for exc, status in client.items():
        assert _status(exc)[0] == status, exc
    server = [errors.RuntimeUnavailableError("onnxruntime is not installed"),
              errors.ArtifactStoreError("s3://bucket unreachable"),
              errors.TamperedFileError("model.onnx", "a" * 64, "b" * 64),
              errors.ModelNotReadyError("endpoint 'x' has no model loaded yet"),
              InferenceProcessError("died"), RemoteModelError("ValueError: boom"),
              QueueFullError("full"), errors.SchemaOutOfDateError("upgrade"),
              errors.ShipyardError("anything else of the tree")]
    for exc in server:
        assert _status(exc)[0] >= 500, exc
    status, headers = _status(errors.ModelNotReadyError("not loaded yet"))
    assert status == 503 and int(headers[b"retry-after"]) > 0


@pytest.mark.parametrize("name", ["QueueFullError", "BatchTimeoutError", "BatcherClosedError",
                                  "InferenceProcessError", "NothingLoggedError"])
def test_classes_defined_beside_their_code_still_import_from_there(name: str) -> None:
    where = {"QueueFullError": "shipyard.batching", "BatchTimeoutError": "shipyard.batching",
             "BatcherClosedError": "shipyard.batching",
             "InferenceProcessError": "shipyard.runtimes.process",
             "NothingLoggedError": "shipyard.stores.predictions"}[name]
    assert issubclass(getattr(importlib.import_module(where), name), errors.ShipyardError)
