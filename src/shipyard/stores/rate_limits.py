"""Rate-limit buckets shared by every server process, in Redis.

One request is one round trip: a Lua script (``EVALSHA``, loaded once) runs the GCRA
arithmetic of ``defences/buckets.py`` over the request's buckets (its key's and its
endpoint's) on Redis's own clock (``TIME``), so servers on several machines agree whatever
their clocks say. It charges every bucket or none, like ``buckets.take``, and each key
expires when its bucket is full again, so Redis holds only the keys active within a
bucket's span. ``redis`` (the ``[redis]`` extra) is imported only here, when a server is
configured with a Redis store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from shipyard.defences.buckets import ALLOWED, Rate, Verdict
from shipyard.errors import ServingError
from shipyard.settings import without_password


class RateLimitStoreError(ServingError):
    """The shared rate-limit store cannot be reached or answered wrongly."""


# KEYS: the buckets; ARGV: for each bucket its interval and span in microseconds.
# Returns {allowed (1/0), refused bucket index (1-based, 0 if allowed), wait in us}.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tats = {}
local refused, longest = 0, 0
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local span = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local moved = tat + interval
  local wait = moved - now - span
  if wait > 0 and wait > longest then
    refused, longest = i, wait
  end
  tats[i] = moved
end
if refused > 0 then
  return {0, refused, longest}
end
for i = 1, n do
  local ttl = tats[i] - now
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.max(1, math.ceil(ttl / 1000)))
end
return {1, 0, 0}
"""


def _micros(seconds: float) -> int:
    return max(1, round(seconds * 1_000_000))


class RedisBuckets:
    """Buckets in the Redis at ``url`` (``redis://HOST:PORT/DB``), key names under
    ``prefix``. ``take`` raises ``RateLimitStoreError`` when Redis fails or cannot be
    reached within ``timeout_s``; the caller decides whether that lets requests through."""

    def __init__(self, url: str, prefix: str = "shipyard:rl:", timeout_s: float = 0.25
                 ) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:
            raise RateLimitStoreError("a Redis rate-limit store needs the redis package: "
                                      "pip install 'shipyard-ml[redis]'") from exc
        self.url = url
        self.prefix = prefix
        self._errors: tuple[type[BaseException], ...] = (
            aioredis.RedisError, OSError, TimeoutError)
        self._client: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            health_check_interval=0)
        self._script: Any = self._client.register_script(GCRA)

    def __repr__(self) -> str:
        return f"RedisBuckets({without_password(self.url)!r})"

    async def take(self, keys: Sequence[str], rates: Sequence[Rate]) -> Verdict:
        args: list[int] = []
        for rate in rates:
            args += (_micros(rate.interval), _micros(rate.span))
        try:
            allowed, refused, wait = await self._script(
                keys=[self.prefix + k for k in keys], args=args)
        except self._errors as exc:
            raise RateLimitStoreError(f"the rate-limit store {without_password(self.url)} "
                                      f"failed: {type(exc).__name__}: {exc}") from exc
        if allowed:
            return ALLOWED
        return Verdict(False, int(refused) - 1, math.ceil(int(wait)) / 1_000_000)

    async def close(self) -> None:
        await self._client.aclose()
