"""Engines and migrations. SQLite is migrated on open; PostgreSQL by ``shipyard db upgrade``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shipyard.errors import RegistryError, RegistryUnavailableError, SchemaOutOfDateError
from shipyard.settings import without_password

MIGRATIONS = Path(__file__).with_name("migrations")


def create_engine(url: str) -> sa.Engine:
    """An engine tuned for the registry: SQLite writes serialised with BEGIN IMMEDIATE."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: a port that is no number
        raise RegistryError(f"invalid registry URL {without_password(url)!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 60})
        _serialise_sqlite_writes(engine)
    else:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    _name_unreachable(engine, without_password(url))
    return engine


def _name_unreachable(engine: sa.Engine, shown: str) -> None:
    """A database that cannot be reached (refused, unknown host, bad credentials) raises one
    error of the tree that names the registry without its password, wherever the registry
    is used: the CLI prints one line, the server answers 503, no driver traceback."""
    @sa.event.listens_for(engine, "handle_error")
    def _unreachable(context: Any) -> None:
        if getattr(context, "is_pre_ping", False):  # the pool reconnects by itself then
            return
        if context.connection is None or context.is_disconnect:  # no connection was made
            detail = str(context.original_exception).strip().splitlines()[0]
            raise RegistryUnavailableError(
                f"cannot reach the registry at {shown!r}: {detail}") from None


def _serialise_sqlite_writes(engine: sa.Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN; take the write lock up front instead,
    # so concurrent writers queue (busy timeout) rather than fail mid-transaction.
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _config(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest)."""
    with engine.connect() as conn:
        command.upgrade(_config(conn), revision)
        conn.commit()


def ensure_schema(engine: sa.Engine, *, auto_upgrade: bool) -> None:
    """Migrate (SQLite) or check (other databases) that the schema is at head."""
    current = current_revision(engine)
    if current == head_revision():
        return
    if auto_upgrade:
        upgrade(engine)
        return
    raise SchemaOutOfDateError(
        f"the registry database is at schema revision {current or 'none (empty)'} but this "
        f"shipyard needs {head_revision()}: run `shipyard db upgrade`")
