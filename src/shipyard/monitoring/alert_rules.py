"""Alert rules: the grammar and its parser. Pure; the state machine is in ``alerts.py``.

``METRIC[(COLUMN)] OP NUMBER [for N windows]``, ``OP`` one of ``> >= < <= == !=``::

    drift_share > 0.3 for 2 windows
    p99_latency_ms > 100
    accuracy < 0.85
    missing_share(age) > 0.1
    extraction_score > 0.8
    extraction_score(partner-a) > 0.5
    accuracy(slice=cut:Fair) < 0.8
    accuracy(slice=carat:[0.4, 0.7)) < 0.8
    worst_slice_accuracy(cut) < 0.8

``METRIC(COLUMN)`` reads the key ``"METRIC(COLUMN)"`` of a window's flat metrics mapping, which
is how the monitor writes column-scoped metrics. ``METRIC(slice=COLUMN:SLICE)`` names one
slice of a slice column; the slice's name runs to the ``)`` that the comparison follows, so a
numeric bin's ``[0.4, 0.7)`` needs no quoting; spaces around ``=`` and ``:`` are dropped.
Config gives a rule as that text or as ``{name?, rule, severity?, for?}``; a rule's name
defaults to its canonical text. A rule that does not parse raises :class:`AlertRuleError`,
whose message draws a caret under the bad part.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn

from shipyard.errors import MonitoringError

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt,
    "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}


class AlertError(MonitoringError):
    """Alert configuration or saved alert state is invalid."""


class AlertRuleError(AlertError):
    """A rule does not parse; the message shows the rule with a caret under the bad part."""

    WHAT = "alert rule"

    def __init__(self, text: str, position: int, message: str) -> None:
        self.text = text
        self.position = position
        self.reason = message
        super().__init__(f"invalid {self.WHAT}: {message}\n    {text}\n    {' ' * position}^")


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


@dataclass(frozen=True)
class AlertRule:
    """One parsed rule. ``name`` defaults to the canonical rule text (:attr:`text`)."""

    metric: str
    op: str
    threshold: float
    column: str | None = None
    windows: int = 1
    severity: Severity = Severity.WARNING
    name: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise AlertError(f"unknown comparison {self.op!r}; use one of {' '.join(_OPS)}")
        if not math.isfinite(self.threshold):
            raise AlertError(f"rule threshold must be a finite number, not {self.threshold}")
        if isinstance(self.windows, bool) or not isinstance(self.windows, int) \
                or self.windows < 1:
            raise AlertError(f"'for' needs a whole number of windows >= 1, not {self.windows!r}")
        object.__setattr__(self, "severity", _severity(self.severity))
        if not self.name:
            object.__setattr__(self, "name", self.text)

    @property
    def key(self) -> str:
        """The metrics key this rule reads: ``metric`` or ``metric(column)``."""
        return self.metric if self.column is None else f"{self.metric}({self.column})"

    @property
    def text(self) -> str:
        """Canonical rule text: the same rule always reads the same, however it was typed."""
        base = f"{self.key} {self.op} {_number_text(self.threshold)}"
        if self.windows == 1:
            return base
        return f"{base} for {self.windows} windows"

    def holds(self, value: float) -> bool:
        """Whether ``value`` breaches the rule (the condition is true)."""
        return _OPS[self.op](value, self.threshold)


def _severity(value: object) -> Severity:
    try:
        return Severity(str(value).lower())
    except ValueError:
        raise AlertError(f"severity must be one of {', '.join(Severity)}, "
                         f"not {value!r}") from None


# -- parsing ------------------------------------------------------------------------------

_METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_OP = re.compile(r">=|<=|==|!=|>|<")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_INT = re.compile(r"\d+")
_WORD = re.compile(r"[A-Za-z]+")


class _Cursor:
    """Reads a rule left to right; every failure knows where it happened."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def take(self, pattern: re.Pattern[str]) -> str | None:
        self.skip()
        match = pattern.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    def here(self) -> int:
        self.skip()
        return self.pos

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def found(self) -> str:
        self.skip()
        rest = self.text[self.pos:].split(maxsplit=1)
        return f"found {rest[0][:20]!r}" if rest else "found the end of the rule"

    def fail(self, message: str, at: int | None = None) -> NoReturn:
        self.skip()
        raise AlertRuleError(self.text, self.pos if at is None else at, message)


def parse_rule(text: str, *, name: str | None = None,
               severity: Severity | str = Severity.WARNING,
               windows: int | None = None) -> AlertRule:
    """Parse ``METRIC[(COLUMN)] OP NUMBER [for N windows]``.

    ``windows`` (the config's ``for:``) may be given instead of the ``for`` clause, or both
    when they agree. Raises :class:`AlertRuleError` pointing at the first bad part.
    """
    if not isinstance(text, str):
        raise AlertError(f"an alert rule is text, not {type(text).__name__}")
    cur = _Cursor(text)
    metric = cur.take(_METRIC)
    if metric is None:
        cur.fail(f"expected a metric name such as drift_share, {cur.found()}")
    column = _column(cur)
    op = cur.take(_OP)
    if op is None:
        hint = " ('=' is written '==')" if text[cur.pos:cur.pos + 1] == "=" else ""
        cur.fail(f"expected a comparison (one of {' '.join(_OPS)}) after {metric!r}, "
                 f"{cur.found()}{hint}")
    number_at = cur.here()
    number = cur.take(_NUMBER)
    if number is None:
        cur.fail(f"expected a number after {op!r}, {cur.found()}")
    if cur.pos < len(text) and not text[cur.pos].isspace():
        cur.fail(f"expected a plain number after {op!r}, {cur.found()} right after "
                 f"{number!r}")
    for_windows = None if cur.at_end() else _for_clause(cur)
    if windows is not None and for_windows is not None and windows != for_windows:
        raise AlertRuleError(text, number_at, f"the rule says 'for {for_windows} windows' "
                             f"but its config says for: {windows}")
    if not math.isfinite(float(number)):
        raise AlertRuleError(text, number_at, f"threshold {number} is out of range")
    return AlertRule(metric=metric, op=op, threshold=float(number), column=column,
                     windows=windows or for_windows or 1, severity=_severity(severity),
                     name=name or "")


_SLICE = re.compile(r"\(\s*slice\s*=")
_CLOSE_BEFORE_OP = re.compile(r"\)(?=\s*(?:>=|<=|==|!=|>|<))")


def _column(cur: _Cursor) -> str | None:
    cur.skip()
    if not cur.text.startswith("(", cur.pos):
        return None
    if _SLICE.match(cur.text, cur.pos):
        return _slice(cur)
    start = cur.pos
    end = cur.text.find(")", start)
    nested = cur.text.find("(", start + 1)
    if end < 0:
        cur.fail("'(' is never closed; write METRIC(COLUMN)", at=start)
    if 0 <= nested < end:
        cur.fail("a column name cannot contain '('", at=nested)
    column = cur.text[start + 1:end].strip()
    if not column:
        cur.fail("empty column name between '(' and ')'", at=start)
    cur.pos = end + 1
    return column


def _slice(cur: _Cursor) -> str:
    """``(slice=COLUMN:SLICE)`` as ``slice=COLUMN:SLICE``: the slice's name may hold
    brackets and parentheses (a numeric bin), so it ends at the last ``)`` followed by a
    comparison, else at the last ``)``."""
    start = cur.pos
    closes = [m.start() for m in _CLOSE_BEFORE_OP.finditer(cur.text, start)]
    end = closes[-1] if closes else cur.text.rfind(")")
    if end <= start:
        cur.fail("'(' is never closed; write METRIC(slice=COLUMN:SLICE)", at=start)
    inner_at = cur.text.index("=", start) + 1
    inner = cur.text[inner_at:end]
    if ":" not in inner:
        cur.fail("a slice is written slice=COLUMN:SLICE, e.g. accuracy(slice=cut:Fair); "
                 "no ':' after the column", at=inner_at)
    column, value = (part.strip() for part in inner.split(":", 1))
    if not column:
        cur.fail("empty slice column before ':'; write METRIC(slice=COLUMN:SLICE)",
                 at=inner_at)
    if not value:
        cur.fail(f"empty slice name after '{column}:'; write METRIC(slice={column}:SLICE)",
                 at=inner_at + inner.index(":") + 1)
    cur.pos = end + 1
    return f"slice={column}:{value}"


def _for_clause(cur: _Cursor) -> int:
    word_at = cur.here()
    word = cur.take(_WORD)
    if word is None or word.lower() != "for":
        cur.pos = word_at
        cur.fail(f"expected the end of the rule or 'for N windows', {cur.found()}")
    count_at = cur.here()
    count = cur.take(_INT)
    if count is None:
        cur.fail(f"expected a whole number of windows after 'for', {cur.found()}")
    if int(count) < 1:
        cur.fail("'for' needs at least 1 window", at=count_at)
    unit_at = cur.here()
    unit = cur.take(_WORD)
    if unit is None or unit.lower() not in ("window", "windows"):
        cur.pos = unit_at
        cur.fail(f"expected 'windows' after 'for {count}', {cur.found()}")
    if not cur.at_end():
        cur.fail(f"unexpected text after the rule, {cur.found()}")
    return int(count)


_CONFIG_KEYS = frozenset({"name", "rule", "severity", "for"})


def rule_from_config(item: str | Mapping[str, Any]) -> AlertRule:
    """One config entry: a rule string, or ``{name?, rule, severity?, for?}``."""
    if isinstance(item, str):
        return parse_rule(item)
    if not isinstance(item, Mapping):
        raise AlertError(f"an alert rule is a string or a mapping, not {type(item).__name__}")
    unknown = sorted(set(item) - _CONFIG_KEYS)
    if unknown:
        raise AlertError(f"unknown alert rule keys {unknown}; allowed: "
                         f"{', '.join(sorted(_CONFIG_KEYS))}")
    if "rule" not in item:
        raise AlertError(f"alert rule mapping {dict(item)!r} has no 'rule'")
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise AlertError(f"alert rule name must be non-empty text, not {name!r}")
    windows = item.get("for")
    if windows is not None and (isinstance(windows, bool) or not isinstance(windows, int)
                                or windows < 1):
        raise AlertError(f"alert rule 'for' must be a whole number >= 1, not {windows!r}")
    try:
        return parse_rule(item["rule"], name=name, windows=windows,
                          severity=item.get("severity", Severity.WARNING))
    except AlertRuleError as exc:
        if name:
            exc.args = (f"rule {name!r}: {exc.args[0]}",)
        raise


def parse_rules(items: Iterable[str | Mapping[str, Any] | AlertRule]) -> tuple[AlertRule, ...]:
    """Rules from config (or already parsed); names must be unique: state is kept by name."""
    rules = tuple(i if isinstance(i, AlertRule) else rule_from_config(i) for i in items)
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise AlertError(f"two alert rules are named {rule.name!r}; give them distinct names")
        seen.add(rule.name)
    return rules
