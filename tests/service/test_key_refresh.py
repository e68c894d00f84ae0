"""``KeyRefresh`` when the registry goes away: a registry that cannot be read at start stops
the server (no key would be enforced); once started, a registry that stops answering (a real
refused connection here) leaves the keys read last in force and says so in the log, and the
next successful read applies what changed meanwhile (a revoked key stops working). Revoking
the registry's last key keeps every guarded route closed rather than opening them all."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import RegistryError
from shipyard.protocol.http_errors import UnauthorizedError
from shipyard.registry import Registry
from shipyard.registry.api_keys import StoredKey
from shipyard.service.keyring import KeyRefresh, KeyRing

GONE = "postgresql+psycopg://shipyard@127.0.0.1:1/nowhere"  # nothing listens on port 1


def bearer(secret: str) -> dict[bytes, bytes]:
    return {b"authorization": b"Bearer " + secret.encode()}


def test_keys_read_last_stay_in_force_while_the_registry_is_unreachable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", artifacts=tmp_path / "blobs")
    _, secret = reg.api_keys.create("client", "predict")
    state: dict[str, Any] = {"url": reg.url}

    def read() -> list[StoredKey]:
        with Registry(state["url"], artifacts=tmp_path / "blobs") as current:
            return current.api_keys.snapshot()

    ring = KeyRing()

    async def scenario() -> None:
        refresh = KeyRefresh(ring, read, lambda name: None, interval_s=3600)
        await refresh.start()
        try:
            assert ring.authorize(bearer(secret), "predict") == "client"
            state["url"] = GONE
            with caplog.at_level(logging.WARNING, logger="shipyard.serve"):
                await refresh.refresh()
            assert "the keys read last stay in force" in caplog.text
            assert ring.authorize(bearer(secret), "predict") == "client"
            reg.api_keys.revoke("client")  # while the server cannot see the registry
            assert ring.authorize(bearer(secret), "predict") == "client"
            state["url"] = reg.url
            await refresh.refresh()
            with pytest.raises(UnauthorizedError, match="'client' has been revoked"):
                ring.authorize(bearer(secret), "predict")
            # its last key revoked, the server stays closed: no key is 401, not open
            with pytest.raises(UnauthorizedError, match="needs an API key"):
                ring.authorize({}, "predict")
        finally:
            await refresh.stop()

    asyncio.run(scenario())
    state["url"] = GONE

    async def start_without_registry() -> None:
        await KeyRefresh(KeyRing(), read, lambda name: None, interval_s=3600).start()

    with pytest.raises(RegistryError):
        asyncio.run(start_without_registry())
    reg.close()
