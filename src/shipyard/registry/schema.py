"""The registry's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` build them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

Stamp = sa.DateTime(timezone=True)

models = sa.Table(
    "models", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text),
    sa.Column("latest_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("updated_at", Stamp, nullable=False),
)

versions = sa.Table(
    "versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.ForeignKey("models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("description", sa.Text),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("runtime", sa.String(32), nullable=False),
    sa.Column("manifest", sa.JSON, nullable=False),
    sa.Column("parent_version", sa.Integer),
    sa.Column("data", sa.JSON),
    sa.Column("code", sa.JSON),
    sa.Column("params", sa.JSON),
    # revision 0005: the package's signature.json as registered, beside the sha256 of the
    # exact manifest bytes it signs (kept as a blob): fetch hands both back
    sa.Column("signature", sa.JSON),
    sa.UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
)

version_files = sa.Table(
    "version_files", metadata,
    sa.Column("version_id", sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("path", sa.String(512), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
)

aliases = sa.Table(
    "aliases", metadata,
    sa.Column("model_id", sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version_id", sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("updated_at", Stamp, nullable=False),
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", Stamp, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), index=True),
    sa.Column("version", sa.Integer),
    sa.Column("alias", sa.String(64)),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
    sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
)

# revision 0002
model_tags = sa.Table(
    "model_tags", metadata,
    sa.Column("model_id", sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.String(512), nullable=False),
)

version_tags = sa.Table(
    "version_tags", metadata,
    sa.Column("version_id", sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.String(512), nullable=False),
)

version_metrics = sa.Table(
    "version_metrics", metadata,
    sa.Column("version_id", sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
)

deployments = sa.Table(
    "deployments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("endpoint", sa.String(128), nullable=False),
    sa.Column("version_id", sa.ForeignKey("versions.id"), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", Stamp, nullable=False),
)

# revision 0003: each endpoint's current traffic policy (registry/deployments.py) and every
# revision it had; the (endpoint, revision) key refuses a second writer of the same revision
endpoint_policies = sa.Table(
    "endpoint_policies", metadata,
    sa.Column("endpoint", sa.String(128), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("updated_at", Stamp, nullable=False),
    sa.Column("updated_by", sa.String(256), nullable=False),
)

endpoint_policy_history = sa.Table(
    "endpoint_policy_history", metadata,
    sa.Column("endpoint", sa.String(128), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("previous_revision", sa.Integer),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", Stamp, nullable=False),
)

# revision 0004: rollouts (registry/rollouts.py), the decisions taken on the way, and leases
# (registry/leases.py). The partial unique index refuses a second running rollout of an
# endpoint even when two writers race past the check.
rollouts = sa.Table(
    "rollouts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("stable", sa.String(256), nullable=False),
    sa.Column("candidate", sa.String(256), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("step", sa.Integer, nullable=False, server_default="0"),
    sa.Column("step_started_at", Stamp, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("finished_at", Stamp),
    sa.Column("reason", sa.Text),
    sa.Column("policy_revision", sa.Integer, nullable=False),
    sa.Index("uq_rollouts_running_endpoint", "endpoint", unique=True,
             sqlite_where=sa.text("state = 'running'"),
             postgresql_where=sa.text("state = 'running'")),
)

rollout_decisions = sa.Table(
    "rollout_decisions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.ForeignKey("rollouts.id"), nullable=False, index=True),
    sa.Column("at", Stamp, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("percent", sa.Float),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("numbers", sa.JSON, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
)

leases = sa.Table(
    "leases", metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(256), nullable=False),
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("expires_at", Stamp, nullable=False),
    sa.Column("acquired_at", Stamp, nullable=False),
)

# revision 0005: API keys (registry/api_keys.py), stored as the SHA-256 of the secret: the
# secret is shown once, at creation, and never stored
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("endpoint", sa.String(128)),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("expires_at", Stamp),
    sa.Column("revoked_at", Stamp),
    sa.Column("first_used_at", Stamp),
)

# revision 0006: offline evaluations (registry/evaluations.py), keyed by the evaluated
# package's content fingerprint (packaging/manifest.py ``content_fingerprint``): every version
# registered from the same bytes shows them
evaluations = sa.Table(
    "evaluations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("source", sa.String(1024), nullable=False),
    sa.Column("against", sa.String(1024)),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("passed", sa.Boolean),
    sa.Column("gate", sa.JSON, nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
)
