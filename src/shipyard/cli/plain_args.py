"""Commands whose common command lines are read without typer (``shipyard predict``).

Typer (0.2x) costs ~0.15 s of CPU before a command starts: importing it, building every
command of the app and a pydantic adapter per parameter of the one it runs; a tenth of a
batch run over a million rows. A command declared with ``Option`` and ``Argument`` from here
is the same typer command (they make ``typer.Option`` / ``typer.Argument`` when typer reads
the annotations), and ``plain_kwargs`` reads the same declarations without importing typer.

It takes the common lines only: arguments in order, options by a declared name
(``--name VALUE``, ``--name=VALUE``, flags), each once, values of type str, int, float or
bool. Anything else (``--help``, an unknown or repeated option, a value that is not a plain
number, a missing required parameter, a declaration with more than help text) gives None,
and typer parses the line itself with its own messages and help.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

_INT = re.compile(r"\d+")
_FLOAT = re.compile(r"[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_PLAIN_TYPES = (str, int, float, bool)
_WORDING = frozenset({"help", "show_default", "metavar", "hidden", "rich_help_panel"})
_reading: ContextVar[bool] = ContextVar("reading", default=False)


@dataclass(eq=False)
class Declared:
    """An ``Option`` or ``Argument`` as declared, when ``plain_kwargs`` reads it."""

    option: bool
    decls: tuple[str, ...]
    settings: dict[str, Any]


def Option(*decls: str, **settings: Any) -> Any:  # noqa: N802 - typer's name
    """``typer.Option(*decls, **settings)``."""
    if _reading.get():
        return Declared(True, decls, settings)
    import typer

    return typer.Option(*decls, **settings)


def Argument(**settings: Any) -> Any:  # noqa: N802 - typer's name
    """``typer.Argument(**settings)``."""
    if _reading.get():
        return Declared(False, (), settings)
    import typer

    return typer.Argument(**settings)


@dataclass(frozen=True)
class _Param:
    name: str
    kind: type  # str, int, float or bool
    required: bool
    default: Any


def plain_kwargs(command: Callable[..., Any], args: Sequence[str]) -> dict[str, Any] | None:
    """The keyword arguments typer would call ``command`` with for ``args`` (the words after
    the command's name), or None when the line is not a plain one (typer then parses it)."""
    spec = _spec(command)
    if spec is None:
        return None
    positional, options = spec
    given: dict[str, Any] = {}
    words = list(args)
    at = 0
    while at < len(words):
        word = words[at]
        at += 1
        if not word.startswith("-") or word == "-":
            free = [p for p in positional if p.name not in given]
            if not free:
                return None  # more arguments than the command takes
            param = free[0]
            value = _value(param, word)
        else:
            name, eq, inline = word.partition("=")
            found = options.get(name)
            if found is None:
                return None  # --help, an unknown option, "--", a cluster like -qi
            param, flag = found
            if flag is not None:
                if eq:
                    return None
                value = flag
            else:
                if not eq:
                    if at >= len(words):
                        return None
                    inline = words[at]
                    at += 1
                if inline.startswith("-"):
                    return None
                value = _value(param, inline)
        if value is None or param.name in given:
            return None
        given[param.name] = value
    kwargs: dict[str, Any] = {}
    for param in [*positional, *(p for p, _ in options.values())]:
        if param.name in kwargs:
            continue
        if param.name in given:
            kwargs[param.name] = given[param.name]
        elif param.required:
            return None
        else:
            kwargs[param.name] = param.default
    return kwargs


def _value(param: _Param, text: str) -> Any:
    """``text`` as the parameter's type; None when typer might read it otherwise."""
    if param.kind is str:
        return text
    if param.kind is int:
        return int(text) if _INT.fullmatch(text) else None
    if param.kind is float:
        return float(text) if _FLOAT.fullmatch(text) else None
    return None  # a bool is a flag, never a value


def _spec(command: Callable[..., Any]
          ) -> tuple[list[_Param], dict[str, tuple[_Param, bool | None]]] | None:
    """The command's arguments in order, and its options by name (with the value a flag
    name stands for), or None if a parameter is not a plain one."""
    token = _reading.set(True)
    try:
        hints = typing.get_type_hints(command, include_extras=True)
    except Exception:  # an annotation that does not evaluate here: typer's to read
        return None
    finally:
        _reading.reset(token)
    positional: list[_Param] = []
    options: dict[str, tuple[_Param, bool | None]] = {}
    for name, parameter in inspect.signature(command).parameters.items():
        hint = hints.get(name)
        if get_origin(hint) is not typing.Annotated:
            return None
        base, *extras = get_args(hint)
        declared = [e for e in extras if isinstance(e, Declared)]
        kind = _plain_type(base)
        if kind is None or len(declared) != 1 or not set(declared[0].settings) <= _WORDING:
            return None
        info = declared[0]
        required = parameter.default is inspect.Parameter.empty
        param = _Param(name, kind, required, None if required else parameter.default)
        if not info.option:
            if kind is bool:
                return None
            positional.append(param)
            continue
        names = _option_names(name, kind, info.decls)
        if names is None or names.keys() & options.keys():
            return None
        options.update({option: (param, flag) for option, flag in names.items()})
    return positional, options


def _option_names(name: str, kind: type, decls: tuple[str, ...]
                  ) -> dict[str, bool | None] | None:
    """Each name of an option, with the value it stands for if it is a flag's (typer's
    default names: ``--a-name``, a bool's ``--a-name/--no-a-name``)."""
    if not decls:
        flag_name = name.replace("_", "-")
        decls = (f"--{flag_name}/--no-{flag_name}" if kind is bool else f"--{flag_name}",)
    out: dict[str, bool | None] = {}
    for decl in decls:
        on, slash, off = decl.partition("/")
        if slash and kind is not bool:
            return None
        pairs = [(on, True), (off, False)] if slash else [(on, True if kind is bool
                                                            else None)]
        for option, flag in pairs:
            option = option.strip()
            if not option.startswith("-") or option in out:
                return None
            out[option] = flag
    return out


def _plain_type(annotation: Any) -> type | None:
    """str, int, float or bool (optional or not); None for any other type."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            return None
        annotation = members[0]
    return annotation if annotation in _PLAIN_TYPES else None
