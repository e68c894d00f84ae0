"""Alembic migrations on both backends: from empty, from 0001 with data, and schema drift."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from registry.helpers import Packages, backend_name, open_registry
from shipyard.errors import SchemaOutOfDateError
from shipyard.registry.database import create_engine, current_revision, head_revision, upgrade
from shipyard.registry.schema import metadata
from shipyard.routing import Single, Weighted
from shipyard.routing.plans import CanaryPlan

# the 0001 schema, as the rows were written then (not the current schema module)
V1_MODELS = sa.table("models", sa.column("id", sa.Integer), sa.column("name", sa.String),
                     sa.column("latest_version", sa.Integer),
                     sa.column("created_at", sa.DateTime(timezone=True)),
                     sa.column("updated_at", sa.DateTime(timezone=True)))
V1_VERSIONS = sa.table(
    "versions", sa.column("id", sa.Integer), sa.column("model_id", sa.Integer),
    sa.column("version", sa.Integer), sa.column("status", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)), sa.column("created_by", sa.String),
    sa.column("runtime", sa.String), sa.column("manifest", sa.JSON),
    sa.column("params", sa.JSON))
V1_FILES = sa.table("version_files", sa.column("version_id", sa.Integer),
                    sa.column("path", sa.String), sa.column("sha256", sa.String),
                    sa.column("size", sa.BigInteger))


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_upgrade_from_empty_to_head(empty_database: Callable[[], str]) -> None:
    engine = create_engine(empty_database())
    try:
        assert current_revision(engine) is None
        assert _tables(engine) == set()
        upgrade(engine)
        assert head_revision() == "0006"
        assert current_revision(engine) == head_revision()
        assert _tables(engine) == set(metadata.tables) | {"alembic_version"}
        upgrade(engine)  # at head already: nothing to do
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_upgrade_from_0001_keeps_rows_and_backfills_metrics(
        empty_database: Callable[[], str], pkgs: Packages, tmp_path: Path) -> None:
    url = empty_database()
    engine = create_engine(url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "version_metrics" not in _tables(engine)
    manifest = pkgs.base.manifest.to_dict()
    manifest["metadata"] = {**manifest["metadata"], "metrics": {
        "accuracy": 0.91, "n_trees": 300, "note": "not a number", "calibrated": True}}
    now = datetime.now(UTC)
    with engine.begin() as conn:  # ids from the database, as shipyard 0001 wrote them
        model_id = conn.execute(V1_MODELS.insert().values(
            name="legacy", latest_version=1, created_at=now, updated_at=now,
        ).returning(V1_MODELS.c.id)).scalar_one()
        version_id = conn.execute(V1_VERSIONS.insert().values(
            model_id=model_id, version=1, status="active", created_at=now, created_by="old",
            runtime=manifest["runtimes"][0]["name"], manifest=manifest, params={"C": 1.0},
        ).returning(V1_VERSIONS.c.id)).scalar_one()
        conn.execute(V1_FILES.insert(), [{"version_id": version_id, **f}
                                         for f in manifest["files"]])
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        row = conn.execute(sa.select(V1_VERSIONS).where(V1_VERSIONS.c.id == version_id)).one()
        metrics = dict(conn.execute(sa.text(
            "SELECT key, value FROM version_metrics WHERE version_id = :v"),
            {"v": version_id}).all())
    engine.dispose()
    stored = row.manifest if isinstance(row.manifest, dict) else json.loads(row.manifest)
    assert stored == manifest and row.created_by == "old"
    # numbers are backfilled; text and booleans are not metrics (as when registering)
    assert metrics == {"accuracy": 0.91, "n_trees": 300.0}

    # the registry reads and extends the migrated data
    reg = open_registry(url, tmp_path)
    try:
        legacy = reg.get_version("legacy/1")
        assert legacy.metrics == {"accuracy": 0.91, "n_trees": 300.0}
        assert legacy.params == {"C": 1.0}
        assert [v.version for v in reg.search_versions(metric="accuracy>0.9")] == [1]
        assert reg.register(pkgs.base, name="legacy").version == 2
    finally:
        reg.close()


V3_POLICIES = sa.table("endpoint_policies", sa.column("endpoint", sa.String),
                      sa.column("revision", sa.Integer), sa.column("policy", sa.JSON),
                      sa.column("updated_at", sa.DateTime(timezone=True)),
                      sa.column("updated_by", sa.String))


def test_upgrade_from_0003_keeps_policies_and_starts_rollouts(
        empty_database: Callable[[], str], pkgs: Packages, tmp_path: Path) -> None:
    url = empty_database()
    engine = create_engine(url)
    upgrade(engine, "0003")
    manifest = pkgs.base.manifest.to_dict()
    now = datetime.now(UTC)
    with engine.begin() as conn:  # two versions and a policy, as shipyard 0003 wrote them
        model_id = conn.execute(V1_MODELS.insert().values(
            name="legacy", latest_version=2, created_at=now, updated_at=now,
        ).returning(V1_MODELS.c.id)).scalar_one()
        conn.execute(V1_VERSIONS.insert(), [dict(
            model_id=model_id, version=n, status="active", created_at=now, created_by="old",
            runtime=manifest["runtimes"][0]["name"], manifest=manifest, params={})
            for n in (1, 2)])
        conn.execute(V3_POLICIES.insert().values(
            endpoint="fraud", revision=1, policy={"format": 1, "kind": "single",
                                                  "version": "legacy/1"},
            updated_at=now, updated_by="old"))
    assert current_revision(engine) == "0003"
    assert {"rollouts", "rollout_decisions", "leases"}.isdisjoint(_tables(engine))
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert {"rollouts", "rollout_decisions", "leases"} <= _tables(engine)
    engine.dispose()

    reg = open_registry(url, tmp_path)
    try:
        assert reg.deployments.current("fraud") == (1, Single("legacy/1"))
        rollout = reg.rollouts.start_canary("fraud", "legacy/2", CanaryPlan(), reason="c")
        assert (rollout.stable, rollout.policy_revision) == ("legacy/1", 2)
        assert reg.deployments.current("fraud") == (2, Weighted.canary(
            "legacy/1", "legacy/2", 5, salt=f"rollout-{rollout.id}"))
    finally:
        reg.close()


def test_migrated_schema_matches_the_models(empty_database: Callable[[], str]) -> None:
    engine = create_engine(empty_database())
    upgrade(engine)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
        # no filtering needed: the migrations declare exactly the schema module's types,
        # names and indexes on both backends
        assert diff == []
    finally:
        engine.dispose()


def test_schema_check_without_auto_upgrade(empty_database: Callable[[], str],
                                           tmp_path: Path) -> None:
    url = empty_database()
    with pytest.raises(SchemaOutOfDateError, match=r"none \(empty\).*shipyard db upgrade"):
        open_registry(url, tmp_path, auto_upgrade=False)
    engine = create_engine(url)
    try:
        assert current_revision(engine) is None  # the check changed nothing
        upgrade(engine, "0001")
        with pytest.raises(SchemaOutOfDateError, match="0001"):
            open_registry(url, tmp_path, auto_upgrade=False)
        assert current_revision(engine) == "0001"
    finally:
        engine.dispose()


def test_default_upgrade_policy_per_backend(empty_database: Callable[[], str],
                                            tmp_path: Path) -> None:
    """SQLite is migrated on open; PostgreSQL must be migrated explicitly."""
    from shipyard.registry import Registry
    from shipyard.settings import Settings

    url = empty_database()
    settings = Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")})

    def open_default() -> Registry:
        return Registry(url, artifacts=tmp_path / "blobs", actor="tester", settings=settings)

    if backend_name(url) == "sqlite":
        open_default().close()
    else:
        with pytest.raises(SchemaOutOfDateError):
            open_default()
        Registry(url, artifacts=tmp_path / "blobs", actor="tester", settings=settings,
                 auto_upgrade=True).close()
    engine = create_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
    open_default().close()  # at head: opens on every backend
