"""Names that become parts of file paths: one rule, checked wherever such a name is used.

An endpoint's name names its folders in the prediction log (``endpoint=NAME``) and in the
monitor history, so a name holding ``/`` or ``..`` would read or write outside the log
directory. Every place that turns a name into a path calls :func:`check_endpoint_name`.

:func:`is_model_uri` tells a registry URI from a path (a model source names either).
"""

from __future__ import annotations

import re
from typing import TypeGuard

from shipyard.errors import InvalidNameError

# a letter or digit first (never "." or ".."), then letters, digits, ".", "_", "-"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAFE_NAME_RULE = ("1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, "
                  "without path separators or control characters")


def is_safe_name(name: object) -> TypeGuard[str]:
    """True when ``name`` may be one component of a path (``fullmatch``: "$" in a pattern
    would also accept a trailing newline)."""
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None


def check_endpoint_name(name: object) -> str:
    """``name`` if it is a valid endpoint name; InvalidNameError naming the rule otherwise."""
    if not is_safe_name(name):
        raise InvalidNameError(f"invalid endpoint name {name!r}: use {SAFE_NAME_RULE}")
    return name


def is_model_uri(text: object) -> bool:
    """Whether ``text`` names a registry model (``models:/NAME/V``, ``models:/NAME@ALIAS``)
    rather than a path. Here, not in ``registry/``, so that telling the two apart imports
    no registry (SQLAlchemy: ~0.4 s of a batch run's start-up)."""
    # the scheme, not the full prefix: "models:fraud" is a malformed URI, not a path
    return isinstance(text, str) and text.startswith("models:")
