"""Lookups shared by the registry's operations: rows in, records out. No writes here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from shipyard.errors import NotFoundError
from shipyard.registry.records import AuditRecord, ModelVersion, RegisteredModel
from shipyard.registry.schema import (
    aliases,
    audit_log,
    model_tags,
    models,
    version_metrics,
    version_tags,
    versions,
)
from shipyard.registry.uri import LATEST, ModelRef

MAX_VERSION = 2**31 - 1


def utc(value: datetime) -> datetime:
    """Datetimes come back naive from SQLite: they were written in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def model_row(conn: sa.Connection, name: str, *, lock: bool = False) -> sa.Row[Any]:
    query = sa.select(models).where(models.c.name == name)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"unknown model {name!r}")
    return row


def version_row(conn: sa.Connection, ref: ModelRef, *, lock: bool = False) -> sa.Row[Any]:
    """The version row ``ref`` names (a number, an alias or ``latest``)."""
    model = model_row(conn, ref.name, lock=lock)
    query = sa.select(versions).where(versions.c.model_id == model.id)
    if ref.version is not None:
        # beyond the INTEGER column no version exists (and the driver would fail to bind it)
        in_range = isinstance(ref.version, int) and 0 < ref.version <= MAX_VERSION
        row = (conn.execute(query.where(versions.c.version == ref.version)).first()
               if in_range else None)
        if row is None:
            raise NotFoundError(f"model {ref.name!r} has no version {ref.version} "
                                f"(latest is {model.latest_version})")
        return row
    if ref.alias is None or ref.alias == LATEST:
        row = conn.execute(query.where(versions.c.status == "active")
                           .order_by(versions.c.version.desc()).limit(1)).first()
        if row is None:
            raise NotFoundError(f"model {ref.name!r} has no active version")
        return row
    row = conn.execute(
        query.join(aliases, aliases.c.version_id == versions.c.id)
        .where(aliases.c.model_id == model.id, aliases.c.alias == ref.alias)).first()
    if row is None:
        known = alias_map(conn, model.id)
        raise NotFoundError(f"model {ref.name!r} has no alias {ref.alias!r} "
                            f"(aliases: {sorted(known) or 'none'})")
    return row


def alias_map(conn: sa.Connection, model_id: int) -> dict[str, int]:
    rows = conn.execute(
        sa.select(aliases.c.alias, versions.c.version)
        .join(versions, versions.c.id == aliases.c.version_id)
        .where(aliases.c.model_id == model_id)).all()
    return {r.alias: r.version for r in rows}


def _pairs(conn: sa.Connection, table: sa.Table, key_col: str, key: int) -> dict[str, Any]:
    rows = conn.execute(sa.select(table.c.key, table.c.value)
                        .where(table.c[key_col] == key)).all()
    return {r.key: r.value for r in rows}


def to_version(conn: sa.Connection, row: sa.Row[Any], name: str) -> ModelVersion:
    names = conn.execute(sa.select(aliases.c.alias).where(aliases.c.version_id == row.id)
                         .order_by(aliases.c.alias)).scalars().all()
    return ModelVersion(
        name=name, version=row.version, status=row.status, runtime=row.runtime,
        created_at=utc(row.created_at), created_by=row.created_by,
        description=row.description, aliases=tuple(names),
        tags=_pairs(conn, version_tags, "version_id", row.id),
        metrics=_pairs(conn, version_metrics, "version_id", row.id),
        params=dict(row.params or {}), parent_version=row.parent_version,
        data=row.data, code=row.code, manifest=dict(row.manifest),
        signature=None if row.signature is None else dict(row.signature),
    )


def to_model(conn: sa.Connection, row: sa.Row[Any]) -> RegisteredModel:
    count = conn.execute(sa.select(sa.func.count()).select_from(versions)
                         .where(versions.c.model_id == row.id)).scalar_one()
    return RegisteredModel(
        name=row.name, description=row.description, created_at=utc(row.created_at),
        updated_at=utc(row.updated_at), latest_version=row.latest_version, versions=count,
        aliases=alias_map(conn, row.id), tags=_pairs(conn, model_tags, "model_id", row.id))


def to_audit(row: sa.Row[Any]) -> AuditRecord:
    return AuditRecord(id=row.id, at=utc(row.at), actor=row.actor, action=row.action,
                       model=row.model, version=row.version, alias=row.alias,
                       before=row.before, after=row.after, forced=bool(row.forced))


def audit_query(*, model: str | None, action: str | None, since: datetime | None,
                limit: int | None) -> sa.Select[Any]:
    query = sa.select(audit_log).order_by(audit_log.c.id)
    if model is not None:
        query = query.where(audit_log.c.model == model)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if since is not None:
        query = query.where(audit_log.c.at >= since.astimezone(UTC))
    if limit is not None:
        query = query.limit(limit)
    return query
