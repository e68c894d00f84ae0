"""``EvaluationStore``: offline evaluations (``shipyard evaluate --record``) kept with the
versions they judged.

An evaluation is keyed by the evaluated package's content fingerprint
(``packaging.manifest.content_fingerprint``: its files' hashes, runtimes and signature), not
by a version number: a package directory evaluated in CI before it is registered shows the
evaluation on the version registered from it, under any name, and a version whose bytes
differ never inherits one. Each record holds the gate's verdict (None when no gate was
given), the rules with their numbers, the data's fingerprint and a summary of the metrics.

``require`` is the check ``set_alias`` and ``rollouts.start_*`` make when asked
(``--require-evaluation``): the newest evaluation with a gate must have passed. An override
names its reason and is audited (``evaluation.override``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import ConflictError, NotFoundError, RegistryError
from shipyard.packaging.manifest import content_fingerprint
from shipyard.registry.queries import utc
from shipyard.registry.schema import evaluations

if TYPE_CHECKING:
    from shipyard.registry.registry import Registry

MAX_SOURCE = 1024


def verdict_of(passed: bool | None) -> str:
    return "no gate" if passed is None else "passed" if passed else "failed"


class EvaluationRequiredError(ConflictError):
    """A version without a passed evaluation where one is required (``--require-evaluation``)."""


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    fingerprint: str
    created_at: datetime
    created_by: str
    source: str  # what was evaluated, as given: a models:/ URI or a package directory
    against: str | None
    data: dict[str, Any]  # {"sha256", "rows", "target", "file"}
    passed: bool | None  # the gate's verdict; None when evaluated without a gate
    gate: list[dict[str, Any]]  # each rule with its value and verdict
    summary: dict[str, Any]  # headline metric, metrics, worst slices, comparison

    @property
    def verdict(self) -> str:
        return verdict_of(self.passed)

    def brief(self) -> dict[str, Any]:
        """The record in a line: for lineage and ``models show``."""
        return {"id": self.id, "at": self.created_at.isoformat(), "by": self.created_by,
                "verdict": self.verdict, "source": self.source, "against": self.against,
                "data_sha256": self.data.get("sha256"), "rows": self.data.get("rows"),
                "headline": self.summary.get("headline"),
                "value": self.summary.get("value"),
                "failed_rules": [g.get("rule") for g in self.gate if not g.get("passed")]}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "fingerprint": self.fingerprint,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "source": self.source, "against": self.against, "data": self.data,
                "verdict": self.verdict, "passed": self.passed, "gate": self.gate,
                "summary": self.summary}


class EvaluationStore:
    """The registry's evaluations (``Registry.evaluations``)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def record(self, fingerprint: str, *, source: str, against: str | None,
               data: Mapping[str, Any], passed: bool | None, gate: Sequence[Mapping[str, Any]],
               summary: Mapping[str, Any], model: str | None = None,
               version: int | None = None) -> EvaluationRecord:
        """Store one evaluation; audited as ``evaluation.record`` (on ``model``/``version``
        when the evaluated package is a registered version)."""
        if len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint):
            raise RegistryError(f"invalid content fingerprint {fingerprint!r}: 64 hex digits")
        _check_verdict(passed, gate)
        kept_data = dict(data)
        row = {"fingerprint": fingerprint, "created_at": datetime.now(UTC),
               "created_by": self.registry.actor, "source": source[:MAX_SOURCE],
               "against": None if against is None else against[:MAX_SOURCE],
               "data": kept_data, "passed": passed, "gate": [dict(g) for g in gate],
               "summary": dict(summary)}
        with self.registry.engine.begin() as conn:
            new_id = conn.execute(sa.insert(evaluations).values(**row)
                                  .returning(evaluations.c.id)).scalar_one()
            self.registry._audit(conn, "evaluation.record", model, version, None, None, {
                "evaluation": new_id, "fingerprint": fingerprint, "source": row["source"],
                "verdict": verdict_of(passed),
                "data_sha256": kept_data.get("sha256")})
        return self.get(new_id)

    def get(self, evaluation_id: int) -> EvaluationRecord:
        with self.registry.engine.connect() as conn:
            row = conn.execute(sa.select(evaluations)
                               .where(evaluations.c.id == evaluation_id)).first()
        if row is None:
            raise NotFoundError(f"no evaluation #{evaluation_id}")
        return _to_record(row)

    def of_fingerprint(self, fingerprint: str) -> list[EvaluationRecord]:
        """The evaluations of a package's content, newest first."""
        with self.registry.engine.connect() as conn:
            return [_to_record(r) for r in conn.execute(
                sa.select(evaluations).where(evaluations.c.fingerprint == fingerprint)
                .order_by(evaluations.c.id.desc())).all()]

    def of_version(self, ref: str) -> list[EvaluationRecord]:
        """The evaluations of a version's content (``NAME/V``, ``models:/NAME@ALIAS`` ...)."""
        return self.of_fingerprint(content_fingerprint(self.registry.get_version(ref).manifest))

    def requirement(self, require: bool | None,
                    override: str | None) -> tuple[str | None] | None:
        """What ``set_alias``, ``rollouts.deploy`` and ``rollouts.start_*`` pass on: None
        when no evaluation is required (neither asked for nor the registry's
        ``require_evaluation`` policy), else a 1-tuple of the override's reason (or None). An
        override where nothing is required would be neither checked nor audited: refused."""
        required = bool(require) or self.registry.require_evaluation
        if override is not None and not required:
            raise RegistryError("an evaluation override (override_evaluation, "
                                "--override-evaluation) is the reason to go on when a "
                                "required evaluation is missing: give require_evaluation "
                                "(--require-evaluation) with it, or neither")
        return (override,) if required else None

    def require(self, conn: sa.Connection, name: str, version: int,
                manifest: Mapping[str, Any], *, action: str,
                override: str | None) -> dict[str, Any]:
        """Refuse ``action`` on ``name/version`` (whose stored manifest is ``manifest``)
        unless its newest gated evaluation passed, or ``override`` gives a reason (audited as
        ``evaluation.override``). What was found, for the caller's own audit record."""
        row = conn.execute(sa.select(evaluations).where(
            evaluations.c.fingerprint == content_fingerprint(manifest),
            evaluations.c.passed.is_not(None)).order_by(evaluations.c.id.desc()).limit(1)).first()
        newest = None if row is None else _to_record(row)  # the newest gated evaluation
        if newest is not None and newest.passed:
            return {"evaluation": newest.id, "verdict": "passed"}
        uri = f"models:/{name}/{version}"
        why = (f"{uri} has no evaluation with a gate (shipyard evaluate {uri} --data ... "
               "--target ... --gate GATE.yaml)" if newest is None else
               f"{uri}'s newest evaluation (#{newest.id}, "
               f"{newest.created_at:%Y-%m-%d %H:%M} UTC) failed its gate: "
               + "; ".join(str(g.get("rule")) for g in newest.gate if not g.get("passed")))
        if override is None or not override.strip():
            raise EvaluationRequiredError(f"{action} requires a passed evaluation: {why}. "
                                          "Give a reason to override (--override-evaluation "
                                          "REASON); the override is audited.")
        reason = override.strip()[:2000]
        self.registry._audit(conn, "evaluation.override", name, version, None,
                             None, {"action": action, "reason": reason, "missing": why,
                                    "evaluation": None if newest is None else newest.id})
        return {"evaluation": None if newest is None else newest.id, "verdict": "overridden",
                "reason": reason}


def _check_verdict(passed: bool | None, gate: Sequence[Mapping[str, Any]]) -> None:
    """The verdict is the gate's: no gate, no verdict; passed only when every rule passed
    (a record that says "passed" over a failed rule, or over no rule, would satisfy
    ``require`` without the evaluation having passed anything)."""
    if passed is None:
        if gate:
            raise RegistryError("an evaluation with gate rules has a verdict (passed or "
                                "failed), not None")
        return
    if not gate:
        raise RegistryError("an evaluation without gate rules has no verdict: passed=None")
    if any(not isinstance(g, Mapping) or not isinstance(g.get("passed"), bool) for g in gate):
        raise RegistryError("each gate rule's result needs 'passed': true or false")
    if passed != all(g["passed"] for g in gate):
        raise RegistryError(f"the verdict {'passed' if passed else 'failed'} contradicts the "
                            f"gate's rules ({sum(not g['passed'] for g in gate)} failed)")


def _to_record(row: sa.Row[Any]) -> EvaluationRecord:
    return EvaluationRecord(row.id, row.fingerprint, utc(row.created_at), row.created_by,
                            row.source, row.against, dict(row.data), row.passed,
                            list(row.gate), dict(row.summary))
