"""An evaluation gate: rules an offline evaluation must pass before a model ships. Pure.

One rule per line of a gate file, in the alert rules' style (``alert_rules.py``), with the
same caret under the first bad part when a rule does not parse::

    accuracy >= 0.9
    accuracy >= against - 0.01          # not worse than the model it replaces by > 1 point
    worst_slice(accuracy, by=region) >= 0.8
    p99_ms <= 20
    size_mb <= 50

``against`` (or ``production``) is the value of the same metric for ``--against``'s model.
Metrics: the evaluation's (accuracy, f1, precision, recall, roc_auc, log_loss; rmse, mae,
r2), ``p50_ms`` / ``p99_ms`` (single-row latency), ``size_mb``, and ``worst_slice(METRIC,
by=COLUMN)`` for the headline metric (accuracy or rmse) of a ``--slices`` column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from shipyard.monitoring.alert_rules import _NUMBER, _OP, _OPS, AlertRuleError, _Cursor

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE = re.compile(r"(against|production)\b")
_SIGN = re.compile(r"[-+]")
SLICE_METRICS = ("accuracy", "rmse")  # the headline metric: classifiers', regressors'
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "p50_ms", "p99_ms", "size_mb"})


class GateRuleError(AlertRuleError):
    """A gate rule does not parse; the message shows the rule with a caret under the bad
    part, as an alert rule's does."""

    WHAT = "gate rule"


@dataclass(frozen=True)
class GateRule:
    text: str
    metric: str
    op: str
    threshold: float  # a number, or the offset added to the against model's value
    against: bool = False
    by: str | None = None  # worst_slice(METRIC, by=COLUMN)


@dataclass(frozen=True)
class GateResult:
    rule: GateRule
    passed: bool
    value: float | None
    threshold: float | None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.text, "passed": self.passed, "value": self.value,
                "threshold": self.threshold, "reason": self.reason}


def parse_gate_rule(text: str) -> GateRule:
    cur = _Cursor(text)
    metric = cur.take(_NAME)
    if metric is None:
        _fail(cur, f"expected a metric such as accuracy or p99_ms, {cur.found()}")
    by = None
    if metric == "worst_slice":
        metric, by = _slice_args(cur)
    op = cur.take(_OP)
    if op is None:
        _fail(cur, f"expected a comparison (one of {' '.join(_OPS)}) after {metric!r}, "
              f"{cur.found()}")
    against = cur.take(_REFERENCE) is not None
    threshold = 0.0
    if against:
        sign = cur.take(_SIGN)
        if sign is not None:
            number = cur.take(_NUMBER)
            if number is None:
                _fail(cur, f"expected a number after {sign!r}, {cur.found()}")
            threshold = float(number) * (-1.0 if sign == "-" else 1.0)
            if not math.isfinite(threshold):
                raise GateRuleError(text, cur.pos - len(number),
                                    f"offset {number} is out of range")
    else:
        number_at = cur.here()
        number = cur.take(_NUMBER)
        if number is None:
            _fail(cur, f"expected a number or 'against' after {op!r}, {cur.found()}")
        threshold = float(number)
        if not math.isfinite(threshold):
            raise GateRuleError(text, number_at, f"threshold {number} is out of range")
    if not cur.at_end():
        _fail(cur, f"unexpected text after the rule, {cur.found()}")
    return GateRule(text.strip(), metric, op, threshold, against, by)


def _fail(cur: _Cursor, message: str) -> NoReturn:
    cur.skip()
    raise GateRuleError(cur.text, cur.pos, message)


def _slice_args(cur: _Cursor) -> tuple[str, str]:
    cur.skip()
    start = cur.pos
    if not cur.text.startswith("(", start):
        raise GateRuleError(cur.text, start, "write worst_slice(METRIC, by=COLUMN)")
    end = cur.text.find(")", start)
    if end < 0:
        raise GateRuleError(cur.text, start, "'(' is never closed; write "
                            "worst_slice(METRIC, by=COLUMN)")
    inside = [p.strip() for p in cur.text[start + 1:end].split(",")]
    if len(inside) != 2 or not _NAME.fullmatch(inside[0]) \
            or not inside[1].startswith("by=") or not inside[1][3:].strip():
        raise GateRuleError(cur.text, start + 1, "write worst_slice(METRIC, by=COLUMN)")
    if inside[0] not in SLICE_METRICS:
        raise GateRuleError(cur.text, start + 1, f"slices hold the headline metric: "
                            f"{' or '.join(SLICE_METRICS)}, not {inside[0]!r}")
    cur.pos = end + 1
    return inside[0], inside[1][3:].strip()


def parse_gate(items: Iterable[str] | Mapping[str, Any]) -> tuple[GateRule, ...]:
    """A gate file's rules: a list of rule texts, or ``{rules: [...]}``."""
    if isinstance(items, Mapping):
        items = items.get("rules") or []
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise GateRuleError("", 0, f"the gate's rules are a list, one rule per item, not "
                                   f"{type(items).__name__} {str(items)[:60]!r}")
    rules = tuple(parse_gate_rule(str(item)) for item in items)
    if not rules:
        raise GateRuleError("", 0, "the gate has no rules")
    return rules


def check(rule: GateRule, values: Mapping[str, float | None],
          against: Mapping[str, float | None] | None,
          worst: Mapping[tuple[str, str], float | None],
          undefined: Mapping[tuple[str, str], str] | None = None) -> GateResult:
    """One rule on the candidate's ``values`` (metric -> value), the against model's, and the
    worst slices' (metric, column) -> value; ``undefined`` says why a worst slice is None."""
    if rule.by is not None:
        value = worst.get((rule.metric, rule.by))
        held = [m for m, column in worst if column == rule.by]
        missing = "" if (rule.metric, rule.by) in worst else (
            f"the slices of {rule.by!r} hold {held[0]} (this model's headline metric), "
            f"not {rule.metric}" if held else
            f"no slices of {rule.by!r} (give --slices {rule.by})")
    else:
        value = values.get(rule.metric)
        missing = "" if rule.metric in values else (
            f"no metric {rule.metric!r}; known: {', '.join(sorted(values))}")
    if missing:
        return GateResult(rule, False, None, None, missing)
    if value is None:
        why = (undefined or {}).get((rule.metric, rule.by)) if rule.by is not None else None
        return GateResult(rule, False, None, None, why or f"{rule.metric} is not defined here")
    threshold: float | None = rule.threshold
    if rule.against:
        base = None if against is None else against.get(rule.metric)
        if base is None:
            return GateResult(rule, False, value, None,
                              "the rule compares with --against, which was not given"
                              if against is None else f"{rule.metric} is not defined for "
                              "the against model")
        threshold = base + rule.threshold
    assert threshold is not None
    passed = _OPS[rule.op](value, threshold)
    return GateResult(rule, passed, value, threshold,
                      "" if passed else f"{rule.metric} = {value:.4g}, needs {rule.op} "
                                        f"{threshold:.4g}")
