"""`route(policy, key) -> Decision`: the one function the request path calls.

A key goes to bucket ``bucket(salt, key)``: the first 8 bytes of BLAKE2b over the salt's
UTF-8 bytes, a NUL byte and the key's UTF-8 bytes, read big-endian, modulo `BUCKETS`. The
same in every process, on every machine and Python version (no built-in ``hash()``, which is
salted per process), so replicas route a key alike and a user keeps their variant across
restarts. The policy's plan then maps the bucket to a decision: buckets fill the policy's
versions in order, so raising a canary's share from 5 % to 20 % only adds keys to it.

Requests without a key: a weighted split and a shadow's copy use a random draw
(``rng()``, uniform in [0, 1), ``random.random`` unless one is passed in); a sticky A/B test
sends them to variant ``a`` (see `StickyAB`).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable
from hashlib import blake2b

from shipyard.routing.policies import BUCKETS, Decision, Policy


def bucket(salt: str, key: str) -> int:
    """The bucket in ``range(BUCKETS)`` that ``key`` falls into under ``salt``."""
    return _bucket(salt.encode("utf-8", "surrogatepass") + b"\0", key)


def _bucket(prefix: bytes, key: str) -> int:
    digest = blake2b(prefix + key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def route(policy: Policy, key: str | None,
          rng: Callable[[], float] = random.random) -> Decision:
    """Where a request with routing ``key`` (None: it has none) goes under ``policy``.
    ``rng`` is called only for a keyless request that a random draw decides."""
    plan = policy.plan
    if not plan.cuts:
        return plan.keyless[0]
    if key is not None:
        return plan.keyed[bisect_right(plan.cuts, _bucket(plan.prefix, key))]
    if plan.fallback is not None:
        return plan.fallback
    return plan.keyless[bisect_right(plan.cuts, min(int(rng() * BUCKETS), BUCKETS - 1))]
