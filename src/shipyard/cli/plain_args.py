"""A typer command's keyword arguments read straight from a plain command line, without
typer building its click command.

Typer (0.2x) builds a pydantic adapter for every parameter of the command it runs, after
building every command of the app: ~0.2 s of CPU before ``shipyard predict`` starts, about a
tenth of a batch run over a million rows. ``plain_kwargs`` reads the command's own typer
declarations (the option names, the defaults) and takes the common lines only: arguments in
order, options by a declared name (``--name VALUE``, ``--name=VALUE``, flags), each once,
values of type str, int, float or bool. Anything else (``--help``, an unknown or repeated
option, a value that is not a plain number, a missing required parameter, an option with a
callback, a prompt or an environment variable) gives None, and typer parses the line itself
with its own messages and help.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

_INT = re.compile(r"\d+")
_FLOAT = re.compile(r"[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_PLAIN_TYPES = (str, int, float, bool)
# what a parameter may not use to be read here: each changes how typer reads a value
_DECLINED = ("callback", "envvar", "parser", "click_type", "min", "max", "count", "prompt",
             "is_eager", "default_factory", "is_flag", "flag_value")


@dataclass(frozen=True)
class _Param:
    name: str
    kind: type  # str, int, float or bool
    required: bool
    default: Any


def plain_kwargs(command: Callable[..., Any], args: Sequence[str]) -> dict[str, Any] | None:
    """The keyword arguments typer would call ``command`` with for ``args`` (the words after
    the command's name), or None when the line is not a plain one (typer then parses it)."""
    try:
        spec = _spec(command)
    except Exception:  # another typer's internals changed: typer parses the line
        return None
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
            if len(given.keys() & {p.name for p in positional}) == len(positional):
                return None  # more arguments than the command takes
            param = next(p for p in positional if p.name not in given)
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
    from typer.models import ArgumentInfo, OptionInfo
    from typer.utils import get_params_from_function

    positional: list[_Param] = []
    options: dict[str, tuple[_Param, bool | None]] = {}
    for name, meta in get_params_from_function(command).items():
        info = meta.default
        kind = _plain_type(meta.annotation)
        if kind is None or not isinstance(info, (ArgumentInfo, OptionInfo)):
            return None
        if any(getattr(info, attr, None) not in (None, False) for attr in _DECLINED) \
                or getattr(info, "expose_value", True) is not True:
            return None
        required = info.default is ...
        param = _Param(name, kind, required, None if required else info.default)
        if isinstance(info, ArgumentInfo):
            if kind is bool:
                return None
            positional.append(param)
            continue
        decls = list(info.param_decls or ())
        if not decls:
            flag_name = name.replace("_", "-")
            decls = [f"--{flag_name}/--no-{flag_name}" if kind is bool else f"--{flag_name}"]
        for decl in decls:
            on, slash, off = decl.partition("/")
            if kind is not bool and slash:
                return None
            pairs = [(on, True), (off, False)] if slash else [(on, True if kind is bool
                                                                else None)]
            for option, flag in pairs:
                option = option.strip()
                if not option.startswith("-") or option in options:
                    return None
                options[option] = (param, flag)
    return positional, options


def _plain_type(annotation: Any) -> type | None:
    """str, int, float or bool (optional or not); None for any other type."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            return None
        annotation = members[0]
    return annotation if annotation in _PLAIN_TYPES else None
