"""Every policy round-trips through its stored, JSON-able form; bad stored forms are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import RoutingError
from shipyard.routing import (
    FORMAT_VERSION,
    BlueGreen,
    Policy,
    Shadow,
    Single,
    StickyAB,
    Weighted,
    policy_from_dict,
    policy_to_dict,
)

_PRINTABLE = ("L", "M", "N", "P", "S")
versions = st.text(st.characters(categories=_PRINTABLE), min_size=1, max_size=20)
salts = st.text(st.characters(categories=_PRINTABLE, include_characters=" "), max_size=20)
keys = st.sampled_from(["header:X-Routing-Key", "header:X-User-Id", "json:user.id", "client",
                        "json:instances.0.customer"])
percents = st.integers(1, 10_000).map(lambda p: p / 100)


@st.composite
def weighted(draw: st.DrawFn) -> Weighted:
    names = draw(st.lists(versions, min_size=2, max_size=4, unique=True))
    cuts = sorted(draw(st.lists(st.integers(0, 10_000), min_size=len(names) - 1,
                                max_size=len(names) - 1)))
    points = [b - a for a, b in zip([0, *cuts], [*cuts, 10_000], strict=True)]
    return Weighted(tuple(zip(names, [p / 100 for p in points], strict=True)),
                    salt=draw(salts), key=draw(keys))  # type: ignore[arg-type]


@st.composite
def two_versions(draw: st.DrawFn) -> tuple[str, str]:
    a, b = draw(st.lists(versions, min_size=2, max_size=2, unique=True))
    return a, b


policies = st.one_of(
    st.builds(Single, versions),
    weighted(),
    st.builds(lambda ab, split, key, salt: StickyAB(*ab, split=split, key=key, salt=salt),
              two_versions(), st.integers(1, 9_999).map(lambda p: p / 100), keys, salts),
    st.builds(lambda pc, pct, salt, key: Shadow(*pc, percent=pct, salt=salt, key=key),
              two_versions(), percents, salts, keys),
    st.builds(lambda bg, live: BlueGreen(*bg, live=live), two_versions(),
              st.sampled_from(["blue", "green"])),
)


@settings(max_examples=200, deadline=None)
@given(policies)
def test_every_policy_round_trips_through_json(policy: Policy) -> None:
    stored = policy_to_dict(policy)
    assert stored["format"] == FORMAT_VERSION and stored["kind"] == policy.kind
    back = policy_from_dict(json.loads(json.dumps(stored)))
    assert back == policy and type(back) is type(policy)
    assert back.plan == policy.plan  # it routes exactly as the original does
    assert policy_to_dict(back) == stored


def test_the_stored_form_is_plain_and_readable() -> None:
    stored = policy_to_dict(Weighted.canary("3", "4", 5, salt="fraud/r1"))
    assert stored == {"format": 1, "kind": "weighted", "salt": "fraud/r1",
                      "key": "header:X-Routing-Key",
                      "splits": [{"version": "3", "weight": 95}, {"version": "4", "weight": 5}]}
    assert policy_to_dict(StickyAB("3", "4", split=12.5, key="json:user.id")) == {
        "format": 1, "kind": "sticky_ab", "a": "3", "b": "4", "split": 12.5,
        "key": "json:user.id", "salt": ""}


_GOOD = policy_to_dict(Weighted.canary("3", "4", 5))


@pytest.mark.parametrize(("data", "message"), [
    ([1, 2], "must be an object"),
    ({**_GOOD, "format": 2}, "format 2; this shipyard reads format 1"),
    ({k: v for k, v in _GOOD.items() if k != "format"}, "format None"),
    ({**_GOOD, "format": True}, "format True"),
    ({**_GOOD, "kind": "canary"}, "unknown policy kind 'canary'"),
    ({k: v for k, v in _GOOD.items() if k != "salt"}, "lacks salt"),
    ({**_GOOD, "owner": "me"}, "unknown fields owner"),
    ({**_GOOD, "splits": {"3": 95}}, "splits must be a list"),
    ({**_GOOD, "splits": [{"version": "3", "weight": 95}, {"version": "4"}]},
     r"splits\[1\] must be an object"),
    ({**_GOOD, "splits": [{"version": "3", "weight": 95}, {"version": "4", "weight": 4}]},
     "must sum to 100"),
    ({**_GOOD, "key": 5}, "key spec must be a string"),
    ({"format": 1, "kind": "single", "version": None}, "version must be a string"),
    ({"format": 1, "kind": "blue_green", "blue": "1", "green": "2", "live": "both"},
     "'blue' or 'green'"),
    ({"format": 1, "kind": "shadow", "primary": "1", "candidate": "2", "percent": "all",
      "salt": "", "key": "client"}, "shadow percent must be a number"),
])
def test_a_bad_stored_policy_is_refused_by_name(data: Any, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        policy_from_dict(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(policies, st.data())
def test_any_corrupted_field_gives_a_routing_error_or_a_valid_policy(policy: Policy,
                                                                     data: st.DataObject) -> None:
    stored = policy_to_dict(policy)
    field = data.draw(st.sampled_from(sorted(stored)))
    stored[field] = data.draw(json_values)
    try:
        back = policy_from_dict(stored)
    except RoutingError:
        return
    assert policy_from_dict(policy_to_dict(back)) == back
