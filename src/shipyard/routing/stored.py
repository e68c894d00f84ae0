"""A policy's stored form: a plain JSON-able dict with ``format`` and ``kind``, what the
registry keeps for a deployment. `policy_from_dict` accepts exactly what `policy_to_dict`
writes (unknown kinds, missing or extra fields, wrong types and newer formats raise
`RoutingError`), so ``policy_from_dict(policy_to_dict(p)) == p``.

    {"format": 1, "kind": "single", "version": "3"}
    {"format": 1, "kind": "weighted", "splits": [{"version": "3", "weight": 95},
                                                  {"version": "4", "weight": 5}],
     "salt": "fraud/rollout-7", "key": "header:X-Routing-Key"}
    {"format": 1, "kind": "sticky_ab", "a": "3", "b": "4", "split": 50, "salt": "",
     "key": "header:X-User-Id"}
    {"format": 1, "kind": "shadow", "primary": "3", "candidate": "4", "percent": 100,
     "salt": "", "key": "header:X-Routing-Key"}
    {"format": 1, "kind": "blue_green", "blue": "3", "green": "4", "live": "blue"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.errors import RoutingError
from shipyard.routing.policies import POLICIES, Policy

FORMAT_VERSION = 1

_FIELDS: dict[str, tuple[str, ...]] = {
    "single": ("version",),
    "weighted": ("splits", "salt", "key"),
    "sticky_ab": ("a", "b", "split", "salt", "key"),
    "shadow": ("primary", "candidate", "percent", "salt", "key"),
    "blue_green": ("blue", "green", "live"),
}
_KINDS: dict[str, type[Policy]] = {cls.kind: cls for cls in POLICIES}


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The stored form of ``policy`` (numbers that are whole written as integers)."""
    out: dict[str, Any] = {"format": FORMAT_VERSION, "kind": policy.kind}
    for name in _FIELDS[policy.kind]:
        value = getattr(policy, name)
        if name == "splits":
            value = [{"version": v, "weight": _number(w)} for v, w in value]
        elif name == "key":
            value = str(value)
        elif name in ("split", "percent"):
            value = _number(value)
        out[name] = value
    return out


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    """The policy ``data`` stores; `RoutingError` naming the problem when it is not one."""
    if not isinstance(data, Mapping):
        raise RoutingError(f"a stored policy must be an object, not {type(data).__name__}")
    fmt = data.get("format")
    if fmt != FORMAT_VERSION or isinstance(fmt, bool):
        raise RoutingError(f"stored policy has format {fmt!r}; this shipyard reads format "
                           f"{FORMAT_VERSION} (a newer shipyard wrote it? upgrade)")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise RoutingError(f"unknown policy kind {kind!r}; known: {', '.join(_KINDS)}")
    fields = _FIELDS[kind]
    given = set(data) - {"format", "kind"}
    if missing := [f for f in fields if f not in given]:
        raise RoutingError(f"stored {kind} policy lacks {', '.join(missing)}")
    if extra := sorted(given - set(fields)):
        raise RoutingError(f"stored {kind} policy has unknown fields {', '.join(extra)}")
    values = {f: data[f] for f in fields}
    if kind == "weighted":
        values["splits"] = _splits(values["splits"])
    return _KINDS[kind](**values)  # each constructor checks its values' types


def _splits(value: object) -> list[tuple[object, object]]:
    if not isinstance(value, list):
        raise RoutingError("stored weighted policy: splits must be a list")
    out: list[tuple[object, object]] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or set(item) != {"version", "weight"}:
            raise RoutingError(f"stored weighted policy: splits[{i}] must be an object with "
                               "exactly 'version' and 'weight'")
        out.append((item["version"], item["weight"]))
    return out
