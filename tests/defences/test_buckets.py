"""The token-bucket arithmetic (GCRA): burst, refill, Retry-After, several buckets at once."""

from __future__ import annotations

import math

import pytest

from shipyard.defences import MemoryBuckets, Rate, RateError, take
from shipyard.defences.buckets import Verdict, step


def test_a_fresh_bucket_allows_its_burst_then_refuses() -> None:
    buckets = MemoryBuckets()
    rate = Rate(10, 5)
    allowed = [buckets.take(["k"], 100.0, [rate]).allowed for _ in range(8)]
    assert allowed == [True] * 5 + [False] * 3


def test_tokens_come_back_at_the_rate() -> None:
    buckets = MemoryBuckets()
    rate = Rate(10, 5)
    for _ in range(5):
        assert buckets.take(["k"], 0.0, [rate]).allowed
    refused = buckets.take(["k"], 0.0, [rate])
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.1)
    assert not buckets.take(["k"], 0.09, [rate]).allowed
    assert buckets.take(["k"], 0.1, [rate]).allowed  # one token back after 1/rate
    assert not buckets.take(["k"], 0.1, [rate]).allowed
    assert sum(buckets.take(["k"], 0.5, [rate]).allowed for _ in range(10)) == 4  # 0.4 s


def test_over_a_window_it_allows_burst_plus_rate_times_the_window() -> None:
    buckets = MemoryBuckets()
    rate = Rate(50, 20)
    allowed = 0
    for i in range(10_000):  # 1000 requests a second for 10 s
        allowed += buckets.take(["k"], i / 1000, [rate]).allowed
    assert allowed == pytest.approx(20 + 50 * 10, abs=1)


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert Verdict(False, 0, 0.001).retry_after == 1
    assert Verdict(False, 0, 1.0).retry_after == 1
    assert Verdict(False, 0, 1.2).retry_after == 2
    slow = Rate(0.5, 1)  # one request every 2 s
    buckets = MemoryBuckets()
    assert buckets.take(["k"], 0.0, [slow]).allowed
    refused = buckets.take(["k"], 0.0, [slow])
    assert refused.retry_after == 2
    assert not buckets.take(["k"], 1.99, [slow]).allowed
    assert buckets.take(["k"], 2.0, [slow]).allowed


def test_keys_have_their_own_buckets() -> None:
    buckets = MemoryBuckets()
    rate = Rate(1, 2)
    assert [buckets.take(["a"], 0.0, [rate]).allowed for _ in range(3)] == [True, True, False]
    assert buckets.take(["b"], 0.0, [rate]).allowed


def test_several_buckets_charge_all_or_none_and_name_the_one_that_refused() -> None:
    buckets = MemoryBuckets()
    per_key, per_endpoint = Rate(100, 3), Rate(100, 5)
    for _ in range(3):
        assert buckets.take(["a", "ep"], 0.0, [per_key, per_endpoint]).allowed
    refused = buckets.take(["a", "ep"], 0.0, [per_key, per_endpoint])
    assert (refused.allowed, refused.limit) == (False, 0)  # the key's bucket
    # the refused request cost the endpoint's bucket nothing: two tokens left there
    assert buckets.take(["b", "ep"], 0.0, [per_key, per_endpoint]).allowed
    assert buckets.take(["c", "ep"], 0.0, [per_key, per_endpoint]).allowed
    refused = buckets.take(["d", "ep"], 0.0, [per_key, per_endpoint])
    assert (refused.allowed, refused.limit) == (False, 1)  # the endpoint's bucket


def test_take_is_pure() -> None:
    verdict, tats = take([None, 5.0], 1.0, [Rate(1, 1), Rate(1, 10)])
    assert verdict.allowed and tats == [2.0, 6.0]
    verdict, tats = take([3.0, None], 1.0, [Rate(1, 1), Rate(1, 10)])
    assert not verdict.allowed and verdict.limit == 0 and verdict.retry_after_s == 2.0
    assert step(None, 0.0, Rate(2, 1)) == (True, 0.5, 0.0)


def test_full_buckets_are_forgotten() -> None:
    buckets = MemoryBuckets(sweep_s=1.0)
    rate = Rate(10, 10)
    for i in range(100):
        buckets.take([f"k{i}"], 0.0, [rate])
    assert len(buckets) == 100
    buckets.take(["late"], 5.0, [rate])  # every earlier bucket refilled by now
    assert len(buckets) == 1


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (math.inf, 1), (True, 1),
                                         (1, 0), (1, 1.5), (1, True), ("1", 1)])
def test_invalid_rates_are_refused(rate: object, burst: object) -> None:
    with pytest.raises(RateError):
        Rate(rate, burst)  # type: ignore[arg-type]
