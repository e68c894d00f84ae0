"""The traffic policies, validated on construction, and the `Decision` that routing returns.

Every policy is a frozen dataclass; a bad one raises `RoutingError` naming the field. Versions
are opaque non-empty strings (what the registry names a version by). Percentages have a
resolution of 0.01 (a basis point): routing maps each key to one of `BUCKETS` buckets.

Policies that split traffic (`Weighted`, `StickyAB`, `Shadow`) carry a ``salt`` and a ``key``
spec. The salt goes into the hash, so two experiments with different salts assign users
independently, while changing a policy's weights and keeping its salt keeps users where they
were (see `route`). Each policy builds its routing plan once, here, so that routing a request
is a hash, a bisect and a tuple index.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import ClassVar, Literal, TypeAlias

from shipyard.errors import RoutingError
from shipyard.routing.keys import DEFAULT_KEY, KeySpec, parse_key_spec

BUCKETS = 10_000
"""Keys and random draws fall into ``range(BUCKETS)``: 1 bucket = 0.01 %."""

_MAX_TEXT = 256
_MAX_SALT = 128

Variant: TypeAlias = str
Live = Literal["blue", "green"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes: ``version`` answers it as ``variant`` of a ``kind`` policy;
    ``shadow`` gets a copy (or None); ``by_key`` says whether the routing key's hash chose
    the variant (False for a random draw, a keyless fallback, or a policy that does not
    split traffic): an A/B analysis counts only ``by_key`` requests."""

    version: str
    variant: Variant
    kind: str
    shadow: str | None = None
    by_key: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """A policy's routing table: bucket ``b`` goes to ``keyed[bisect_right(cuts, b)]``
    (``keyless[...]`` for a random draw); no cuts means ``keyless[0]`` always; ``fallback``
    is the decision for keyless requests when they must not be drawn at random."""

    prefix: bytes
    cuts: tuple[int, ...]
    keyed: tuple[Decision, ...]
    keyless: tuple[Decision, ...]
    fallback: Decision | None = None


def _text(value: object, what: str, limit: int = _MAX_TEXT, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RoutingError(f"{what} must be a string, not {type(value).__name__}")
    if not value and not empty:
        raise RoutingError(f"{what} must not be empty")
    if len(value) > limit:
        raise RoutingError(f"{what} is {len(value)} characters long; at most {limit} allowed")
    if not value.isprintable():
        raise RoutingError(f"{what} {value!r} contains unprintable characters")
    return value


def _basis_points(value: object, what: str, low: int, high: int) -> int:
    """A percentage → whole buckets, refusing what is not a number in [low, high] buckets or
    is finer than 0.01."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RoutingError(f"{what} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise RoutingError(f"{what} must be a finite number, not {value}")
    points = round(value * 100)
    if abs(value * 100 - points) > 1e-6:
        raise RoutingError(f"{what} {value} is finer than the 0.01 % routing resolution")
    if not low <= points <= high:
        raise RoutingError(f"{what} must be between {low / 100:g} and {high / 100:g}, "
                           f"not {value:g}")
    return points


def _key(value: KeySpec | str) -> KeySpec:
    return value if isinstance(value, KeySpec) else parse_key_spec(value)


def _prefix(salt: str) -> bytes:
    return _text(salt, "salt", _MAX_SALT, empty=True).encode("utf-8", "surrogatepass") + b"\0"


def _fixed(decision: Decision) -> Plan:
    return Plan(b"", (), (decision,), (decision,))


def _split(salt: str, cuts: Iterable[int], decisions: Iterable[Decision], *,
           keyless_first: bool = False) -> Plan:
    """``keyless_first``: keyless requests go to the first decision rather than a draw."""
    keyed = tuple(decisions)
    keyless = tuple(Decision(d.version, d.variant, d.kind, d.shadow, False) for d in keyed)
    return Plan(_prefix(salt), tuple(cuts), keyed, keyless,
                fallback=keyless[0] if keyless_first else None)


def _two_versions(first: object, what_first: str, second: object, what_second: str,
                  same: str) -> None:
    """Both versions valid text, and not the same one (``same``: the error if they are)."""
    _text(first, what_first)
    _text(second, what_second)
    if first == second:
        raise RoutingError(same)


@dataclass(frozen=True, slots=True)
class Single:
    """Every request to one version (variant ``stable``)."""

    kind: ClassVar[str] = "single"
    version: str
    plan: Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _text(self.version, "version")
        object.__setattr__(self, "plan", _fixed(Decision(self.version, "stable", self.kind)))

    @property
    def versions(self) -> tuple[str, ...]:
        """The versions that may answer."""
        return (self.version,)

    @property
    def warm(self) -> tuple[str, ...]:
        """The versions that must be loaded (answering, shadow, or ready to switch to)."""
        return self.versions


def weighted_variant(index: int) -> Variant:
    """The variant name of a `Weighted` split's ``index``-th version: ``stable``, ``canary``,
    then ``canary-2``, ``canary-3`` ..."""
    return "stable" if index == 0 else "canary" if index == 1 else f"canary-{index}"


@dataclass(frozen=True, slots=True)
class Weighted:
    """A weighted split (a canary): ``splits`` is ``((version, percent), ...)``, percents
    summing to 100, the first the stable version. Keys fill the buckets in this order, so
    growing the last version's share (taking from the first) keeps every key it had."""

    kind: ClassVar[str] = "weighted"
    splits: tuple[tuple[str, float], ...]
    _: KW_ONLY
    salt: str = ""
    key: KeySpec = DEFAULT_KEY
    plan: Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.splits, str | bytes) or not isinstance(self.splits, Iterable):
            raise RoutingError("splits must be a list of (version, percent) pairs")
        pairs: list[tuple[str, object]] = []
        for i, item in enumerate(self.splits):
            pair: tuple[object, ...] = () if isinstance(item, str | bytes) \
                or not isinstance(item, Iterable) else tuple(item)
            if len(pair) != 2:
                raise RoutingError(f"splits[{i}] must be a (version, percent) pair")
            pairs.append((_text(pair[0], f"splits[{i}] version"), pair[1]))
        if len(pairs) < 2:
            raise RoutingError("a weighted split needs at least two versions; use Single for one")
        versions = [v for v, _ in pairs]
        if len(set(versions)) != len(versions):
            raise RoutingError(f"a weighted split names a version twice: {versions}")
        points = [_basis_points(w, f"weight of {v!r}", 0, BUCKETS) for v, w in pairs]
        if sum(points) != BUCKETS:
            raise RoutingError(f"weights must sum to 100, not {sum(points) / 100:g} "
                               f"({', '.join(f'{v}={w}' for v, w in pairs)})")
        splits = tuple((v, p / 100) for v, p in zip(versions, points, strict=True))
        object.__setattr__(self, "splits", tuple(splits))
        object.__setattr__(self, "key", _key(self.key))
        cuts = [sum(points[:i + 1]) for i in range(len(points) - 1)]
        object.__setattr__(self, "plan", _split(self.salt, cuts, (
            Decision(v, weighted_variant(i), self.kind, None, True)
            for i, v in enumerate(versions))))

    @classmethod
    def canary(cls, stable: str, canary: str, percent: float, *, salt: str = "",
               key: KeySpec | str = DEFAULT_KEY) -> Weighted:
        """``percent`` % to ``canary``, the rest to ``stable``."""
        pct = _basis_points(percent, "canary percent", 0, BUCKETS) / 100
        return cls(((stable, 100 - pct), (canary, pct)), salt=salt, key=_key(key))

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(v for v, w in self.splits if w > 0)

    @property
    def warm(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.splits)


@dataclass(frozen=True, slots=True)
class StickyAB:
    """An A/B test: ``split`` % of keys see ``b``, the rest ``a``, by a hash of the routing
    key read by ``key``, so a user always sees the same variant. Requests without a key go
    to ``a`` (the control) with ``by_key`` False, so the test's statistics can leave them out."""

    kind: ClassVar[str] = "sticky_ab"
    a: str
    b: str
    split: float = 50
    _: KW_ONLY
    salt: str = ""
    key: KeySpec = DEFAULT_KEY
    plan: Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _two_versions(self.a, "variant a's version", self.b, "variant b's version",
                      f"an A/B test needs two different versions, not {self.a!r} twice")
        points = _basis_points(self.split, "A/B split (percent to b)", 1, BUCKETS - 1)
        object.__setattr__(self, "key", _key(self.key))
        object.__setattr__(self, "plan", _split(self.salt, [BUCKETS - points], [
            Decision(self.a, "a", self.kind, None, True),
            Decision(self.b, "b", self.kind, None, True)], keyless_first=True))

    @property
    def versions(self) -> tuple[str, ...]:
        return (self.a, self.b)

    @property
    def warm(self) -> tuple[str, ...]:
        return self.versions


@dataclass(frozen=True, slots=True)
class Shadow:
    """``primary`` answers every request; ``candidate`` gets a copy of ``percent`` % of them
    (the same keys each time; a random draw for requests without a key)."""

    kind: ClassVar[str] = "shadow"
    primary: str
    candidate: str
    percent: float = 100
    _: KW_ONLY
    salt: str = ""
    key: KeySpec = DEFAULT_KEY
    plan: Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _two_versions(self.primary, "primary version", self.candidate, "candidate version",
                      f"shadow needs a candidate other than the primary {self.primary!r}")
        points = _basis_points(self.percent, "shadow percent", 1, BUCKETS)
        object.__setattr__(self, "key", _key(self.key))
        object.__setattr__(self, "plan", _split(self.salt, [points], [
            Decision(self.primary, "primary", self.kind, self.candidate, True),
            Decision(self.primary, "primary", self.kind, None, True)]))

    @property
    def versions(self) -> tuple[str, ...]:
        return (self.primary,)

    @property
    def warm(self) -> tuple[str, ...]:
        return (self.primary, self.candidate)


@dataclass(frozen=True, slots=True)
class BlueGreen:
    """Two warm versions, ``live`` one answering everything; `switched` flips them."""

    kind: ClassVar[str] = "blue_green"
    blue: str
    green: str
    live: Live = "blue"
    plan: Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _two_versions(self.blue, "blue version", self.green, "green version",
                      f"blue-green needs two different versions, not {self.blue!r} twice")
        if self.live not in ("blue", "green"):
            raise RoutingError(f"live must be 'blue' or 'green', not {self.live!r}")
        object.__setattr__(self, "plan", _fixed(Decision(self.live_version, self.live,
                                                         self.kind)))

    @property
    def live_version(self) -> str:
        return self.blue if self.live == "blue" else self.green

    def switched(self) -> BlueGreen:
        """The same pair with the other one live."""
        return BlueGreen(self.blue, self.green, "green" if self.live == "blue" else "blue")

    @property
    def versions(self) -> tuple[str, ...]:
        return (self.live_version,)

    @property
    def warm(self) -> tuple[str, ...]:
        return (self.blue, self.green)


Policy: TypeAlias = Single | Weighted | StickyAB | Shadow | BlueGreen
POLICIES: tuple[type[Policy], ...] = (Single, Weighted, StickyAB, Shadow, BlueGreen)
