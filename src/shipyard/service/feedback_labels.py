"""Feedback labels checked against the model's task before they reach the log.

A classifier's labels must be among its ``class_labels`` (``1`` or ``1.0`` for class ``1``,
never ``true``: a boolean is no number here); they are stored as the class label itself, so
one endpoint's labels always share the type of its predictions. A regressor's labels are
finite numbers, stored as floats. Other models take numbers, strings or booleans, one kind per
request. ``null`` marks a row without a label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from shipyard.errors import InvalidLabelError, Problem
from shipyard.packaging.signature import Signature

_SHOWN = 10  # class labels named in an error at most


def checked_labels(signature: Signature, labels: Sequence[Any], where: str,
                   problems: list[Problem]) -> list[Any]:
    """``labels`` as the log stores them; each bad one adds a problem naming it."""
    if signature.task == "classification" and signature.class_labels is not None:
        return _classes(signature.class_labels, labels, where, problems)
    if signature.task == "regression":
        return [_number(v, f"{where}[{i}]", problems) for i, v in enumerate(labels)]
    kinds = {_kind(v) for v in labels if v is not None}
    if len(kinds) > 1:
        problems.append(Problem(where, f"labels mix {' and '.join(sorted(kinds))}: send one "
                                "kind per request"))
    return list(labels)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "booleans"
    return "numbers" if isinstance(value, (int, float)) else "strings"


def _key(value: Any) -> tuple[str, Any]:
    """What a class label and a label sent for it have in common: 1 and 1.0 match, True and
    1 do not."""
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, (int, float)):
        return "number", float(value)
    return "str", str(value) if isinstance(value, str) else repr(value)


def _classes(classes: Sequence[Any], labels: Sequence[Any], where: str,
             problems: list[Problem]) -> list[Any]:
    known = {_key(c): c for c in classes}
    out: list[Any] = []
    for i, value in enumerate(labels):
        if value is None:
            out.append(None)
            continue
        found = known.get(_key(value), _MISSING)
        if found is _MISSING:
            shown = ", ".join(repr(c) for c in list(classes)[:_SHOWN])
            more = f" and {len(classes) - _SHOWN} more" if len(classes) > _SHOWN else ""
            problems.append(Problem(f"{where}[{i}]", f"{value!r} is not a class label of the "
                                    f"model (classes: {shown}{more})"))
        out.append(None if found is _MISSING else found)
    return out


_MISSING = object()


def _number(value: Any, where: str, problems: list[Problem]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        problems.append(Problem(where, f"{value!r} is not a finite number (the model is a "
                                "regressor)"))
        return None
    return float(value)


def raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise InvalidLabelError(problems)
