"""``KeyRing``: the API keys one server accepts, and what each allows.

Keys come from two places: serve.yaml (``api_keys``: every scope but admin;
``admin_api_keys``: admin) and the registry (``shipyard keys create``: one scope, maybe one
endpoint, maybe an expiry), read again every poll interval (``KeyRefresh``), so a new or
revoked key takes effect within one. A request presents a key as ``Authorization: Bearer
KEY`` or ``X-API-Key: KEY``; the ring keeps only SHA-256 hashes, looks the presented key's
hash up and compares it in constant time.

Scopes: ``predict`` (inference, and the model metadata clients read first), ``feedback``,
``read`` (metrics, docs, listings, the dashboard) and ``admin`` (everything). A key limited
to an endpoint opens only that endpoint's routes. With no key anywhere, every route is open.

A browser signs in once and gets a token instead of the key (the dashboard's cookie):
``shptok.EXPIRES.HMAC.NAME``, an HMAC under the key's hash, valid for ``TOKEN_S`` and only
while the key is. A token is accepted wherever its key is.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from shipyard.protocol.http_errors import ForbiddenError, UnauthorizedError
from shipyard.registry.api_keys import SCOPES, StoredKey, hash_secret

log = logging.getLogger("shipyard.serve")

Headers = Mapping[bytes, bytes]
TOKEN = b"shptok."
_CONFIG_SCOPES = frozenset(("predict", "feedback", "read"))


@dataclass(frozen=True)
class Grant:
    """One key: its name, what it allows, until when."""

    name: str
    key_hash: str
    scopes: frozenset[str]
    endpoint: str | None = None
    expires_at: float | None = None  # seconds since the epoch
    stored: bool = False  # from the registry: its first use is recorded there
    used: bool = False  # ... already

    def allows(self, scopes: Iterable[str]) -> bool:
        return "admin" in self.scopes or not self.scopes.isdisjoint(scopes)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def presented_key(headers: Headers) -> bytes:
    auth = headers.get(b"authorization", b"")
    return auth[7:].strip() if auth[:7].lower() == b"bearer " else \
        headers.get(b"x-api-key", b"").strip()


class KeyRing:
    """The keys of one server: serve.yaml's, and the registry's once ``load``ed."""

    TOKEN_S = 12 * 3600

    def __init__(self, api_keys: Mapping[str, str] | None = None,
                 admin_api_keys: Mapping[str, str] | None = None) -> None:
        static = [Grant(name, hash_secret(secret), _CONFIG_SCOPES)
                  for name, secret in (api_keys or {}).items()]
        static += [Grant(f"admin:{name}" if name in (api_keys or {}) else name,
                         hash_secret(secret), frozenset(("admin",)))
                   for name, secret in (admin_api_keys or {}).items()]
        self._static = {g.key_hash: g for g in static}
        self._table: dict[str, Grant] = dict(self._static)
        self._names: dict[str, Grant] = {g.name: g for g in static}
        self._noted: set[str] = set()
        # called (on the event loop) the first time this server sees a registry key used
        self.on_first_use: Callable[[str], None] | None = None

    def load(self, stored: Iterable[StoredKey]) -> None:
        """Replace the registry's keys (serve.yaml's stay)."""
        table = dict(self._static)
        for key in stored:
            if key.scope not in SCOPES:
                log.warning("API key %r has an unknown scope %r: ignored", key.name, key.scope)
                continue
            table[key.key_hash] = Grant(key.name, key.key_hash, frozenset((key.scope,)),
                                        key.endpoint, key.expires_at, True, key.used)
        self._table = table
        self._names = {g.name: g for g in table.values()}

    def __bool__(self) -> bool:
        return bool(self._table)

    def identify(self, headers: Headers, now: float | None = None) -> Grant | None:
        """The key (or token) the request presents, if valid now."""
        presented = presented_key(headers)
        if not presented:
            return None
        now = time.time() if now is None else now
        if presented.startswith(TOKEN):
            return self._redeem(presented, now)
        digest = hash_secret(presented)
        grant = self._table.get(digest)
        if grant is None or not hmac.compare_digest(grant.key_hash, digest):
            return None
        return None if grant.expired(now) else grant

    def authorize(self, headers: Headers, scopes: str | tuple[str, ...],
                  endpoint: str | None = None) -> str | None:
        """The name of the key that allows this route (None: no keys, all open); 401
        without a valid key, 403 with a key whose scope or endpoint does not allow it."""
        if not self._table:
            return None
        grant = self.identify(headers)
        if grant is None:
            raise UnauthorizedError(self._why(headers))
        wanted = (scopes,) if isinstance(scopes, str) else scopes
        if not grant.allows(wanted):
            raise ForbiddenError(f"the API key {grant.name!r} has scope "
                                 f"{'/'.join(sorted(grant.scopes))}; this route needs "
                                 f"{' or '.join(wanted)}")
        if grant.endpoint is not None and endpoint != grant.endpoint:
            where = f"endpoint {endpoint!r}" if endpoint else "routes of no endpoint"
            raise ForbiddenError(f"the API key {grant.name!r} is for endpoint "
                                 f"{grant.endpoint!r} only, not {where}")
        if grant.stored and not grant.used and grant.name not in self._noted:
            self._noted.add(grant.name)
            if self.on_first_use is not None:
                self.on_first_use(grant.name)
        return grant.name

    def _why(self, headers: Headers) -> str:
        presented = presented_key(headers)
        if not presented:
            return "this route needs an API key (Authorization: Bearer KEY or X-API-Key: KEY)"
        grant = self._table.get(hash_secret(presented))
        if grant is not None:
            return f"the API key {grant.name!r} has expired"
        if presented.startswith(TOKEN):
            return "the sign-in token is invalid or has expired: sign in again"
        return "invalid or revoked API key"

    # -- sign-in tokens ----------------------------------------------------------------------

    def token(self, headers: Headers, now: float | None = None) -> str | None:
        """A token for the key the request presents (None: no valid key)."""
        grant = self.identify(headers, now)
        if grant is None:
            return None
        expires = int((time.time() if now is None else now) + self.TOKEN_S)
        if grant.expires_at is not None:
            expires = min(expires, int(grant.expires_at))
        return f"{TOKEN.decode()}{expires}.{_mac(grant, expires)}.{grant.name}"

    def _redeem(self, token: bytes, now: float) -> Grant | None:
        try:
            text = token[len(TOKEN):].decode("utf-8")
        except UnicodeDecodeError:
            return None
        expires, _, rest = text.partition(".")
        mac, _, name = rest.partition(".")
        if not expires.isdigit() or len(expires) > 12 or int(expires) < now:
            return None
        grant = self._names.get(name)
        if grant is None or grant.expired(now) or not hmac.compare_digest(
                _mac(grant, int(expires)).encode(), mac.encode("utf-8", "replace")):
            return None
        return grant


def _mac(grant: Grant, expires: int) -> str:
    return hmac.new(bytes.fromhex(grant.key_hash),
                    f"shipyard-ui\0{grant.name}\0{expires}".encode("utf-8", "surrogatepass"),
                    "sha256").hexdigest()


def server_name() -> str:
    """This server process, as a key's first use records where it was: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class KeyRefresh:
    """Reads the registry's keys into a ring now and every ``interval_s``; records a key's
    first use there. A registry that cannot be read at start stops the server (no key would
    be enforced); later, the keys read last stay in force, and the failure is logged."""

    def __init__(self, ring: KeyRing, read: Callable[[], list[StoredKey]],
                 mark_used: Callable[[str], object], interval_s: float) -> None:
        self.ring = ring
        self.read = read
        self.mark_used = mark_used
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[object]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.ring.load(await loop.run_in_executor(None, self.read))
        self.ring.on_first_use = self._first_use
        self._task = loop.create_task(self._loop())

    async def refresh(self) -> None:
        try:
            keys = await asyncio.get_running_loop().run_in_executor(None, self.read)
        except Exception as exc:
            log.warning("cannot read the API keys from the registry (the keys read last stay "
                        "in force): %s", exc)
            return
        self.ring.load(keys)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._pending:
            await asyncio.wait(self._pending, timeout=5.0)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.refresh()

    def _first_use(self, name: str) -> None:
        future = asyncio.get_running_loop().run_in_executor(None, self._mark, name)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def _mark(self, name: str) -> object:
        try:
            return self.mark_used(name)
        except Exception as exc:
            log.warning("cannot record the first use of API key %r: %s", name, exc)
            return None
