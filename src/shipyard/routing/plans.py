"""Rollout plans: how a rollout moves traffic over time and what it checks on the way.

A plan is a frozen dataclass, validated on construction (`RoutingError` naming the field),
with a plain JSON-able form (``to_dict`` / `plan_from_dict`) that the registry stores with
the rollout. The registry and the controller read plans; nothing here touches traffic.

- `CanaryPlan`: weighted steps (``5, 20, 50, 100`` %), one analysis per ``interval_s``;
- `ABPlan`: a sticky A/B test with its pre-planned statistics;
- `ShadowPlan`: the share of requests copied to the candidate;
- `BlueGreenPlan`: nothing to tune (two warm versions, one live).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar, TypeAlias

from shipyard.errors import RoutingError
from shipyard.routing.keys import DEFAULT_KEY_SPEC, parse_key_spec

METRICS = ("accuracy", "f1", "precision", "recall", "rmse", "mae")
"""Quality metrics a plan may gate on: the first four higher-is-better (classification),
the last two lower-is-better (regression)."""
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
AB_METRICS = ("accuracy", "mae")
"""Metrics an A/B test compares: per-request averages (a rate, or a mean absolute error), what
its sequential test needs; a mean needs the metric's standard deviation (``sd``)."""


def _positive(value: object, what: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "a number >= 0" if allow_zero else "a number > 0"
        raise RoutingError(f"{what} must be {bound}, not {value!r}")
    return float(value)


MAX_INTERVAL_S = 30 * 86400.0
"""The longest analysis interval a plan may name (30 days): past it a rollout would never act."""


def _interval(value: object) -> float:
    seconds = _positive(value, "interval_s")
    if seconds > MAX_INTERVAL_S:
        raise RoutingError(f"interval_s must be at most 30 days ({MAX_INTERVAL_S:g} s), "
                           f"not {value!r}: a rollout would never act")
    return seconds


def _fraction(value: object, what: str) -> float:
    number = _positive(value, what)
    if number >= 1:
        raise RoutingError(f"{what} must be between 0 and 1 (exclusive), not {value!r}")
    return number


def _percent(value: object, what: str) -> float:
    number = _positive(value, what)
    if number > 100:
        raise RoutingError(f"{what} must be a percentage in (0, 100], not {value!r}")
    return number


def _count(value: object, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RoutingError(f"{what} must be a whole number >= {low}, not {value!r}")
    return value


def _optional(value: object, what: str) -> float | None:
    return None if value is None else _positive(value, what)


def _metric(value: object, *, optional: bool, known: tuple[str, ...] = METRICS) -> str | None:
    if value is None and optional:
        return None
    if value not in known:
        raise RoutingError(f"metric must be one of {', '.join(known)}, not {value!r}")
    return str(value)


def _key(value: object) -> str:
    if not isinstance(value, str):
        raise RoutingError(f"key must be a key spec string, not {value!r}")
    parse_key_spec(value)
    return value


class _Stored:
    """``to_dict`` for the plans: every field, as it is (all are JSON-able)."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass(frozen=True)
class CanaryPlan(_Stored):
    """A canary: the candidate's share steps through ``steps`` (percent, rising, the last
    100), each held for ``interval_s`` and analysed before the next. A check failing
    ``failures`` times aborts; a step with fewer than ``min_requests`` candidate requests
    waits rather than passes. ``metric``/``tolerance`` gate on labelled quality,
    ``estimate_gate`` on the label-free estimate; ``alias`` is moved on promote."""

    kind: ClassVar[str] = "canary"
    steps: tuple[float, ...] = (5.0, 20.0, 50.0, 100.0)
    interval_s: float = 600.0
    max_error_rate: float = 0.01
    max_p99_ms: float | None = None
    max_p99_ratio: float = 1.5
    max_prediction_drift: float | None = None
    metric: str | None = None
    tolerance: float = 0.02
    estimate_gate: bool = False
    min_requests: int = 500
    failures: int = 2
    alias: str | None = None
    key: str = DEFAULT_KEY_SPEC

    def __post_init__(self) -> None:
        steps = self.steps
        if isinstance(steps, str | bytes) or not hasattr(steps, "__iter__"):
            raise RoutingError("steps must be a list of percentages, e.g. 5,20,50,100")
        parsed = tuple(_percent(s, f"steps[{i}]") for i, s in enumerate(steps))
        if not parsed:
            raise RoutingError("steps must name at least one percentage")
        if any(b <= a for a, b in pairwise(parsed)):
            raise RoutingError(f"steps must rise, not {list(parsed)}")
        if parsed[-1] != 100:
            raise RoutingError(f"the last step must be 100 (the candidate takes all traffic "
                               f"before it is promoted), not {parsed[-1]:g}")
        if any(abs(s * 100 - round(s * 100)) > 1e-6 for s in parsed):
            raise RoutingError("steps are percentages with at most two decimals")
        object.__setattr__(self, "steps", parsed)
        _interval(self.interval_s)
        _fraction(self.max_error_rate, "max_error_rate")
        _optional(self.max_p99_ms, "max_p99_ms")
        if _positive(self.max_p99_ratio, "max_p99_ratio") < 1:
            raise RoutingError(f"max_p99_ratio must be >= 1, not {self.max_p99_ratio!r}")
        _optional(self.max_prediction_drift, "max_prediction_drift")
        _metric(self.metric, optional=True)
        _positive(self.tolerance, "tolerance", allow_zero=True)
        if not isinstance(self.estimate_gate, bool):
            raise RoutingError(f"estimate_gate must be true or false, not {self.estimate_gate!r}")
        _count(self.min_requests, "min_requests", 1)
        _count(self.failures, "failures", 1)
        if self.alias is not None and (not isinstance(self.alias, str) or not self.alias):
            raise RoutingError(f"alias must be a non-empty string, not {self.alias!r}")
        _key(self.key)


@dataclass(frozen=True)
class ABPlan(_Stored):
    """A sticky A/B test: ``split`` % of routing keys (read by ``key``) see b. The sample size
    comes from ``mde`` (the smallest difference worth detecting, absolute), ``alpha``,
    ``power`` and the ``baseline`` value of ``metric`` (None: the least favourable, 0.5 for a
    rate); ``sd``: the per-request standard deviation of a mean metric (``mae``, required
    there); ``sequential`` uses an always-valid test (mSPRT), else a fixed horizon that gives
    no verdict before the planned sample."""

    kind: ClassVar[str] = "ab"
    split: float = 50.0
    key: str = DEFAULT_KEY_SPEC
    metric: str = "accuracy"
    mde: float = 0.02
    alpha: float = 0.05
    power: float = 0.8
    baseline: float | None = None
    sd: float | None = None
    sequential: bool = True
    interval_s: float = 600.0
    max_error_rate: float = 0.01
    max_p99_ratio: float = 1.5

    def __post_init__(self) -> None:
        split = _percent(self.split, "split")
        if split >= 100:
            raise RoutingError(f"split (percent to b) must be below 100, not {self.split!r}")
        _key(self.key)
        _metric(self.metric, optional=False, known=AB_METRICS)
        if self.metric == "mae" and self.sd is None:
            raise RoutingError("an A/B test on mae needs sd, the per-request standard "
                               "deviation of the absolute error (from past traffic)")
        _optional(self.sd, "sd")
        _positive(self.mde, "mde")
        _fraction(self.alpha, "alpha")
        _fraction(self.power, "power")
        _optional(self.baseline, "baseline")
        if not isinstance(self.sequential, bool):
            raise RoutingError(f"sequential must be true or false, not {self.sequential!r}")
        _interval(self.interval_s)
        _fraction(self.max_error_rate, "max_error_rate")
        _positive(self.max_p99_ratio, "max_p99_ratio")


@dataclass(frozen=True)
class ShadowPlan(_Stored):
    """A shadow: ``percent`` % of requests copied to the candidate; a comparison is recorded
    every ``interval_s``."""

    kind: ClassVar[str] = "shadow"
    percent: float = 100.0
    interval_s: float = 600.0

    def __post_init__(self) -> None:
        _percent(self.percent, "percent")
        _interval(self.interval_s)


@dataclass(frozen=True)
class BlueGreenPlan(_Stored):
    """Blue-green: the candidate loaded and warmed beside the stable version, switched by hand."""

    kind: ClassVar[str] = "bluegreen"


Plan: TypeAlias = CanaryPlan | ABPlan | ShadowPlan | BlueGreenPlan
_PLANS: dict[str, type[Plan]] = {cls.kind: cls for cls in
                                 (CanaryPlan, ABPlan, ShadowPlan, BlueGreenPlan)}


def plan_from_dict(kind: str, doc: Mapping[str, Any]) -> Plan:
    """The ``kind`` plan ``doc`` describes (what ``to_dict`` wrote); unknown kinds or fields
    raise `RoutingError`."""
    cls = _PLANS.get(kind)
    if cls is None:
        raise RoutingError(f"unknown rollout kind {kind!r}; known: {', '.join(_PLANS)}")
    if not isinstance(doc, Mapping):
        raise RoutingError(f"a stored {kind} plan must be an object, not {type(doc).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(doc) - names)
    if extra:
        raise RoutingError(f"a {kind} plan has no field(s) {', '.join(extra)}; "
                           f"known: {', '.join(sorted(names))}")
    values = dict(doc)
    if "steps" in values and isinstance(values["steps"], list):
        values["steps"] = tuple(values["steps"])
    try:
        return cls(**values)
    except TypeError as exc:  # a field of the wrong shape for the constructor
        raise RoutingError(f"invalid {kind} plan: {exc}") from None
