"""Leases in the registry database, on both backends: one holder at a time, a fencing token
that grows whenever the holder changes, and racing processes of which exactly one wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.helpers import race
from shipyard.errors import RegistryError
from shipyard.registry import Registry
from shipyard.registry.leases import Lease, Leases

T0 = 1_700_000_000.0


def test_one_holder_until_it_expires_then_a_takeover_with_the_next_token(
        reg: Registry) -> None:
    leases = Leases(reg)
    first = leases.acquire("rollout:fraud", "server-a", 30, now=T0)
    assert first == Lease("rollout:fraud", "server-a", 1, T0 + 30)
    assert leases.acquire("rollout:fraud", "server-b", 30, now=T0 + 29.9) is None
    # the holder takes it again (keeps it): same token, later expiry
    again = leases.acquire("rollout:fraud", "server-a", 30, now=T0 + 10)
    assert again == Lease("rollout:fraud", "server-a", 1, T0 + 40)
    renewed = leases.renew(again, 30, now=T0 + 20)
    assert renewed == Lease("rollout:fraud", "server-a", 1, T0 + 50)
    assert leases.acquire("rollout:fraud", "server-b", 30, now=T0 + 49) is None
    # expired: server-b takes it over, with token + 1; server-a has lost it
    taken = leases.acquire("rollout:fraud", "server-b", 30, now=T0 + 50)
    assert taken == Lease("rollout:fraud", "server-b", 2, T0 + 80)
    assert leases.renew(renewed, 30, now=T0 + 51) is None
    assert leases.release(renewed) is False
    assert leases.get("rollout:fraud") == taken
    # other names are independent
    assert leases.acquire("rollout:search", "server-a", 5, now=T0 + 51) == Lease(
        "rollout:search", "server-a", 1, T0 + 56)


def test_released_lease_is_free_at_once_and_the_token_keeps_growing(reg: Registry) -> None:
    leases = Leases(reg)
    held = leases.acquire("l", "a", 60, now=T0)
    assert held is not None and leases.release(held) is True
    assert leases.renew(held, 60, now=T0 + 1) is not None  # nobody took it: still a's token
    assert leases.release(held) is True
    taken = leases.acquire("l", "b", 60, now=T0 + 1)
    assert taken is not None and taken.token == 2
    assert leases.release(taken)
    back = leases.acquire("l", "a", 60, now=T0 + 2)
    assert back is not None and back.token == 3  # the holder changed again
    assert leases.get("never") is None


@pytest.mark.parametrize("name, holder, ttl, now, message", [
    ("", "a", 1, T0, "lease name"), ("x" * 129, "a", 1, T0, "lease name"),
    ("l", "", 1, T0, "lease holder"), ("l", "a\n", 1, T0, "lease holder"),
    ("l", "a", 0, T0, "ttl_s must be a finite number > 0"),
    ("l", "a", float("inf"), T0, "ttl_s"), ("l", "a", True, T0, "ttl_s"),
    ("l", "a", 1, float("nan"), "time must be a finite number"),
])
def test_bad_arguments_are_refused(reg: Registry, name: str, holder: str, ttl: float,
                                   now: float, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        Leases(reg).acquire(name, holder, ttl, now=now)


@pytest.mark.parametrize("taken_before", [False, True], ids=["free", "expired"])
def test_racing_holders_exactly_one_wins(backend: str, reg: Registry, tmp_path: Path,
                                         taken_before: bool) -> None:
    if taken_before:  # the racers meet on an expired row (UPDATE), else on none (INSERT)
        assert Leases(reg).acquire("race", "old", 10, now=T0 - 100) is not None
    racers = 6
    results = race(backend, tmp_path, racers, lambda registry, i: Leases(registry).acquire(
        "race", f"holder-{i}", 30, now=T0))
    winners = [r for r in results if isinstance(r, Lease)]
    assert len(winners) == 1 and results.count(None) == racers - 1, results
    assert winners[0].token == (2 if taken_before else 1)
    assert Leases(reg).get("race") == winners[0]
