"""route(): sticky by a stable hash, splits near their targets, canaries that only grow,
shadow copies at their percent, and keyless requests by a draw or the documented fallback."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections import Counter

import pytest

from shipyard.routing import (
    BUCKETS,
    Shadow,
    StickyAB,
    Weighted,
    bucket,
    policy_to_dict,
    route,
)

KEYS = [f"user-{i}" for i in range(10_000)]


def test_the_bucket_is_blake2b_of_salt_nul_key() -> None:
    for salt, key in [("", "user-1"), ("fraud/r1", "alice"), ("é", "ключ"), ("s", "")]:
        digest = hashlib.blake2b(salt.encode() + b"\0" + key.encode(), digest_size=8).digest()
        assert bucket(salt, key) == int.from_bytes(digest, "big") % BUCKETS
    # a lone surrogate (what a broken client may send through JSON) still hashes
    assert 0 <= bucket("", "\udcff") < BUCKETS


def test_the_same_key_always_gets_the_same_variant() -> None:
    policy = StickyAB("v1", "v2", split=50, salt="exp-1")
    first = [route(policy, k) for k in KEYS]
    again = [route(StickyAB("v1", "v2", split=50, salt="exp-1"), k) for k in reversed(KEYS)]
    assert first == again[::-1]
    assert all(d.by_key and d.kind == "sticky_ab" for d in first)
    assert {(d.version, d.variant) for d in first} == {("v1", "a"), ("v2", "b")}


_CHILD = """
import json, sys
from shipyard.routing import policy_from_dict, route
policy = policy_from_dict(json.loads(sys.argv[1]))
keys = json.loads(sys.stdin.read())
print(json.dumps([route(policy, k).variant for k in keys]))
"""


def test_stickiness_holds_across_processes_with_other_hash_seeds() -> None:
    policy = StickyAB("v1", "v2", split=50, salt="exp-1")
    here = [route(policy, k).variant for k in KEYS]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}  # keeps PYTHONPATH: this checkout's code
        out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(policy_to_dict(policy))],
                             input=json.dumps(KEYS), capture_output=True, text=True, env=env,
                             timeout=60, check=True)
        assert json.loads(out.stdout) == here


@pytest.mark.parametrize("target", [50, 5, 20, 95])
def test_the_observed_split_is_within_two_points_of_the_target(target: float) -> None:
    ab = StickyAB("v1", "v2", split=target, salt="split-test")
    canary = Weighted.canary("v1", "v2", target, salt="split-test")
    for policy in (ab, canary):
        on_v2 = sum(route(policy, k).version == "v2" for k in KEYS)
        assert abs(100 * on_v2 / len(KEYS) - target) <= 2, (policy, on_v2)


def test_salts_make_experiments_independent() -> None:
    one = StickyAB("v1", "v2", salt="exp-1")
    two = StickyAB("v1", "v2", salt="exp-2")
    both_b = sum(route(one, k).variant == "b" and route(two, k).variant == "b" for k in KEYS)
    assert abs(both_b / len(KEYS) - 0.25) < 0.02  # independent halves, not the same half


def test_a_growing_canary_keeps_every_key_it_had() -> None:
    steps = [0, 1, 5, 20, 50, 99.5, 100]
    previous: set[str] = set()
    for pct in steps:
        policy = Weighted.canary("stable-v", "canary-v", pct, salt="rollout-7")
        on_canary = {k for k in KEYS if route(policy, k).variant == "canary"}
        assert previous <= on_canary, f"keys left the canary at {pct}%"
        assert abs(100 * len(on_canary) / len(KEYS) - pct) <= 2
        assert all(route(policy, k).version == "canary-v" for k in on_canary)
        previous = on_canary
    assert len(previous) == len(KEYS)


def test_a_three_way_split_names_its_variants_in_order() -> None:
    policy = Weighted((("v1", 60), ("v2", 30), ("v3", 10)))
    counts = Counter((route(policy, k).version, route(policy, k).variant) for k in KEYS)
    assert set(counts) == {("v1", "stable"), ("v2", "canary"), ("v3", "canary-2")}
    for (version, _), share in zip(sorted(counts), [60, 30, 10], strict=True):
        assert abs(100 * counts[(version, _)] / len(KEYS) - share) <= 2


def test_shadow_copies_the_chosen_percent_and_primary_always_answers() -> None:
    for pct in (100, 30, 0.5):
        policy = Shadow("v1", "v2", percent=pct, salt="sh")
        decisions = [route(policy, k) for k in KEYS]
        assert {(d.version, d.variant, d.kind) for d in decisions} == {("v1", "primary", "shadow")}
        copied = sum(d.shadow == "v2" for d in decisions)
        assert {d.shadow for d in decisions} <= {"v2", None}
        assert abs(100 * copied / len(KEYS) - pct) <= 2, (pct, copied)
    grow = [{k for k in KEYS if route(Shadow("v1", "v2", percent=p), k).shadow} for p in (10, 40)]
    assert grow[0] <= grow[1]


def test_keyless_requests_use_the_draw_passed_in() -> None:
    canary = Weighted.canary("v1", "v2", 5)
    draws = iter([0.0, 0.9499, 0.95, 0.999999])
    got = [route(canary, None, lambda: next(draws)) for _ in range(4)]
    assert [d.version for d in got] == ["v1", "v1", "v2", "v2"]
    assert not any(d.by_key for d in got)
    rng = random.Random(7)
    share = sum(route(canary, None, rng.random).version == "v2" for _ in range(10_000)) / 100
    assert abs(share - 5) <= 2
    shadow = Shadow("v1", "v2", percent=25)
    assert route(shadow, None, lambda: 0.1).shadow == "v2"
    assert route(shadow, None, lambda: 0.3).shadow is None


def test_a_keyless_request_in_an_ab_test_goes_to_a_and_is_marked() -> None:
    def no_draw() -> float:
        raise AssertionError("an A/B test must not draw for keyless requests")

    policy = StickyAB("v1", "v2", split=90)
    decision = route(policy, None, no_draw)
    assert (decision.version, decision.variant, decision.by_key) == ("v1", "a", False)
    assert route(policy, "some-user").by_key is True


def test_keyed_requests_never_draw() -> None:
    def no_draw() -> float:
        raise AssertionError("a keyed request must not draw")

    for policy in (Weighted.canary("v1", "v2", 50), Shadow("v1", "v2", 50), StickyAB("v1", "v2")):
        assert route(policy, "k", no_draw).by_key
