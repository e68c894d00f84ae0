"""``Leases``: named, expiring locks in the registry's database, with a fencing token.

A lease (e.g. ``rollout:fraud``) has at most one holder at a time, on SQLite and PostgreSQL:
taking it is one conditional UPDATE (free, expired, or already ours), else one INSERT that
does nothing when the name exists, in one transaction, so of two processes racing for it
exactly one wins. The ``token`` grows by one every time the holder changes (it is never
reset: a released lease keeps its row, expired), so a holder can tell whether anyone held the
lease since it last did. Times are seconds since the epoch, passed in by the caller
(``now``): the holders' clocks must roughly agree, within a fraction of the TTL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from shipyard.errors import RegistryError
from shipyard.registry.queries import utc
from shipyard.registry.schema import leases

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

_RELEASED = datetime.fromtimestamp(0, UTC)  # what a released lease expires at: long ago


@dataclass(frozen=True)
class Lease:
    """A lease held by ``holder`` until ``expires_at`` (seconds since the epoch)."""

    name: str
    holder: str
    token: int
    expires_at: float


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit \
            or not value.isprintable():
        raise RegistryError(f"invalid lease {what} {value!r}: 1-{limit} printable characters")
    return value


def _seconds(value: object, what: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or (positive and value <= 0):
        bound = "a finite number > 0" if positive else "a finite number"
        raise RegistryError(f"lease {what} must be {bound}, not {value!r}")
    return float(value)


def _stamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Leases:
    """Leases in a registry's database (one row per name)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def acquire(self, name: str, holder: str, ttl_s: float, *, now: float) -> Lease | None:
        """Take (or keep) the lease ``name`` for ``ttl_s`` seconds from ``now`` if it is
        free, expired or already ``holder``'s; None while someone else holds it."""
        _text(name, "name", 128)
        _text(holder, "holder", 256)
        start = _seconds(now, "time", positive=False)
        expires = start + _seconds(ttl_s, "ttl_s", positive=True)
        c = leases.c
        with self.registry.engine.begin() as conn:
            taken = conn.execute(
                sa.update(leases)
                .where(c.name == name, sa.or_(c.holder == holder, c.expires_at <= _stamp(start)))
                .values(token=sa.case((c.holder == holder, c.token), else_=c.token + 1),
                        acquired_at=sa.case((c.holder == holder, c.acquired_at),
                                            else_=_stamp(start)),
                        holder=holder, expires_at=_stamp(expires))
                .returning(c.token)).scalar()
            if taken is not None:
                return Lease(name, holder, int(taken), expires)
            inserted = conn.execute(_insert_new(conn, name, holder, start, expires)).scalar()
        return None if inserted is None else Lease(name, holder, 1, expires)

    def renew(self, lease: Lease, ttl_s: float, *, now: float) -> Lease | None:
        """Extend ``lease`` to ``now + ttl_s``; None if it was lost (someone else took it,
        its token changed). A lease that expired but that nobody took is renewed: its
        unchanged token proves that nobody held it meanwhile."""
        expires = _seconds(now, "time", positive=False) + _seconds(ttl_s, "ttl_s",
                                                                   positive=True)
        with self.registry.engine.begin() as conn:
            done = conn.execute(sa.update(leases).where(
                leases.c.name == lease.name, leases.c.holder == lease.holder,
                leases.c.token == lease.token).values(expires_at=_stamp(expires))).rowcount
        return Lease(lease.name, lease.holder, lease.token, expires) if done == 1 else None

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` up now (the next holder gets ``token + 1``); False if it was
        already lost."""
        with self.registry.engine.begin() as conn:
            done = conn.execute(sa.update(leases).where(
                leases.c.name == lease.name, leases.c.holder == lease.holder,
                leases.c.token == lease.token).values(expires_at=_RELEASED)).rowcount
        return bool(done == 1)

    def get(self, name: str) -> Lease | None:
        """The lease ``name`` as stored (possibly expired), or None if never taken."""
        with self.registry.engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(
                leases.c.name == _text(name, "name", 128))).first()
        if row is None:
            return None
        return Lease(row.name, row.holder, int(row.token), utc(row.expires_at).timestamp())


def _insert_new(conn: sa.Connection, name: str, holder: str, start: float,
                expires: float) -> sa.Executable:
    """An INSERT of a first lease row that does nothing if the name exists (a racer won)."""
    values = {"name": name, "holder": holder, "token": 1, "expires_at": _stamp(expires),
              "acquired_at": _stamp(start)}
    dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(conn.dialect.name)
    if dialect is not None:
        statement: sa.Executable = dialect.insert(leases).values(**values) \
            .on_conflict_do_nothing(index_elements=["name"]).returning(leases.c.token)
        return statement
    raise RegistryError(f"leases need SQLite or PostgreSQL, not {conn.dialect.name}")
