"""Rate limits of the inference routes: each request takes a token from its key's bucket on
the endpoint and from the endpoint's bucket, or is refused with 429 and ``Retry-After``.

The buckets live in this process (``defences.MemoryBuckets``) or, with a
``rate_limit_store``, in Redis shared by every server (``stores/rate_limits.py``). When
Redis fails, ``rate_limit_on_store_error`` decides: ``open`` (the default) lets requests
through, ``closed`` refuses them with 503. Either way the failure is counted
(``shipyard_rate_limit_store_errors_total``) and logged once per outage, and for a second
after a failure requests do not wait on Redis again.

With Redis, a server does not ask Redis for every request: it takes tokens a few at a time
(a lease: up to what the buckets' slowest rate refills in ``LEASE_S``, at most ``LEASE_MAX``,
so at most one token at 100 requests a second or less) and spends them here, and once Redis
refuses a set of buckets it refuses them here until the wait it gave is over (another server
can only make that wait longer). Both are safe: every request let through was charged in
Redis first; tokens a server leased and did not spend within ``LEASE_AGE_S`` are lost, which
errs towards refusing.

A request with a valid API key is limited by the key's name; one without, by its client
address (the metric's ``key`` label says ``anonymous``: addresses would be unbounded series).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from shipyard.defences import ALLOWED, MemoryBuckets, Rate, Verdict
from shipyard.protocol.http_errors import RateLimitedError
from shipyard.service.config import ServeConfig
from shipyard.service.defence_config import RateLimits
from shipyard.stores.rate_limits import RateLimitStoreError, RedisBuckets

log = logging.getLogger("shipyard.serve")

ANONYMOUS = "anonymous"
BACKOFF_S = 1.0  # after a store failure, the fail policy applies without asking for this long
LEASE_S = 0.01  # a lease holds what the slowest of its buckets refills in this long ...
LEASE_MAX = 64  # ... at most this many tokens
LEASE_AGE_S = 1.0  # unspent leased tokens are dropped after this long


class _Lease:
    """Tokens this server took from Redis for one set of buckets and has not spent yet, or
    (``refused_until``) a refusal Redis gave, still in force."""

    __slots__ = ("fetching", "limit", "refused_until", "taken", "tokens", "want")

    def __init__(self, rates: list[Rate]) -> None:
        self.fetching: asyncio.Future[None] | None = None  # a lease on its way from Redis
        self.tokens = 0
        self.taken = 0.0
        self.refused_until = 0.0
        self.limit = 0
        slowest = min(rates, key=lambda r: r.rate)
        self.want = max(1, min(LEASE_MAX, int(slowest.rate * LEASE_S),
                               min(r.burst for r in rates)))


Buckets = tuple[list[str], list[Rate], list[str]]
REMEMBERED = 4096  # (key, client) -> buckets remembered per endpoint, then forgotten at once


class _Plan:
    """One endpoint's limits, ready for the hot path."""

    __slots__ = ("endpoint", "known", "limits")

    def __init__(self, endpoint: str, limits: RateLimits) -> None:
        self.endpoint = endpoint
        self.limits = limits
        self.known: dict[tuple[str | None, str | None], Buckets] = {}

    def buckets(self, key: str | None, client: str | None) -> Buckets:
        """The request's bucket names, their rates, and which limit each is."""
        found = self.known.get((key, client))
        if found is None:
            if len(self.known) >= REMEMBERED:
                self.known.clear()
            found = self.known[(key, client)] = self._buckets(key, client)
        return found

    def _buckets(self, key: str | None, client: str | None) -> Buckets:
        names: list[str] = []
        rates: list[Rate] = []
        kinds: list[str] = []
        per_key = self.limits.key_rate(key)
        if per_key is not None:
            who = f"key:{key}" if key is not None else f"client:{client or '?'}"
            names.append(f"{self.endpoint}:{who}")
            rates.append(per_key)
            kinds.append("per_key")
        if self.limits.per_endpoint is not None:
            names.append(f"{self.endpoint}:endpoint")
            rates.append(self.limits.per_endpoint)
            kinds.append("per_endpoint")
        return names, rates, kinds


class RateLimiter:
    """``await limiter.check(endpoint, key, client)``: returns when the request may go, else
    raises ``RateLimitedError`` (429) or, with a failing store that fails closed,
    ``RateLimitStoreError`` (503)."""

    def __init__(self, config: ServeConfig, registry: CollectorRegistry,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._plans = {e.name: _Plan(e.name, limits) for e in config.endpoints
                       if (limits := (e.rate_limits or RateLimits()).over(config.rate_limits))}
        self._clock = clock
        self._memory = MemoryBuckets()
        self._store = None if config.rate_limit_store is None or not self._plans else \
            RedisBuckets(config.rate_limit_store, config.rate_limit_prefix)
        self._leases: dict[tuple[str, ...], _Lease] = {}
        self._swept = 0.0
        self._fail_open = config.rate_limit_on_store_error == "open"
        self._failing_until = 0.0
        self._failing = False
        self.limited = Counter(
            "shipyard_rate_limited", "Requests refused by a rate limit (429).",
            ["endpoint", "key", "limit"], registry=registry)
        self.store_errors = Counter(
            "shipyard_rate_limit_store_errors",
            "Rate-limit checks the shared store (Redis) failed to answer; the request went "
            "through (fail open) or got 503 (fail closed).", ["store", "outcome"],
            registry=registry)

    def __bool__(self) -> bool:
        return bool(self._plans)

    def limits(self, endpoint: str) -> bool:
        """Whether ``endpoint`` has rate limits (else ``check`` is not worth a call)."""
        return endpoint in self._plans

    async def check(self, endpoint: str, key: str | None, client: str | None) -> None:
        plan = self._plans.get(endpoint)
        if plan is None:
            return
        names, rates, kinds = plan.buckets(key, client)
        verdict = self._memory.take(names, self._clock(), rates) if self._store is None \
            else await self._shared(names, rates)
        if verdict.allowed:
            return
        kind = kinds[verdict.limit]
        rate = rates[verdict.limit]
        self.limited.labels(endpoint=endpoint, key=key or ANONYMOUS, limit=kind).inc()
        who = f"key {key!r}" if kind == "per_key" and key is not None else \
            "this client" if kind == "per_key" else "everyone"
        raise RateLimitedError(
            f"rate limit exceeded: the {kind} limit of endpoint {endpoint!r} for {who} is "
            f"{rate.rate:g} requests a second (burst {rate.burst}); retry after "
            f"{verdict.retry_after} s", limit=kind, rate=rate.rate, burst=rate.burst,
            retry_after=verdict.retry_after)

    async def _shared(self, names: list[str], rates: list[Rate]) -> Verdict:
        store = self._store
        assert store is not None
        now = self._clock()
        which = tuple(names)
        lease = self._leases.get(which)
        if lease is None:
            if now - self._swept > LEASE_AGE_S:
                self._sweep(now)
            lease = self._leases[which] = _Lease(rates)
        while True:
            if lease.refused_until > now:  # Redis said so; only a longer wait could follow
                return Verdict(False, lease.limit, lease.refused_until - now)
            if lease.tokens > 0 and now - lease.taken <= LEASE_AGE_S:
                lease.tokens -= 1
                return ALLOWED
            if lease.fetching is None or lease.want == 1:
                break
            await asyncio.shield(lease.fetching)  # the lease on its way may serve this one
            now = self._clock()
        if now < self._failing_until:
            return self._store_failed(None)
        fetching = asyncio.get_running_loop().create_future() if lease.want > 1 else None
        lease.fetching = fetching
        try:
            granted, verdict = await store.take(names, rates, lease.want)
        except RateLimitStoreError as exc:
            self._failing_until = self._clock() + BACKOFF_S
            return self._store_failed(exc)
        finally:
            if fetching is not None:
                lease.fetching = None
                fetching.set_result(None)
        if self._failing:
            self._failing = False
            log.warning("the rate-limit store %s answers again", store)
        if granted:
            lease.tokens += granted - 1
            lease.taken = self._clock()
        else:
            lease.refused_until = now + verdict.retry_after_s
            lease.limit = verdict.limit
        return verdict

    def _sweep(self, now: float) -> None:
        """Forget leases with nothing left to say."""
        self._swept = now
        self._leases = {k: v for k, v in self._leases.items()
                        if v.refused_until > now or (v.tokens and now - v.taken <= LEASE_AGE_S)}

    def _store_failed(self, exc: RateLimitStoreError | None) -> Verdict:
        outcome = "allowed" if self._fail_open else "refused"
        self.store_errors.labels(store="redis", outcome=outcome).inc()
        if exc is not None and not self._failing:
            self._failing = True
            log.error("%s; rate limits %s until it answers again (rate_limit_on_store_error: "
                      "%s)", exc, "are not enforced" if self._fail_open else
                      "refuse every request with 503", "open" if self._fail_open else "closed")
        if self._fail_open:
            return ALLOWED
        raise exc or RateLimitStoreError("the rate-limit store is failing")

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
