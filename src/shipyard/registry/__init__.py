"""The model registry: versions, aliases, tags, lineage, audit log (SQLite or PostgreSQL)."""

from shipyard.names import is_model_uri
from shipyard.registry.deployments import Deployments, PolicyRevision
from shipyard.registry.leases import Lease, Leases
from shipyard.registry.records import AuditRecord, Lineage, ModelVersion, RegisteredModel
from shipyard.registry.registry import GcReport, Registry
from shipyard.registry.rollout_records import Rollout, RolloutDecision
from shipyard.registry.rollouts import Rollouts
from shipyard.registry.uri import ModelRef, parse_ref

__all__ = [
    "AuditRecord", "Deployments", "GcReport", "Lease", "Leases", "Lineage", "ModelRef",
    "ModelVersion", "PolicyRevision", "RegisteredModel", "Registry", "Rollout",
    "RolloutDecision", "Rollouts", "is_model_uri", "parse_ref",
]
