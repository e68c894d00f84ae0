"""Rate limits in the real Redis (127.0.0.1:6379): the Lua script's buckets, and what the
server does when Redis is down (fail open by default, fail closed when configured; counted
on /metrics and logged once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from redis_server import fresh_prefix, redis_or_skip
from server.conftest import Packages
from server.helpers import endpoint, free_port, metric, metric_samples
from shipyard.defences import Rate
from shipyard.protocol.http_errors import RateLimitedError
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.rate_limiter import RateLimiter
from shipyard.stores.rate_limits import RateLimitStoreError, RedisBuckets


def test_redis_buckets_allow_the_burst_then_refuse_and_charge_all_or_none() -> None:
    url = redis_or_skip()

    async def scenario() -> None:
        buckets = RedisBuckets(url, fresh_prefix())
        try:
            per_key, per_endpoint = Rate(0.5, 3), Rate(0.5, 4)
            got = [(await buckets.take(["a", "ep"], [per_key, per_endpoint]))[0]
                   for _ in range(4)]
            assert got == [1, 1, 1, 0]
            granted, refused = await buckets.take(["a", "ep"], [per_key, per_endpoint])
            assert granted == 0 and refused.limit == 0
            assert 1.5 < refused.retry_after_s <= 2.0 and refused.retry_after == 2
            # the refused requests cost the endpoint's bucket nothing: one token left, which
            # is all a check wanting five gets
            assert (await buckets.take(["b", "ep"], [per_key, per_endpoint], 5))[0] == 1
            granted, refused = await buckets.take(["c", "ep"], [per_key, per_endpoint])
            assert granted == 0 and not refused.allowed and refused.limit == 1
            assert (await buckets.take(["d"], [Rate(0.5, 10)], 4))[0] == 4  # a lease
            assert (await buckets.take(["d"], [Rate(0.5, 10)], 8))[0] == 6
            # every key expires once its bucket is full again
            raw = buckets._client
            ttl = await raw.pttl(buckets.prefix + "ep")
            assert 0 < ttl <= 8000  # 4 tokens at 0.5/s
        finally:
            await buckets.close()

    asyncio.run(scenario())


def _config(**options: Any) -> ServeConfig:
    return ServeConfig((EndpointConfig("iris", "/x/iris"),),
                       rate_limits={"per_key": {"rate": 0.5, "burst": 1}}, **options)


def test_a_redis_that_is_down_fails_open_by_default_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    registry = CollectorRegistry()
    limiter = RateLimiter(_config(rate_limit_store=dead), registry)

    async def scenario() -> None:
        for _ in range(5):  # all allowed, over the limit or not
            await limiter.check("iris", "alice", None)
        await limiter.close()

    with caplog.at_level(logging.ERROR, logger="shipyard.serve"):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if "rate-limit store" in r.getMessage()]
    assert len(failures) == 1
    assert "not enforced" in failures[0].getMessage()
    samples = metric_samples(generate_latest(registry).decode())
    assert metric(samples, "shipyard_rate_limit_store_errors_total", store="redis",
                  outcome="allowed") == 5


def test_a_redis_that_is_down_fails_closed_when_configured() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    registry = CollectorRegistry()
    limiter = RateLimiter(_config(rate_limit_store=dead, rate_limit_on_store_error="closed"),
                          registry)

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(RateLimitStoreError):
                await limiter.check("iris", "alice", None)
        await limiter.close()

    asyncio.run(scenario())
    samples = metric_samples(generate_latest(registry).decode())
    assert metric(samples, "shipyard_rate_limit_store_errors_total", store="redis",
                  outcome="refused") == 3


def test_the_server_limits_through_redis(serve: Callable[..., Any],
                                         packages: Packages) -> None:
    url = redis_or_skip()
    rows = {"instances": packages.iris_x.head(1).to_dict("records")}
    with serve(endpoint("iris", packages.iris), rate_limit_store=url,
               rate_limit_prefix=fresh_prefix(),
               rate_limits={"per_endpoint": {"rate": 0.5, "burst": 2}}) as s:
        statuses = [s.client.post("/v1/endpoints/iris/predict", json=rows).status_code
                    for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = s.client.post("/v1/endpoints/iris/predict", json=rows)
        assert refused.json()["limit"] == "per_endpoint"
        assert refused.headers["retry-after"] in ("1", "2")


def test_a_failing_store_answers_503_when_closed(serve: Callable[..., Any],
                                                 packages: Packages) -> None:
    rows = {"instances": packages.iris_x.head(1).to_dict("records")}
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with serve(endpoint("iris", packages.iris), rate_limit_store=dead,
               rate_limit_on_store_error="closed",
               rate_limits={"per_endpoint": {"rate": 100}}) as s:
        answer = s.client.post("/v1/endpoints/iris/predict", json=rows)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert "rate-limit store" in answer.json()["error"]


def test_rate_limited_error_is_a_429() -> None:
    from shipyard.protocol.http_errors import error_parts

    status, _, headers = error_parts(RateLimitedError("x", limit="per_key", rate=1.0,
                                                      burst=1, retry_after=3))
    assert status == 429 and headers == [(b"retry-after", b"3")]


def test_a_server_leases_tokens_and_remembers_refusals_so_redis_is_asked_less() -> None:
    url = redis_or_skip()
    config = ServeConfig((EndpointConfig("iris", "/x/iris"),), rate_limit_store=url,
                         rate_limit_prefix=fresh_prefix(),
                         rate_limits={"per_key": {"rate": 1000, "burst": 100},
                                      "keys": {"slow": {"rate": 0.5, "burst": 1}}})
    limiter = RateLimiter(config, CollectorRegistry())
    store = limiter._store
    assert store is not None
    calls: list[int] = []
    take = store.take

    async def counted(keys: Any, rates: Any, want: int = 1) -> Any:
        calls.append(want)
        return await take(keys, rates, want)

    store.take = counted  # type: ignore[method-assign]

    async def scenario() -> None:
        for _ in range(25):  # 1000/s refills 10 tokens in 10 ms: leases of 10
            await limiter.check("iris", "fast", None)
        assert calls == [10, 10, 10]
        calls.clear()
        # concurrent requests wait for the lease on its way rather than each asking Redis
        await asyncio.gather(*(limiter.check("iris", "many", None) for _ in range(64)))
        assert calls == [10] * 7
        calls.clear()
        await limiter.check("iris", "slow", None)  # 0.5/s: one token at a time
        for _ in range(5):
            with pytest.raises(RateLimitedError) as refused:
                await limiter.check("iris", "slow", None)
            assert refused.value.retry_after == 2
        assert calls == [1, 1]  # the first refusal came from Redis, the rest from memory
        await limiter.close()

    asyncio.run(scenario())


class _Proxy:
    """A TCP relay to the real Redis that can hang: while ``hung``, it accepts connections
    and reads what is sent but relays nothing either way (a Redis that stopped answering)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.hung = False
        self.links: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                if not self.hung:
                    dst.write(data)
                    await dst.drain()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer),
                             return_exceptions=True)

    def recover(self) -> None:
        """Answer again; the connections that hung are dropped (the client reconnects)."""
        self.hung = False
        for link in self.links:
            link.close()
        self.links.clear()

    async def close(self) -> None:
        self.recover()
        self.server.close()
        await self.server.wait_closed()


def test_a_redis_that_hangs_mid_run_times_out_fails_open_and_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    """Redis stops answering while the server runs (connections open, no reply): every check
    returns after the store's timeout instead of hanging the request, is let through and
    counted; once Redis answers again the limits hold again."""
    from urllib.parse import urlparse

    real = urlparse(redis_or_skip())
    registry = CollectorRegistry()

    async def scenario() -> None:
        proxy = _Proxy((real.hostname or "127.0.0.1", real.port or 6379))
        port = await proxy.start()
        limiter = RateLimiter(_config(rate_limit_store=f"redis://127.0.0.1:{port}/0",
                                      rate_limit_prefix=fresh_prefix()), registry)
        try:
            await limiter.check("iris", "alice", None)
            with pytest.raises(RateLimitedError):
                await limiter.check("iris", "alice", None)  # enforced through the relay
            proxy.hung = True
            loop = asyncio.get_running_loop()
            for _ in range(3):  # over bob's limit, but the store cannot say so
                started = loop.time()
                await limiter.check("iris", "bob", None)
                assert loop.time() - started < 2.0, "a hung Redis held the request"
            proxy.recover()
            refused = False
            for _ in range(100):  # after the limiter's back-off (1 s) it asks again, the
                # client reconnects and carol's limit holds
                try:
                    await limiter.check("iris", "carol", None)
                except RateLimitedError:
                    refused = True
                    break
                await asyncio.sleep(0.05)
            assert refused, "the limit did not hold again once Redis answered"
        finally:
            await limiter.close()
            await proxy.close()

    with caplog.at_level(logging.WARNING, logger="shipyard.serve"):
        asyncio.run(scenario())
    samples = metric_samples(generate_latest(registry).decode())
    assert metric(samples, "shipyard_rate_limit_store_errors_total", store="redis",
                  outcome="allowed") >= 3
    said = [r.getMessage() for r in caplog.records]
    assert any("Timeout" in m and "not enforced" in m for m in said), said
    assert any("answers again" in m for m in said), said
