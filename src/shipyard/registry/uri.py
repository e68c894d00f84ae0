"""``models:/`` URIs: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME@latest``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import PackageError, RegistryError
from shipyard.packaging import check_name

SCHEME = "models:/"
LATEST = "latest"
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise RegistryError(f"invalid alias {alias!r}: use 1-64 lowercase letters, digits, '_' "
                            "or '-', starting with a letter")
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A model and, optionally, a version number or an alias (never both)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name

    @property
    def uri(self) -> str:
        return SCHEME + str(self)


def parse_ref(text: str, *, require_version: bool = False) -> ModelRef:
    """``NAME``, ``NAME/3``, ``NAME@alias``, with or without the ``models:/`` prefix."""
    if not isinstance(text, str):
        raise RegistryError(f"a model reference must be a string, got {type(text).__name__}")
    body = text[len(SCHEME):] if text.startswith(SCHEME) else text
    if text.startswith("models:") and not text.startswith(SCHEME):
        raise RegistryError(f"malformed model URI {text!r}: expected models:/NAME/VERSION or "
                            "models:/NAME@ALIAS")
    name, version, alias = body, None, None
    if "@" in body:
        name, _, alias = body.partition("@")
        if alias != LATEST:
            check_alias(alias)
    elif "/" in body:
        name, _, number = body.partition("/")
        if not (number.isascii() and number.isdigit()) or int(number) < 1:
            raise RegistryError(f"malformed model reference {text!r}: the version must be a "
                                "positive integer")
        version = int(number)
    try:
        check_name(name)
    except PackageError as exc:
        raise RegistryError(f"malformed model reference {text!r}: {exc}") from exc
    if require_version and version is None and alias is None:
        raise RegistryError(f"{text!r} names no version: use NAME/VERSION or NAME@ALIAS")
    return ModelRef(name, version, alias)
