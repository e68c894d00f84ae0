"""Alert state: which rules fire and resolve, window after window. Pure, no I/O.

Each monitoring window, :meth:`AlertEvaluator.evaluate` takes the window's flat metrics
(``{"drift_share": 0.4, "missing_share(age)": 0.12, ...}``) and returns only the *changes*: a
FIRING event when a rule has breached in N consecutive windows, a RESOLVED event on the first
window where a firing rule's condition stops holding. Nothing is emitted while a state holds,
so receivers see each incident once. The state serialises to JSON-able data
(:meth:`AlertEvaluator.to_dict`) so a restarted monitor or server carries on without firing
again. The rules are parsed in ``alert_rules.py``; delivery (webhooks, log, command) lives in
``shipyard.service.alerting``.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shipyard.monitoring.alert_rules import (
    AlertError,
    AlertRule,
    AlertRuleError,
    Severity,
    parse_rule,
    parse_rules,
    rule_from_config,
)

__all__ = [
    "AlertError", "AlertEvaluator", "AlertEvent", "AlertRule", "AlertRuleError", "AlertState",
    "Severity", "parse_rule", "parse_rules", "rule_from_config",
]

STATE_FORMAT = 1


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def _utc(at: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so both kinds compare."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AlertEvent:
    """A change of an alert's state, in the window that caused it.

    ``fingerprint`` names the alert (endpoint + rule name): firing and resolved events of the
    same alert share it. ``id`` names this event (fingerprint + state + when the incident
    started): a receiver that sees the same id twice (a retried delivery) can drop the copy.
    """

    rule: str
    rule_text: str
    state: AlertState
    metric: str
    op: str
    value: float
    threshold: float
    severity: Severity
    endpoint: str | None
    at: datetime
    started_at: datetime
    windows: int
    detail: str | None = None  # what the number alone does not say: the worst slice's name

    @property
    def fingerprint(self) -> str:
        return _digest(self.endpoint or "", self.rule)

    @property
    def id(self) -> str:
        return _digest(self.fingerprint, self.state, self.started_at.isoformat())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; a non-finite value becomes null (JSON has no infinity)."""
        return {
            "id": self.id, "fingerprint": self.fingerprint, "state": str(self.state),
            "endpoint": self.endpoint, "rule": self.rule, "rule_text": self.rule_text,
            "metric": self.metric, "op": self.op, "value": _finite(self.value),
            "threshold": self.threshold, "windows": self.windows,
            "severity": str(self.severity), "at": self.at.isoformat(),
            "started_at": self.started_at.isoformat(),
            **({} if self.detail is None else {"detail": self.detail}),
        }


@dataclass
class _RuleState:
    breaches: int = 0  # consecutive breaching windows (windows without the metric skipped)
    firing: bool = False
    started_at: datetime | None = None  # window that fired, while firing


class AlertEvaluator:
    """Counts breaching windows per rule and reports changes of state.

    Semantics, per rule and window:

    - metric present and the condition holds: the breach count goes up; at ``windows``
      consecutive breaches a FIRING event is emitted, once;
    - metric present and the condition does not hold: the count resets; a firing rule
      emits RESOLVED, once;
    - metric absent, None, NaN or not a number: nothing changes. A window without the data
      (no labels yet for ``accuracy``, say) neither breaks a run of breaches nor resolves.

    A window at or before the last evaluated one is ignored, so re-running the monitor over a
    window it already saw (after a crash, say) does not count it twice. Naive datetimes are
    taken as UTC.
    """

    def __init__(self, rules: Iterable[AlertRule | str | Mapping[str, Any]],
                 state: Mapping[str, Any] | None = None, *,
                 endpoint: str | None = None) -> None:
        self.rules = parse_rules(rules)
        self.endpoint = endpoint
        self._states = {rule.name: _RuleState() for rule in self.rules}
        self._last_at: datetime | None = None
        if state is not None:
            self._restore(state)

    def __repr__(self) -> str:
        return (f"AlertEvaluator({len(self.rules)} rules, endpoint={self.endpoint!r}, "
                f"firing={list(self.firing)})")

    @property
    def firing(self) -> tuple[str, ...]:
        """Names of the rules firing now."""
        return tuple(name for name, s in self._states.items() if s.firing)

    def evaluate(self, metrics: Mapping[str, float | None], at: datetime, *,
                 details: Mapping[str, str] | None = None) -> list[AlertEvent]:
        """Feed one window's metrics; returns the events (changes of state) it caused.
        ``details`` says more about a metric than its number (which slice is the worst);
        an event on that metric carries it."""
        at = _utc(at)
        if self._last_at is not None and at <= self._last_at:
            return []
        self._last_at = at
        events: list[AlertEvent] = []
        for rule in self.rules:
            raw = metrics.get(rule.key)
            if not isinstance(raw, numbers.Real) or math.isnan(float(raw)):
                continue
            value = float(raw)
            event = self._step(rule, self._states[rule.name], value, at)
            if event is not None:
                detail = (details or {}).get(rule.key)
                events.append(event if detail is None else replace(event, detail=detail))
        return events

    def _step(self, rule: AlertRule, state: _RuleState, value: float,
              at: datetime) -> AlertEvent | None:
        if rule.holds(value):
            state.breaches += 1
            if state.firing or state.breaches < rule.windows:
                return None
            state.firing, state.started_at = True, at
            return self._event(rule, AlertState.FIRING, value, at, at)
        state.breaches = 0
        if not state.firing:
            return None
        started = state.started_at or at
        state.firing, state.started_at = False, None
        return self._event(rule, AlertState.RESOLVED, value, at, started)

    def _event(self, rule: AlertRule, kind: AlertState, value: float, at: datetime,
               started: datetime) -> AlertEvent:
        return AlertEvent(rule=rule.name, rule_text=rule.text, state=kind, metric=rule.key,
                          op=rule.op, value=value, threshold=rule.threshold,
                          severity=rule.severity, endpoint=self.endpoint, at=at,
                          started_at=started, windows=rule.windows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state, for :class:`AlertEvaluator` ``(rules, state=...)`` after a restart."""
        return {
            "format": STATE_FORMAT,
            "last_at": None if self._last_at is None else self._last_at.isoformat(),
            "rules": {
                name: {"breaches": s.breaches, "firing": s.firing,
                       "started_at": None if s.started_at is None else s.started_at.isoformat()}
                for name, s in self._states.items()
            },
        }

    @classmethod
    def from_dict(cls, rules: Iterable[AlertRule | str | Mapping[str, Any]],
                  state: Mapping[str, Any], *, endpoint: str | None = None) -> AlertEvaluator:
        return cls(rules, state, endpoint=endpoint)

    def _restore(self, state: Mapping[str, Any]) -> None:
        """Take saved counts for rules still configured (by name); forget removed rules."""
        try:
            if state.get("format") != STATE_FORMAT:
                raise ValueError(f"unknown state format {state.get('format')!r}")
            last = state.get("last_at")
            self._last_at = None if last is None else _utc(datetime.fromisoformat(last))
            for name, saved in dict(state.get("rules") or {}).items():
                if name not in self._states:
                    continue
                started = saved.get("started_at")
                firing = bool(saved["firing"])
                self._states[name] = _RuleState(
                    breaches=int(saved["breaches"]), firing=firing,
                    started_at=_utc(datetime.fromisoformat(started))
                    if firing and started else None)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise AlertError(f"saved alert state is unreadable ({exc}); delete it to start "
                             "afresh") from None
