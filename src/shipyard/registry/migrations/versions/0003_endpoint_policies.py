"""Endpoint traffic policies: the current policy of each endpoint and its whole history.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_policies",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", name="pk_endpoint_policies"),
    )
    op.create_table(
        "endpoint_policy_history",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("previous_revision", sa.Integer),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "revision", name="pk_endpoint_policy_history"),
    )


def downgrade() -> None:
    op.drop_table("endpoint_policy_history")
    op.drop_table("endpoint_policies")
