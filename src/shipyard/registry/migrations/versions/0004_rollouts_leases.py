"""Rollouts (canary, A/B, shadow, blue-green), their decisions, and leases.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_RUNNING = "state = 'running'"


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("stable", sa.String(256), nullable=False),
        sa.Column("candidate", sa.String(256), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("step", sa.Integer, nullable=False, server_default="0"),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("reason", sa.Text),
        sa.Column("policy_revision", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
    )
    op.create_index("ix_rollouts_endpoint", "rollouts", ["endpoint"])
    op.create_index("uq_rollouts_running_endpoint", "rollouts", ["endpoint"], unique=True,
                    sqlite_where=sa.text(_RUNNING), postgresql_where=sa.text(_RUNNING))
    op.create_table(
        "rollout_decisions",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("rollout_id", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("percent", sa.Float),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("numbers", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_decisions"),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"],
                                name="fk_rollout_decisions_rollout_id_rollouts"),
    )
    op.create_index("ix_rollout_decisions_rollout_id", "rollout_decisions", ["rollout_id"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("rollout_decisions")
    op.drop_index("uq_rollouts_running_endpoint", "rollouts")
    op.drop_index("ix_rollouts_endpoint", "rollouts")
    op.drop_table("rollouts")
