"""Rate-limit buckets shared by every server process, in Redis.

A Lua script (``EVALSHA``, loaded once) runs the GCRA arithmetic of ``defences/buckets.py``
on Redis's own clock (``TIME``), so servers on several machines agree whatever their clocks
say. Each check charges every bucket it names (a request's key's and its endpoint's) or
none, like ``buckets.take``, and each key expires when its bucket is full again, so Redis
holds only the keys active within a bucket's span.

The checks of concurrent requests go to Redis together: while one script call is on its
way, the checks that arrive wait for the next, which takes them all (one round trip for a
batch, the script running them one after another, in order: the same answers as one call
each). At light load a batch is one check; under load it is what arrived in a round trip,
so a server pays for Redis per round trip rather than per request. ``redis`` (the
``[redis]`` extra) is imported only here, when a server is configured with a Redis store.
One Redis (or a primary): the script touches several keys, which Redis Cluster allows only
within one hash slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from shipyard.defences.buckets import ALLOWED, Rate, Verdict
from shipyard.errors import ServingError
from shipyard.settings import without_password


class RateLimitStoreError(ServingError):
    """The shared rate-limit store cannot be reached or answered wrongly."""


# ARGV, per check: its number of buckets n, the most tokens it wants, then each bucket's
# interval and span in microseconds; KEYS: every check's buckets, in order. A check gets as
# many tokens as every bucket can give, up to what it wants (each bucket charged that many),
# or none. Returns, per check: the tokens granted (0: refused), the refusing bucket (1-based;
# 0 if granted), the wait for one token in microseconds.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local k, a = 0, 1
while a <= #ARGV do
  local n, want = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local tats, intervals = {}, {}
  local granted, refused, longest = want, 0, 0
  for i = 1, n do
    local interval, span = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    a = a + 2
    local tat = tonumber(redis.call('GET', KEYS[k + i]) or '0')
    if tat < now then tat = now end
    local fits = math.floor((now + span - tat) / interval)
    if fits < 1 then
      local wait = tat + interval - now - span
      if wait > longest then refused, longest = i, wait end
      granted = 0
    elseif fits < granted then
      granted = fits
    end
    tats[i], intervals[i] = tat, interval
  end
  if granted > 0 then
    for i = 1, n do
      local moved = tats[i] + granted * intervals[i]
      redis.call('SET', KEYS[k + i], string.format('%d', moved), 'PX',
                 math.max(1, math.ceil((moved - now) / 1000)))
    end
  end
  out[#out + 1] = granted
  out[#out + 1] = refused
  out[#out + 1] = longest
  k = k + n
end
return out
"""

Granted = tuple[int, Verdict]  # tokens granted (0: refused), and the verdict
_Check = tuple[list[str], list[int], "asyncio.Future[Granted]"]


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
        self._client: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            health_check_interval=0)
        self._script: Any = self._client.register_script(GCRA)
        self._pending: list[_Check] = []
        self._sending: asyncio.Task[None] | None = None
        self._rates: dict[Rate, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return f"RedisBuckets({without_password(self.url)!r})"

    async def take(self, keys: Sequence[str], rates: Sequence[Rate], want: int = 1
                   ) -> Granted:
        """Up to ``want`` tokens from each of the buckets ``keys`` (one rate each): as many
        as all of them can give, or none (then the verdict says which refused and the wait
        for one token)."""
        args = [len(keys), want]
        for rate in rates:
            args += self._rates.get(rate) or self._micros(rate)
        future: asyncio.Future[Granted] = asyncio.get_running_loop().create_future()
        self._pending.append(([self.prefix + k for k in keys], args, future))
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send())
        return await future

    def _micros(self, rate: Rate) -> tuple[int, int]:
        found = self._rates[rate] = (_micros(rate.interval), _micros(rate.span))
        return found

    async def _send(self) -> None:
        """Send what is pending, one script call at a time, until nothing is."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                keys: list[str] = []
                args: list[int] = []
                for check_keys, check_args, _ in batch:
                    keys += check_keys
                    args += check_args
                try:
                    answer = await self._script(keys=keys, args=args)
                    verdicts = [(int(granted), ALLOWED) if granted else
                                (0, Verdict(False, int(refused) - 1, int(wait) / 1_000_000))
                                for granted, refused, wait in zip(
                                    answer[0::3], answer[1::3], answer[2::3], strict=True)]
                    if len(verdicts) != len(batch):
                        raise ValueError(f"{len(verdicts)} answers to {len(batch)} checks")
                except Exception as exc:  # every waiting request hears of it
                    failed = RateLimitStoreError(
                        f"the rate-limit store {without_password(self.url)} failed: "
                        f"{type(exc).__name__}: {exc}")
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(failed)
                    continue
                for (*_, future), verdict in zip(batch, verdicts, strict=True):
                    if not future.done():
                        future.set_result(verdict)
        finally:
            self._sending = None

    async def close(self) -> None:
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)
        await self._client.aclose()
