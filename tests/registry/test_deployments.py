"""Endpoint traffic policies in the registry (``Registry.deployments``), on both backends:
round-trips, history and audit, refused versions, and optimistic concurrency."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from registry.helpers import MODEL, Packages, open_registry, race
from shipyard.errors import ConflictError, NotFoundError, RegistryError, RoutingError
from shipyard.registry import Registry
from shipyard.routing import (
    BlueGreen,
    Policy,
    Shadow,
    Single,
    StickyAB,
    Weighted,
    policy_to_dict,
)

V1, V2, V3 = f"{MODEL}/1", f"{MODEL}/2", f"{MODEL}/3"
POLICIES: list[Policy] = [
    Single(V1),
    Weighted(((V1, 90), (V2, 9.5), (V3, 0.5)), salt="rollout-7", key="header:X-User-Id"),
    Weighted.canary(V1, V2, 0),
    StickyAB(V1, V2, split=30, salt="exp", key="json:user.id"),
    Shadow(V1, V2, percent=25, key="client"),
    BlueGreen(V1, V2, live="green"),
]


@pytest.fixture
def three(reg: Registry, pkgs: Packages) -> Registry:
    for _ in range(3):
        reg.register(pkgs.base)
    return reg


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.kind)
def test_every_policy_kind_round_trips(three: Registry, policy: Policy) -> None:
    deps = three.deployments
    assert deps.current("fraud") is None
    saved = deps.set_policy("fraud", policy, reason="first")
    assert (saved.revision, saved.policy) == (1, policy)
    assert deps.current("fraud") == (1, policy)
    # the stored form is accepted too, and makes the next revision
    deps.set_policy("fraud", policy_to_dict(policy), reason="again", expected_revision=1)
    assert deps.current("fraud") == (2, policy)
    assert deps.endpoints() == ["fraud"]


def test_versions_are_stored_canonical(three: Registry) -> None:
    three.deployments.set_policy("e", Single(f"models:/{V2}"), reason="uri")
    assert three.deployments.current("e") == (1, Single(V2))
    with pytest.raises(RegistryError, match="exact versions"):
        three.deployments.set_policy("e", Single(f"{MODEL}@production"), reason="alias")
    with pytest.raises(RoutingError, match="twice"):  # two spellings of one version
        three.deployments.set_policy("e", Weighted(((V1, 50), (f"models:/{V1}", 50))),
                                     reason="dup")


def test_history_and_audit_record_who_when_before_after_why(
        backend: str, three: Registry, tmp_path: Path) -> None:
    start = datetime.now(UTC)
    three.deployments.set_policy("fraud", Single(V1), reason="launch")
    other = open_registry(backend, tmp_path, actor="alice")
    try:
        other.deployments.set_policy("fraud", Weighted.canary(V1, V2, 5), reason="canary 5%",
                                     expected_revision=1)
        three.deployments.set_policy("search", Single(V3), reason="new endpoint")
        history = other.deployments.history("fraud")
    finally:
        other.close()
    assert [(h.revision, h.previous_revision, h.actor, h.reason) for h in history] == [
        (1, None, "tester", "launch"), (2, 1, "alice", "canary 5%")]
    assert [h.policy for h in history] == [Single(V1), Weighted.canary(V1, V2, 5)]
    assert all(start <= h.at <= datetime.now(UTC) for h in history)
    assert history[0].at <= history[1].at
    assert history[1].to_dict()["policy"] == policy_to_dict(Weighted.canary(V1, V2, 5))
    assert three.deployments.endpoints() == ["fraud", "search"]

    records = three.audit(action="deployment.policy")
    assert [r.actor for r in records] == ["tester", "alice", "tester"]
    first, second, _ = records
    assert first.before is None
    assert first.after == {"endpoint": "fraud", "revision": 1,
                           "policy": policy_to_dict(Single(V1)), "reason": "launch"}
    assert second.before == {"endpoint": "fraud", "revision": 1,
                             "policy": policy_to_dict(Single(V1))}
    assert second.after == {"endpoint": "fraud", "revision": 2, "reason": "canary 5%",
                            "policy": policy_to_dict(Weighted.canary(V1, V2, 5))}
    assert start <= first.at <= second.at


@pytest.mark.parametrize("policy, error, message", [
    (Single(f"{MODEL}/9"), NotFoundError, "no version 9"),
    (Single("nosuch/1"), NotFoundError, "unknown model 'nosuch'"),
    (Shadow(V1, f"{MODEL}/9"), NotFoundError, "no version 9"),  # the shadow is loaded too
    (Weighted(((V1, 100), (V3, 0))), ConflictError, "iris/3 is archived"),
    (BlueGreen(V3, V1), ConflictError, "iris/3 is archived"),
], ids=["unknown-version", "unknown-model", "unknown-shadow", "archived-zero-weight",
        "archived-idle-colour"])
def test_unknown_or_archived_versions_are_refused(
        three: Registry, policy: Policy, error: type[Exception], message: str) -> None:
    three.archive(V3)
    three.deployments.set_policy("fraud", Single(V1), reason="launch")
    with pytest.raises(error, match=message):
        three.deployments.set_policy("fraud", policy, reason="bad")
    assert three.deployments.current("fraud") == (1, Single(V1))  # nothing was written
    assert len(three.deployments.history("fraud")) == 1
    assert len(three.audit(action="deployment.policy")) == 1


def test_a_version_a_policy_loads_cannot_be_archived(three: Registry) -> None:
    three.deployments.set_policy("fraud", Shadow(V1, V2), reason="shadow")
    with pytest.raises(ConflictError, match="traffic policy of 'fraud'"):
        three.archive(V2)
    three.deployments.set_policy("fraud", Single(V1), reason="shadow done")
    assert three.archive(V2).status == "archived"


@pytest.mark.parametrize("bad", [
    {"endpoint": "", "reason": "x"}, {"endpoint": "a/b", "reason": "x"},
    {"endpoint": "e", "reason": "  "}, {"endpoint": "e", "reason": "x", "expected": -1},
    {"endpoint": "e", "reason": "x", "expected": True},
], ids=["empty-endpoint", "slash", "no-reason", "negative-revision", "bool-revision"])
def test_bad_requests_are_refused(three: Registry, bad: dict[str, Any]) -> None:
    with pytest.raises(RegistryError):
        three.deployments.set_policy(bad["endpoint"], Single(V1), reason=bad["reason"],
                                     expected_revision=bad.get("expected"))
    with pytest.raises(RoutingError, match="unknown policy kind"):
        three.deployments.set_policy("e", {"format": 1, "kind": "nope"}, reason="x")
    assert three.deployments.endpoints() == []
    with pytest.raises(NotFoundError, match="unknown endpoint"):
        three.deployments.history("e")


def test_stale_expected_revision_is_refused(three: Registry) -> None:
    deps = three.deployments
    with pytest.raises(ConflictError, match="at revision 0, not 1"):
        deps.set_policy("fraud", Single(V1), reason="x", expected_revision=1)
    deps.set_policy("fraud", Single(V1), reason="launch", expected_revision=0)
    deps.set_policy("fraud", Single(V2), reason="move", expected_revision=1)
    with pytest.raises(ConflictError, match="at revision 2, not 1"):
        deps.set_policy("fraud", Single(V3), reason="stale", expected_revision=1)
    with pytest.raises(ConflictError, match="at revision 2, not 0"):
        deps.set_policy("fraud", Single(V3), reason="create", expected_revision=0)
    assert deps.current("fraud") == (2, Single(V2))
    assert [h.revision for h in deps.history("fraud")] == [1, 2]


@pytest.mark.parametrize("expected", [0, 1], ids=["create", "update"])
def test_concurrent_writers_with_the_same_revision_exactly_one_wins(
        backend: str, three: Registry, tmp_path: Path, expected: int) -> None:
    if expected:
        three.deployments.set_policy("fraud", Single(V1), reason="launch")
    writers = 4

    def write(reg: Registry, i: int) -> str:
        reg.deployments.set_policy("fraud", Weighted.canary(V1, V2, i + 1),
                                   reason=f"writer {i}", expected_revision=expected)
        return f"won:{i}"

    outcomes = race(backend, tmp_path, writers, write, actor="writer")
    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(winners) == 1 and outcomes.count("conflict") == writers - 1, outcomes
    winner = int(winners[0].split(":")[1])
    assert three.deployments.current("fraud") == (expected + 1,
                                                  Weighted.canary(V1, V2, winner + 1))
    history = three.deployments.history("fraud")
    assert [h.revision for h in history] == list(range(1, expected + 2))
    assert history[-1].actor == f"writer-{winner}"
    assert len(three.audit(action="deployment.policy")) == expected + 1
