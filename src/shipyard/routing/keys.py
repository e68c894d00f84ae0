"""Where a request's routing key comes from: a key spec, parsed once, and the pure function
that reads the key out of one request.

Specs (the text a deployment stores and ``--key`` takes):

- ``header:NAME``  the value of request header NAME (case-insensitive, as HTTP says);
- ``json:A.B.C``   a dotted path into the parsed JSON body: each part is an object's key, or
  a decimal index into a list (``json:instances.0.user_id``);
- ``client``       the client's address (the host, as the server saw it).

The default is ``header:X-Routing-Key``, the header the prediction log already records.

A key is a non-empty string. A missing header, a path that does not lead to a value, a value
that is neither a string nor an integer (JSON numbers such as ``42`` become ``"42"``; floats,
booleans, objects, lists and null do not count) or an empty string all give ``None``: the
request has no key, and the policy's rule for keyless requests applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from shipyard.errors import RoutingError

KeySource = Literal["header", "json", "client"]

DEFAULT_KEY_SPEC = "header:X-Routing-Key"

# RFC 9110 token characters: what a header field name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_MAX_SPEC = 256


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A parsed key spec. ``name`` is the header name in lower case (``header``), the path's
    parts (``json``), or empty (``client``); ``text`` is the spec as written, what
    ``str()`` gives back and what is stored."""

    source: KeySource
    text: str
    header: str = ""
    path: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.text


def parse_key_spec(text: str) -> KeySpec:
    """``"header:X-User-Id"`` / ``"json:user.id"`` / ``"client"`` → a `KeySpec`.
    Anything else raises `RoutingError` naming what is wrong and what is accepted."""
    if not isinstance(text, str):
        raise RoutingError(f"a routing key spec must be a string, not {type(text).__name__}")
    if len(text) > _MAX_SPEC:
        raise RoutingError(f"routing key spec is {len(text)} characters long; at most "
                           f"{_MAX_SPEC} are allowed")
    source, sep, arg = text.partition(":")
    if source == "client":
        if sep:
            raise RoutingError(f"routing key spec {text!r}: 'client' takes no argument "
                               "(write just 'client')")
        return KeySpec("client", text)
    if source == "header" and sep:
        if not _HEADER_NAME.fullmatch(arg):
            raise RoutingError(f"routing key spec {text!r}: {arg!r} is not a header name "
                               "(letters, digits and !#$%&'*+-.^_`|~ only)")
        return KeySpec("header", text, header=arg.lower())
    if source == "json" and sep:
        parts = tuple(arg.split("."))
        if not arg or any(not p for p in parts):
            raise RoutingError(f"routing key spec {text!r}: the JSON path must be dot-separated "
                               "field names with none empty, e.g. 'json:user.id'")
        return KeySpec("json", text, path=parts)
    raise RoutingError(f"routing key spec {text!r} is not understood; write "
                       "'header:NAME' (e.g. header:X-User-Id), 'json:PATH' (e.g. json:user.id) "
                       "or 'client'")


DEFAULT_KEY = parse_key_spec(DEFAULT_KEY_SPEC)


def extract_key(spec: KeySpec, *, header: Callable[[str], str | None] | None = None,
                body: object = None, client: str | None = None) -> str | None:
    """The routing key of one request under ``spec``, or None when it has none.

    ``header(name)`` returns a header's value or None; it is called with the lower-case name
    (ASGI gives header names in lower case). ``body`` is the parsed JSON body (only read for
    ``json:`` specs), ``client`` the client's address. Never raises on what a request holds.
    """
    value: object
    if spec.source == "header":
        value = None if header is None else header(spec.header)
    elif spec.source == "client":
        value = client
    else:
        value = _walk(body, spec.path)
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _walk(value: object, path: tuple[str, ...]) -> object:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdecimal() and part.isascii():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return None
    return value
