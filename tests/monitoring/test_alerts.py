"""Alert rules (grammar, config) and the firing/resolved state machine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.monitoring.alerts import (
    AlertError,
    AlertEvaluator,
    AlertRule,
    AlertRuleError,
    AlertState,
    Severity,
    parse_rule,
    parse_rules,
    rule_from_config,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def window(i: int) -> datetime:
    return T0 + timedelta(hours=i)


def run(evaluator: AlertEvaluator, values: list[float | None], key: str = "drift_share",
        start: int = 0) -> list[tuple[int, AlertState]]:
    """Feed one metric window by window; returns (window index, state) per event."""
    out = []
    for i, value in enumerate(values, start):
        for event in evaluator.evaluate({key: value}, window(i)):
            out.append((i, event.state))
    return out


# -- grammar ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "key", "op", "threshold", "windows", "canonical"), [
    ("drift_share > 0.3 for 2 windows", "drift_share", ">", 0.3, 2,
     "drift_share > 0.3 for 2 windows"),
    ("p99_latency_ms > 100", "p99_latency_ms", ">", 100.0, 1, "p99_latency_ms > 100"),
    ("accuracy < 0.85", "accuracy", "<", 0.85, 1, "accuracy < 0.85"),
    ("missing_share(col) > 0.1", "missing_share(col)", ">", 0.1, 1,
     "missing_share(col) > 0.1"),
    ("  missing_share ( my col ) >=.5  ", "missing_share(my col)", ">=", 0.5, 1,
     "missing_share(my col) >= 0.5"),
    ("drift(proba.yes)<=-1e-3 FOR 1 Window", "drift(proba.yes)", "<=", -0.001, 1,
     "drift(proba.yes) <= -0.001"),
    ("dataset_drift == 1 for 3 windows", "dataset_drift", "==", 1.0, 3,
     "dataset_drift == 1 for 3 windows"),
    ("rows != 0", "rows", "!=", 0.0, 1, "rows != 0"),
])
def test_valid_rules_parse(text: str, key: str, op: str, threshold: float, windows: int,
                           canonical: str) -> None:
    rule = parse_rule(text)
    assert (rule.key, rule.op, rule.threshold, rule.windows) == (key, op, threshold, windows)
    assert rule.text == canonical
    assert rule.name == canonical  # names default to the rule text
    assert rule.severity is Severity.WARNING
    assert parse_rule(rule.text) == rule  # the canonical text parses back to the same rule


@pytest.mark.parametrize(("text", "caret", "words"), [
    ("", 0, "expected a metric name"),
    ("> 0.3", 0, "expected a metric name"),
    ("drift_share 0.3", 12, "expected a comparison"),
    ("drift_share => 0.3", 12, "'==')"),
    ("drift_share = 0.3", 12, "'=' is written '=='"),
    ("drift_share >", 13, "expected a number after '>'"),
    ("drift_share > high", 14, "found 'high'"),
    ("p99_latency_ms > 100ms", 20, "found 'ms'"),
    ("x > 0.3.4", 7, "plain number"),
    ("x > 1e999", 4, "out of range"),
    ("missing_share(age > 0.1", 13, "never closed"),
    ("missing_share() > 0.1", 13, "empty column"),
    ("missing_share(a(b)) > 0.1", 15, "cannot contain '('"),
    ("drift_share > 0.3 every 2 windows", 18, "'for N windows'"),
    ("drift_share > 0.3 for", 21, "whole number of windows"),
    ("drift_share > 0.3 for two windows", 22, "found 'two'"),
    ("drift_share > 0.3 for 0 windows", 22, "at least 1 window"),
    ("drift_share > 0.3 for 2 hours", 24, "expected 'windows'"),
    ("drift_share > 0.3 for 2 windows now", 32, "unexpected text after the rule"),
])
def test_invalid_rules_point_at_the_bad_part(text: str, caret: int, words: str) -> None:
    with pytest.raises(AlertRuleError) as info:
        parse_rule(text)
    assert info.value.position == caret
    message = str(info.value)
    assert words in message
    *_, shown, marker = message.splitlines()
    assert shown == f"    {text}"
    assert marker == " " * (4 + caret) + "^"


def test_config_entries() -> None:
    rules = parse_rules([
        "accuracy < 0.85",
        {"name": "drift", "rule": "drift_share > 0.3", "severity": "critical", "for": 2},
        {"rule": "p99_latency_ms > 100 for 3 windows", "for": 3},
        AlertRule(metric="missing_share", column="age", op=">", threshold=0.1),
    ])
    assert [r.name for r in rules] == [
        "accuracy < 0.85", "drift", "p99_latency_ms > 100 for 3 windows",
        "missing_share(age) > 0.1"]
    assert rules[1].severity is Severity.CRITICAL
    assert rules[1].windows == 2
    assert rules[1].text == "drift_share > 0.3 for 2 windows"
    assert rules[2].windows == 3


@pytest.mark.parametrize(("item", "words"), [
    ({"rule": "x > 1", "severity": "page"}, "severity must be one of info, warning, critical"),
    ({"rule": "x > 1", "for": 0}, "'for' must be a whole number >= 1"),
    ({"rule": "x > 1", "for": True}, "'for' must be a whole number >= 1"),
    ({"rule": "x > 1", "every": 2}, "unknown alert rule keys ['every']"),
    ({"name": "x"}, "has no 'rule'"),
    ({"rule": "x > 1", "name": " "}, "name must be non-empty"),
    ({"rule": 3}, "an alert rule is text"),
    (42, "a string or a mapping"),
])
def test_invalid_config_entries(item: object, words: str) -> None:
    with pytest.raises(AlertError) as info:
        rule_from_config(item)  # type: ignore[arg-type]
    assert words in str(info.value)


def test_config_entry_errors_name_the_rule_and_conflicting_for_is_refused() -> None:
    with pytest.raises(AlertRuleError, match=r"^rule 'drift': invalid alert rule"):
        rule_from_config({"name": "drift", "rule": "drift_share >> 0.3"})
    with pytest.raises(AlertRuleError, match="says 'for 2 windows' but its config says for: 3"):
        rule_from_config({"rule": "drift_share > 0.3 for 2 windows", "for": 3})


def test_rule_names_must_be_unique() -> None:
    with pytest.raises(AlertError, match=r"two alert rules are named 'accuracy < 0\.8'"):
        parse_rules(["accuracy < 0.8", "accuracy<0.8"])


# -- state machine ------------------------------------------------------------------------

def test_fires_after_n_consecutive_windows_and_resolves_once() -> None:
    evaluator = AlertEvaluator(["drift_share > 0.3 for 2 windows"], endpoint="iris")
    events = run(evaluator, [0.1, 0.4, 0.5, 0.6, 0.7, 0.2, 0.1, 0.1])
    assert events == [(2, AlertState.FIRING), (5, AlertState.RESOLVED)]


def test_event_fields() -> None:
    evaluator = AlertEvaluator([{"name": "drift", "rule": "drift_share > 0.3",
                                 "severity": "critical"}], endpoint="iris")
    fired = evaluator.evaluate({"drift_share": 0.4}, window(0))
    resolved = evaluator.evaluate({"drift_share": 0.1}, window(1))
    assert len(fired) == len(resolved) == 1
    f, r = fired[0], resolved[0]
    assert (f.rule, f.rule_text, f.state, f.value, f.threshold, f.severity, f.endpoint) == (
        "drift", "drift_share > 0.3", AlertState.FIRING, 0.4, 0.3, Severity.CRITICAL, "iris")
    assert (r.state, r.value, r.at, r.started_at) == (
        AlertState.RESOLVED, 0.1, window(1), window(0))
    assert f.fingerprint == r.fingerprint  # one alert
    assert f.id != r.id  # two events
    payload = json.loads(json.dumps(f.to_dict()))
    assert payload["state"] == "firing"
    assert payload["metric"] == "drift_share"
    assert payload["at"] == window(0).isoformat()
    other = AlertEvaluator(["drift_share > 0.3"], endpoint="other").evaluate(
        {"drift_share": 0.4}, window(0))[0]
    assert other.fingerprint != f.fingerprint


def test_flapping_below_the_window_count_never_fires() -> None:
    evaluator = AlertEvaluator(["drift_share > 0.3 for 2 windows"])
    assert run(evaluator, [0.4, 0.1, 0.4, 0.1, 0.4, 0.1]) == []


def test_flapping_with_one_window_fires_and_resolves_each_time() -> None:
    evaluator = AlertEvaluator(["drift_share > 0.3"])
    assert run(evaluator, [0.4, 0.5, 0.1, 0.4, 0.1, 0.0]) == [
        (0, AlertState.FIRING), (2, AlertState.RESOLVED),
        (3, AlertState.FIRING), (4, AlertState.RESOLVED)]


def test_missing_none_and_nan_leave_the_state_unchanged() -> None:
    evaluator = AlertEvaluator(["accuracy < 0.85 for 2 windows"])
    # a window without labels neither breaks the run of breaches nor resolves the alert
    events = run(evaluator, [0.8, None, float("nan"), 0.7, None, 0.9], key="accuracy")
    assert events == [(3, AlertState.FIRING), (5, AlertState.RESOLVED)]
    assert evaluator.evaluate({}, window(10)) == []
    assert evaluator.evaluate({"accuracy": "n/a"}, window(11)) == []  # type: ignore[dict-item]


def test_column_scoped_metric_and_several_rules() -> None:
    evaluator = AlertEvaluator(["missing_share(age) > 0.1", "p99_latency_ms > 100"])
    events = evaluator.evaluate({"missing_share(age)": 0.12, "missing_share(city)": 0.5,
                                 "p99_latency_ms": 50.0}, window(0))
    assert [(e.rule, e.state) for e in events] == [
        ("missing_share(age) > 0.1", AlertState.FIRING)]
    assert evaluator.firing == ("missing_share(age) > 0.1",)


def test_an_old_or_repeated_window_is_ignored() -> None:
    evaluator = AlertEvaluator(["drift_share > 0.3 for 2 windows"])
    assert evaluator.evaluate({"drift_share": 0.5}, window(1)) == []
    assert evaluator.evaluate({"drift_share": 0.5}, window(1)) == []  # same window again
    assert evaluator.evaluate({"drift_share": 0.5}, window(0)) == []  # older window
    assert evaluator.firing == ()
    naive = window(2).replace(tzinfo=None)  # naive datetimes are UTC
    assert [e.state for e in evaluator.evaluate({"drift_share": 0.5}, naive)] == [
        AlertState.FIRING]


def test_persistence_round_trip_does_not_fire_again() -> None:
    rules = ["drift_share > 0.3 for 2 windows", "accuracy < 0.85"]
    first = AlertEvaluator(rules, endpoint="iris")
    assert run(first, [0.4, 0.5]) == [(1, AlertState.FIRING)]
    saved = json.loads(json.dumps(first.to_dict()))

    restarted = AlertEvaluator.from_dict(rules, saved, endpoint="iris")
    assert restarted.firing == ("drift_share > 0.3 for 2 windows",)
    assert run(restarted, [0.6, 0.7], start=2) == []
    resolved = restarted.evaluate({"drift_share": 0.1}, window(4))
    assert [e.state for e in resolved] == [AlertState.RESOLVED]
    assert resolved[0].started_at == window(1)  # the incident that fired before the restart


def test_saved_breaches_count_towards_for_n_windows() -> None:
    rules = ["drift_share > 0.3 for 3 windows"]
    first = AlertEvaluator(rules)
    assert run(first, [0.4, 0.4]) == []
    restarted = AlertEvaluator(rules, first.to_dict())
    assert run(restarted, [0.4], start=2) == [(2, AlertState.FIRING)]


def test_state_of_removed_rules_is_forgotten_and_bad_state_refused() -> None:
    first = AlertEvaluator(["drift_share > 0.3", "accuracy < 0.85"])
    first.evaluate({"drift_share": 0.9, "accuracy": 0.1}, window(0))
    kept = AlertEvaluator(["accuracy < 0.85"], first.to_dict())
    assert kept.firing == ("accuracy < 0.85",)
    assert list(kept.to_dict()["rules"]) == ["accuracy < 0.85"]
    with pytest.raises(AlertError, match="saved alert state is unreadable"):
        AlertEvaluator(["accuracy < 0.85"], {"format": 99})
    with pytest.raises(AlertError, match="saved alert state is unreadable"):
        AlertEvaluator(["accuracy < 0.85"],
                       {"format": 1, "rules": {"accuracy < 0.85": {"firing": True}}})


@given(values=st.lists(st.one_of(st.none(), st.sampled_from([0.1, 0.5])), max_size=40),
       windows=st.integers(1, 4), cut=st.integers(0, 40))
def test_properties_of_the_event_stream(values: list[float | None], windows: int,
                                        cut: int) -> None:
    """Events alternate firing/resolved starting with firing; a firing event comes exactly
    when the windows-th consecutive breach (ignoring missing windows) is seen; saving and
    restoring the state at any point changes nothing."""
    rules = [f"drift_share > 0.3 for {windows} windows"]
    straight = run(AlertEvaluator(rules), values)

    first = AlertEvaluator(rules)
    head = run(first, values[:cut])
    restored = AlertEvaluator(rules, json.loads(json.dumps(first.to_dict())))
    assert head + run(restored, values[cut:], start=min(cut, len(values))) == straight

    states = [s for _, s in straight]
    assert states == [AlertState.FIRING if i % 2 == 0 else AlertState.RESOLVED
                      for i in range(len(states))]
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    expected, streak, firing = [], 0, False
    for i, v in present:
        if v > 0.3:
            streak += 1
            if streak == windows and not firing:
                expected.append((i, AlertState.FIRING))
                firing = True
        else:
            streak = 0
            if firing:
                expected.append((i, AlertState.RESOLVED))
                firing = False
    assert straight == expected
