"""Policies are validated on construction: a bad one raises RoutingError naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from shipyard.errors import RoutingError, ShipyardError
from shipyard.routing import (
    BlueGreen,
    KeySpec,
    Shadow,
    Single,
    StickyAB,
    Weighted,
    parse_key_spec,
    route,
)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Single(""), "version must not be empty"),
    (lambda: Single(3), "version must be a string"),
    (lambda: Single("v\n1"), "unprintable characters"),
    (lambda: Single("v" * 300), "at most 256"),
    (lambda: Weighted((("1", 95), ("2", 6))), "must sum to 100, not 101"),
    (lambda: Weighted((("1", 100),)), "at least two versions"),
    (lambda: Weighted((("1", 50), ("1", 50))), "names a version twice"),
    (lambda: Weighted((("1", 105), ("2", -5))), "between 0 and 100"),
    (lambda: Weighted((("1", 94.995), ("2", 5.005))), "finer than the 0.01"),
    (lambda: Weighted((("1", float("nan")), ("2", 5))), "finite"),
    (lambda: Weighted((("1", True), ("2", 99))), "must be a number"),
    (lambda: Weighted((("1", "95"), ("2", 5))), "must be a number"),
    (lambda: Weighted((("1", 95, "x"), ("2", 5))), r"splits\[0\] must be a"),
    (lambda: Weighted("12"), "list of"),
    (lambda: Weighted((("1", 95), ("2", 5)), salt="a\0b"), "unprintable characters"),
    (lambda: Weighted((("1", 95), ("2", 5)), key="cookie:x"), "not understood"),
    (lambda: Weighted.canary("1", "2", 101), "canary percent"),
    (lambda: StickyAB("1", "1"), "two different versions"),
    (lambda: StickyAB("1", "2", split=0), "between 0.01 and 99.99"),
    (lambda: StickyAB("1", "2", split=100), "between 0.01 and 99.99"),
    (lambda: StickyAB("1", "", split=50), "b's version must not be empty"),
    (lambda: Shadow("1", "1"), "other than the primary"),
    (lambda: Shadow("1", "2", percent=0), "shadow percent"),
    (lambda: Shadow("1", "2", percent=100.5), "shadow percent"),
    (lambda: BlueGreen("1", "1"), "two different versions"),
    (lambda: BlueGreen("1", "2", live="red"), "'blue' or 'green'"),  # type: ignore[arg-type]
])
def test_a_bad_policy_is_refused_with_a_clear_error(build: Any, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        build()
    assert issubclass(RoutingError, ShipyardError)


def test_valid_policies_normalise_their_fields() -> None:
    canary = Weighted([["1", 95], ["2", 5]], key="header:X-User-Id")  # type: ignore[arg-type]
    assert canary.splits == (("1", 95.0), ("2", 5.0))
    assert canary == Weighted.canary("1", "2", 5, key=parse_key_spec("header:X-User-Id"))
    assert isinstance(canary.key, KeySpec) and canary.key.header == "x-user-id"
    assert canary.versions == ("1", "2") and canary.warm == ("1", "2")
    full = Weighted.canary("1", "2", 100)
    assert full.versions == ("2",) and full.warm == ("1", "2")
    assert Weighted.canary("1", "2", 0.07).splits == (("1", 99.93), ("2", 0.07))
    assert StickyAB("a1", "b1").key == parse_key_spec("header:X-Routing-Key")
    assert Shadow("1", "2").versions == ("1",) and Shadow("1", "2").warm == ("1", "2")


def test_blue_green_switch_moves_every_request_and_back() -> None:
    blue = BlueGreen("v1", "v2")
    assert blue.versions == ("v1",) and blue.warm == ("v1", "v2")
    keys = [f"user-{i}" for i in range(200)] + [None]
    assert {(route(blue, k).version, route(blue, k).variant) for k in keys} == {("v1", "blue")}
    green = blue.switched()
    assert green.live == "green" and green.versions == ("v2",) and green.warm == ("v1", "v2")
    assert {(route(green, k).version, route(green, k).variant) for k in keys} == {("v2", "green")}
    assert green.switched() == blue
    assert route(green, "x").kind == "blue_green" and route(green, "x").shadow is None


def test_single_sends_everything_to_its_version() -> None:
    policy = Single("7")
    decisions = {route(policy, k) for k in ["a", "b", None, ""]}
    assert len(decisions) == 1
    (decision,) = decisions
    assert (decision.version, decision.variant, decision.kind, decision.shadow) == \
        ("7", "stable", "single", None)


def test_the_routing_core_imports_only_the_leaves_and_the_stdlib() -> None:
    code = ("import sys; import shipyard.routing; "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
            "('shipyard', 'numpy', 'scipy', 'pandas', 'pyarrow', 'sqlalchemy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), timeout=60, check=True).stdout.split()
    allowed = {"shipyard", "shipyard._version", "shipyard._lazy", "shipyard.errors",
               "shipyard.types", "shipyard.settings"}
    outside = sorted(m for m in out if m not in allowed and not m.startswith("shipyard.routing"))
    assert "shipyard.routing.route" in out and not outside, outside
