"""``ApiKeyStore``: API keys in the registry's database, stored as the SHA-256 of the secret.

A secret is 32 random bytes (``shp_`` + URL-safe base64), shown once when the key is created
and never stored: a leaked database gives no key. A key has one scope (``predict``,
``feedback``, ``read`` or ``admin``; admin allows everything), may be limited to one
endpoint and may expire. Created, first used and revoked: each is one audit record. Servers
read ``snapshot()`` every poll interval (``service/keyring.py``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import ConflictError, NotFoundError, RegistryError
from shipyard.registry.queries import utc
from shipyard.registry.schema import api_keys

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

SCOPES = ("predict", "feedback", "read", "admin")
PREFIX = "shp_"


def hash_secret(secret: bytes | str) -> str:
    """The stored form of a key: hex SHA-256 (a 256-bit random secret needs no slow hash)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")
                          if isinstance(secret, str) else secret).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: everything but the secret (and its hash)."""

    name: str
    prefix: str  # the secret's first characters, to tell keys apart
    scope: str
    endpoint: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    first_used_at: datetime | None

    def state(self, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "prefix": self.prefix, "scope": self.scope,
                "endpoint": self.endpoint, "state": self.state(),
                **{k: None if v is None else v.isoformat() for k, v in (
                    ("created_at", self.created_at), ("expires_at", self.expires_at),
                    ("revoked_at", self.revoked_at), ("first_used_at", self.first_used_at))},
                "created_by": self.created_by}


@dataclass(frozen=True)
class StoredKey:
    """What a server needs to check a key: its hash, scope, endpoint and expiry."""

    name: str
    key_hash: str
    scope: str
    endpoint: str | None
    expires_at: float | None  # seconds since the epoch
    used: bool  # its first use is recorded already
    revoked: bool = False  # refused; still counts as a key (the routes stay closed)


def check_key_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 128 or not name.isprintable() \
            or name != name.strip() or ":" in name:
        raise RegistryError(f"invalid key name {name!r}: 1-128 printable characters, no ':' "
                            "and no surrounding spaces")
    return name


def check_scope(scope: object) -> str:
    if scope not in SCOPES:
        raise RegistryError(f"invalid scope {scope!r}; one of {', '.join(SCOPES)}")
    return str(scope)


class ApiKeyStore:
    """The registry's API keys (``Registry.api_keys``)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def create(self, name: str, scope: str, *, endpoint: str | None = None,
               expires_at: datetime | None = None) -> tuple[ApiKey, str]:
        """A new key and its secret (shown once: only its hash is stored)."""
        check_key_name(name)
        check_scope(scope)
        if endpoint is not None and (not endpoint or len(endpoint) > 128):
            raise RegistryError(f"invalid endpoint {endpoint!r}: 1-128 characters")
        now = datetime.now(UTC)
        if expires_at is not None and expires_at <= now:
            raise RegistryError(f"the key would expire at {expires_at.isoformat()}, which "
                                "is past")
        secret = PREFIX + secrets.token_urlsafe(32)
        row = {"name": name, "key_hash": hash_secret(secret), "prefix": secret[:10],
               "scope": scope, "endpoint": endpoint, "created_at": now,
               "created_by": self.registry.actor, "expires_at": expires_at}
        with self.registry.engine.begin() as conn:
            if conn.execute(sa.select(api_keys.c.id).where(api_keys.c.name == name)).first():
                raise ConflictError(f"a key named {name!r} exists (revoked keys keep their "
                                    "name): choose another name")
            conn.execute(sa.insert(api_keys).values(**row))
            self.registry._audit(conn, "key.create", None, None, None, None, {
                "name": name, "scope": scope, "endpoint": endpoint, "prefix": row["prefix"],
                "expires_at": None if expires_at is None else expires_at.isoformat()})
        return self.get(name), secret

    def get(self, name: str) -> ApiKey:
        with self.registry.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no API key named {name!r}")
        return _to_key(row)

    def all(self) -> list[ApiKey]:
        with self.registry.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).all()
        return [_to_key(r) for r in rows]

    def revoke(self, name: str) -> ApiKey:
        """Revoke a key for good (servers drop it within one poll interval)."""
        with self.registry.engine.begin() as conn:
            done = conn.execute(sa.update(api_keys).where(
                api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))).rowcount
            if not done:
                exists = conn.execute(sa.select(api_keys.c.id)
                                      .where(api_keys.c.name == name)).first()
                raise (ConflictError(f"the key {name!r} is revoked already") if exists
                       else NotFoundError(f"no API key named {name!r}"))
            self.registry._audit(conn, "key.revoke", None, None, None, {"name": name}, None)
        return self.get(name)

    def snapshot(self) -> list[StoredKey]:
        """Every key, revoked ones marked: a server refuses the revoked and the expired ones,
        saying which, and a registry whose keys are all revoked still closes its routes."""
        with self.registry.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).all()
        out = []
        for row in rows:
            expires = None if row.expires_at is None else utc(row.expires_at)
            out.append(StoredKey(row.name, row.key_hash, row.scope, row.endpoint,
                                 None if expires is None else expires.timestamp(),
                                 row.first_used_at is not None, row.revoked_at is not None))
        return out

    def mark_used(self, name: str, where: str) -> bool:
        """Record the key's first use (once, whichever server sees it first); ``where``
        says which server and route. Whether this call recorded it."""
        with self.registry.engine.begin() as conn:
            done = conn.execute(sa.update(api_keys).where(
                api_keys.c.name == name, api_keys.c.first_used_at.is_(None))
                .values(first_used_at=datetime.now(UTC))).rowcount
            if done:
                self.registry._audit(conn, "key.first_use", None, None, None, None,
                                     {"name": name, "where": where})
        return bool(done)


def _to_key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(row.name, row.prefix, row.scope, row.endpoint, utc(row.created_at),
                  row.created_by, None if row.expires_at is None else utc(row.expires_at),
                  None if row.revoked_at is None else utc(row.revoked_at),
                  None if row.first_used_at is None else utc(row.first_used_at))
