"""Offline evaluations, keyed by the evaluated package's content fingerprint.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("against", sa.String(1024)),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("passed", sa.Boolean),
        sa.Column("gate", sa.JSON, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
    )
    op.create_index("ix_evaluations_fingerprint", "evaluations", ["fingerprint"])


def downgrade() -> None:
    op.drop_index("ix_evaluations_fingerprint", table_name="evaluations")
    op.drop_table("evaluations")
