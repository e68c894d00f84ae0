"""Tags on models and versions, searchable metrics, and deployments (for lineage).

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_tags",
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "key", name="pk_model_tags"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"],
                                name="fk_model_tags_model_id_models"),
    )
    op.create_table(
        "version_tags",
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "key", name="pk_version_tags"),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"],
                                name="fk_version_tags_version_id_versions"),
    )
    op.create_table(
        "version_metrics",
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("version_id", "key", name="pk_version_metrics"),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"],
                                name="fk_version_metrics_version_id_versions"),
    )
    # metrics registered before this revision live only in the manifest: copy them over
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, manifest FROM versions")).all()
    metrics_table = sa.table("version_metrics", sa.column("version_id"), sa.column("key"),
                             sa.column("value"))
    for version_id, manifest in rows:
        doc = json.loads(manifest) if isinstance(manifest, str) else manifest
        for key, value in (doc.get("metadata", {}).get("metrics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):  # as register
                conn.execute(metrics_table.insert().values(version_id=version_id, key=key,
                                                           value=float(value)))
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"],
                                name="fk_deployments_version_id_versions"),
    )
    op.create_index("ix_deployments_version_id", "deployments", ["version_id"])


def downgrade() -> None:
    op.drop_table("deployments")
    op.drop_table("version_metrics")
    op.drop_table("version_tags")
    op.drop_table("model_tags")
