"""Storage primitives: the content-addressed artifact store (and, later, prediction logs)."""

from shipyard.stores.artifacts import ArtifactStore, open_artifact_store

__all__ = ["ArtifactStore", "open_artifact_store"]
