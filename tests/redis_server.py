"""The real Redis on 127.0.0.1:6379 for the tests that need one: under CI=true a missing
Redis fails the test; elsewhere the test is skipped with the reason."""

from __future__ import annotations

import os
import uuid

import pytest

REDIS_URL = os.environ.get("SHIPYARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> str:
    """The test Redis's URL, once it answers PING."""
    try:
        import redis
    except ImportError as exc:
        _missing(f"the redis package is not installed ({exc}): pip install "
                 "'shipyard-ml[redis]'")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        _missing(f"no Redis at {REDIS_URL}: {exc}")
    return REDIS_URL


def fresh_prefix() -> str:
    """A key prefix no other test (or run) uses."""
    return f"shipyard-test:{uuid.uuid4().hex}:"


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)
