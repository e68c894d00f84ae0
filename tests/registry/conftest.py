"""Fixtures: one migrated database per test on each backend, and the packages to register.

``backend`` runs every test that uses it twice: on a SQLite file and on a PostgreSQL database
created for the test (from a template migrated once per session) and dropped after it.
PostgreSQL is ``$SHIPYARD_TEST_POSTGRES_URL`` (default: the local server); when it is
unreachable the PostgreSQL half is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sqlalchemy.pool import NullPool

import shipyard
from registry.helpers import FEATURES, MODEL, Packages, backend_name, open_registry
from shipyard.registry import Registry
from shipyard.registry.database import create_engine, upgrade

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# -- databases -------------------------------------------------------------------------------


class PostgresServer:
    """Creates and drops databases on one server through an AUTOCOMMIT admin connection."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        self.admin = sa.create_engine(self.url, isolation_level="AUTOCOMMIT",
                                      poolclass=NullPool, connect_args={"connect_timeout": 5})
        self.file_copy = False  # STRATEGY FILE_COPY (PostgreSQL 15+), set once connected

    def connect(self) -> None:
        with self.admin.connect() as conn:
            version = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
        self.file_copy = version >= 150000

    def url_for(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def create(self, *, template: str | None = None, prefix: str = "shipyard_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            sql += f' TEMPLATE "{template}"'
            if self.file_copy:
                # a checkpoint instead of WAL-logging the whole catalog: concurrent creations
                # share checkpoints, which makes them several times faster
                sql += " STRATEGY FILE_COPY"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(sql)
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :name AND pid <> pg_backend_pid()"),
                         {"name": name})
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')


class DatabasePool:
    """Copies of the template made ahead of time (CREATE DATABASE takes ~0.3 s: PostgreSQL
    copies the whole catalog), and dropped behind the tests, on a background thread."""

    def __init__(self, server: PostgresServer, template: str, ahead: int = 4) -> None:
        self.server, self.template, self.ahead = server, template, ahead
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pg-databases")
        self.pending: deque[Future[str]] = deque()
        self.drops: list[Future[None]] = []

    def _fill(self) -> None:
        while len(self.pending) < self.ahead:
            self.pending.append(self.executor.submit(self.server.create, template=self.template))

    def take(self) -> str:
        self._fill()
        name = self.pending.popleft().result()
        self._fill()
        return name

    def give_back(self, name: str) -> None:
        self.drops.append(self.executor.submit(self.server.drop, name))

    def close(self) -> None:
        while self.pending:
            self.give_back(self.pending.popleft().result())
        self.executor.shutdown(wait=True)
        for dropped in self.drops:
            dropped.result()  # a database we could not drop is an error


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get("SHIPYARD_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        server = PostgresServer(url)
        server.connect()
    except Exception as exc:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        reason = (f"PostgreSQL is unreachable at {shown} ({type(exc).__name__}: "
                  f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}); set "
                  "SHIPYARD_TEST_POSTGRES_URL to a server where user may CREATE DATABASE")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    yield server
    server.admin.dispose()


@pytest.fixture(scope="session")
def postgres_databases(postgres_server: PostgresServer) -> Iterator[DatabasePool]:
    """A template migrated to head once; each test gets its own copy of it."""
    template = postgres_server.create(prefix="shipyard_tpl")
    try:
        engine = create_engine(postgres_server.url_for(template))
        upgrade(engine)
        engine.dispose()
        pool = DatabasePool(postgres_server, template)
        try:
            yield pool
        finally:
            pool.close()
    finally:
        postgres_server.drop(template)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "registry.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database, migrated to head, on each backend."""
    if request.param == "sqlite":
        db = tmp_path / "registry.db"
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, db)
        yield f"sqlite:///{db}"
        return
    databases: DatabasePool = request.getfixturevalue("postgres_databases")
    name = databases.take()
    try:
        yield databases.server.url_for(name)
    finally:
        databases.give_back(name)  # dropped (connections terminated first) in the background


@pytest.fixture
def empty_database(backend: str, request: pytest.FixtureRequest,
                   tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes more databases, empty (no schema), of the same kind as ``backend``."""
    created: list[str] = []
    server: PostgresServer | None = None

    def make() -> str:
        nonlocal server
        if backend_name(backend) == "sqlite":
            return f"sqlite:///{tmp_path / f'empty-{uuid.uuid4().hex[:8]}.db'}"
        server = request.getfixturevalue("postgres_server")
        created.append(server.create())
        return server.url_for(created[-1])

    yield make
    for name in created:
        assert server is not None
        server.drop(name)


@pytest.fixture
def reg(backend: str, tmp_path: Path) -> Iterator[Registry]:
    registry = open_registry(backend, tmp_path)
    yield registry
    registry.close()


# -- packages --------------------------------------------------------------------------------


def _fit(x: pd.DataFrame, y: Any, c: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=1000).fit(x, y)


@pytest.fixture(scope="session")
def iris_data() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_iris(return_X_y=True, as_frame=True)  # ships with scikit-learn
    x.columns = FEATURES
    return x, y


@pytest.fixture(scope="session")
def pkgs(iris_data: tuple[pd.DataFrame, pd.Series],
         tmp_path_factory: pytest.TempPathFactory) -> Packages:
    x, y = iris_data
    model = _fit(x, y)
    base = shipyard.package(model, x, name=MODEL, metrics={"accuracy": 0.96, "f1": 0.95},
                            params={"C": 1.0, "max_iter": 1000})
    compatible = shipyard.package(_fit(x, y, c=0.1), x, name=MODEL,
                                  metrics={"accuracy": 0.85}, params={"C": 0.1})
    dropped = x.drop(columns="petal_width")
    renamed = x.rename(columns={"petal_width": "petal_w"})
    narrowed = x.assign(petal_width=(x["petal_width"] * 10).round().astype("int64"))
    names = pd.Series(load_iris().target_names[y], index=y.index)
    base_dir = base.save(tmp_path_factory.mktemp("pkg") / "iris-base")
    return Packages(
        x=x, model=model, base=base, base_dir=base_dir, compatible=compatible,
        removed_column=shipyard.package(_fit(dropped, y), dropped, name=MODEL),
        renamed_column=shipyard.package(_fit(renamed, y), renamed, name=MODEL),
        narrowed_dtype=shipyard.package(_fit(narrowed, y), narrowed, name=MODEL),
        relabelled=shipyard.package(_fit(x, names), x, name=MODEL),
    )
