"""What the registry returns: plain frozen dataclasses, JSON-ready via ``to_dict``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


def _json(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {k: _json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json(v) for v in obj]
    return obj


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    status: str
    runtime: str
    created_at: datetime
    created_by: str
    description: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, Any]
    parent_version: int | None
    data: dict[str, Any] | None
    code: dict[str, Any] | None
    manifest: dict[str, Any] = field(repr=False)
    # the package's signature as registered: {"record": signature.json, "manifest_sha256":
    # the signed manifest bytes' blob}; None when it was registered unsigned
    signature: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def signed_by(self) -> str | None:
        """The key id the stored signature names (checked against trusted keys on load)."""
        return None if self.signature is None else str(self.signature["record"]["key_id"])

    def to_dict(self, *, with_manifest: bool = False) -> dict[str, Any]:
        out = _json(asdict(self))
        out["uri"] = self.uri
        out["signed_by"] = self.signed_by
        if not with_manifest:
            out.pop("manifest")
            out.pop("signature")
        return dict(out)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    latest_version: int
    versions: int
    aliases: dict[str, int]
    tags: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dict(_json(asdict(self)))


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    model: str | None
    version: int | None
    alias: str | None
    before: Any
    after: Any
    forced: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(_json(asdict(self)))


@dataclass(frozen=True)
class Lineage:
    """Upstream (data, code, parents) and downstream (children, deployments) of a version."""

    version: ModelVersion
    parents: tuple[str, ...]
    children: tuple[str, ...]
    deployments: tuple[dict[str, Any], ...]
    # the offline evaluations of the version's content, newest first (registry/evaluations.py)
    evaluations: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        v = self.version
        return {
            "uri": v.uri,
            "upstream": {"data": v.data, "code": v.code, "params": v.params,
                         "parents": list(self.parents)},
            "downstream": {"versions": list(self.children),
                           "deployments": _json(list(self.deployments))},
            "metrics": v.metrics,
            "evaluations": _json(list(self.evaluations)),
        }
