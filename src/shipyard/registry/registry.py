"""``Registry``: versions, aliases, tags, lineage and the audit log, over SQLAlchemy.

Every mutating method runs in one transaction that also appends exactly one audit record.
Blobs go to the content-addressed artifact store before the transaction, so a crash leaves at
worst an unreferenced blob (``gc`` removes it), never a version without its files.
"""

from __future__ import annotations

import copy
import functools
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from shipyard.errors import (
    ConflictError,
    IncompatibleSignatureError,
    NotFoundError,
    PackageError,
    RegistryError,
)
from shipyard.packaging import MANIFEST_FILE, Manifest, Signature, check_name, verify_files
from shipyard.packaging.compat import incompatibilities
from shipyard.packaging.manifest import content_fingerprint
from shipyard.packaging.signing import SigningPolicy, read_record
from shipyard.registry import queries as q
from shipyard.registry.api_keys import ApiKeyStore
from shipyard.registry.database import create_engine, ensure_schema
from shipyard.registry.deployments import Deployments, endpoints_loading
from shipyard.registry.evaluations import EvaluationRequiredError, EvaluationStore
from shipyard.registry.fetching import fetch_package
from shipyard.registry.records import AuditRecord, Lineage, ModelVersion, RegisteredModel
from shipyard.registry.rollouts import Rollouts
from shipyard.registry.schema import (
    aliases,
    audit_log,
    deployments,
    model_tags,
    models,
    version_files,
    version_metrics,
    version_tags,
    versions,
)
from shipyard.registry.uri import LATEST, ModelRef, check_alias, parse_ref
from shipyard.settings import Settings
from shipyard.stores import ArtifactStore, open_artifact_store

_METRIC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=|<=|==|!=|>|<|=)\s*([-+0-9.eE]+)\s*$")
_OPS = {">": "__gt__", ">=": "__ge__", "<": "__lt__", "<=": "__le__", "=": "__eq__",
        "==": "__eq__", "!=": "__ne__"}


def _now() -> datetime:
    return datetime.now(UTC)


def _key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 128 or not key.isprintable():
        raise RegistryError(f"invalid tag key {key!r}: 1-128 printable characters")
    return key


def _tag_value(value: object) -> str:
    # the column is VARCHAR(512): PostgreSQL would fail with a DataError, SQLite would not
    text = str(value)
    if len(text) > 512:
        raise RegistryError(f"tag value too long ({len(text)} characters, at most 512)")
    return text


def _endpoint(endpoint: str) -> str:
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > 128:
        raise RegistryError(f"invalid endpoint {endpoint!r}: 1-128 characters")
    return endpoint


def _settable_alias(alias: str) -> str:
    check_alias(alias)
    if alias == LATEST:
        raise RegistryError("'latest' is computed (the newest active version), not set")
    return alias


@dataclass(frozen=True)
class GcReport:
    deleted: int
    bytes_freed: int
    kept: int


class Registry:
    """The model registry. ``Registry()`` opens ``$SHIPYARD_REGISTRY_URL`` (default: SQLite
    under ``$SHIPYARD_HOME``); SQLite is migrated on open, other databases must be at head."""

    def __init__(self, url: str | None = None, *, artifacts: str | Path | None = None,
                 actor: str | None = None, settings: Settings | None = None,
                 auto_upgrade: bool | None = None,
                 signing: SigningPolicy | None = None,
                 require_evaluation: bool | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.url = url or self.settings.registry_url
        self.engine = create_engine(self.url)
        self.artifacts: ArtifactStore = open_artifact_store(artifacts or self.settings.artifacts)
        self.actor = actor or self.settings.actor
        if not self.actor or len(self.actor) > 256:
            raise RegistryError(f"invalid actor {self.actor!r}: 1-256 characters")
        sqlite = self.engine.dialect.name == "sqlite"
        ensure_schema(self.engine, auto_upgrade=sqlite if auto_upgrade is None else auto_upgrade)
        self._signing = signing
        # registry-wide: alias moves, deploys and rollout starts need a passed evaluation
        self.require_evaluation = self.settings.require_evaluation \
            if require_evaluation is None else require_evaluation

    @property
    def signing(self) -> SigningPolicy:
        """Trusted keys and ``require_signed`` (``packaging/signing.py``): as given, or read
        from the settings when first needed (only registering checks it)."""
        if self._signing is None:
            self._signing = SigningPolicy.load(self.settings.trusted_keys,
                                               self.settings.require_signed)
        return self._signing

    @signing.setter
    def signing(self, policy: SigningPolicy) -> None:
        self._signing = policy

    def close(self) -> None:
        self.engine.dispose()

    @functools.cached_property
    def deployments(self) -> Deployments:
        """Endpoints and their traffic policies (``registry/deployments.py``)."""
        return Deployments(self)

    @functools.cached_property
    def api_keys(self) -> ApiKeyStore:
        """API keys with scopes, stored hashed (``registry/api_keys.py``)."""
        return ApiKeyStore(self)

    @functools.cached_property
    def evaluations(self) -> EvaluationStore:
        """Offline evaluations, by package content (``registry/evaluations.py``)."""
        return EvaluationStore(self)

    @functools.cached_property
    def rollouts(self) -> Rollouts:
        """Canary, A/B, shadow and blue-green rollouts of endpoints (``registry/rollouts.py``)."""
        return Rollouts(self)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------

    def register(self, source: Any, *, name: str | None = None, alias: str | None = None,
                 tags: Mapping[str, str] | None = None, description: str | None = None,
                 parent: int | None = None, force: bool = False,
                 require_evaluation: bool = False,
                 override_evaluation: str | None = None) -> ModelVersion:
        """Register a package (directory or ``Package``) as the next version of its model.
        With ``alias`` and an evaluation required (asked for, or the registry's policy), the
        package's content needs a passed evaluation (``shipyard evaluate DIR --record``) or
        an audited ``override_evaluation``; refused, nothing is registered."""
        evaluation = None
        if alias is not None:
            _settable_alias(alias)
            evaluation = self.evaluations.requirement(require_evaluation, override_evaluation)
        elif override_evaluation is not None:
            raise RegistryError("an evaluation override is for an alias: register with "
                                "--alias, or without the override")
        with _package_dir(source) as path:
            manifest = Manifest.read(path)
            signer = self.signing.check(path)  # refuses what the policy does not allow
            verify_files(path, manifest.files)
            model_name = _model_name(manifest.name if name is None else name)
            for entry in manifest.files:
                self.artifacts.put_file(path / entry.path, entry.sha256)
            signature = self._keep_signature(path)
        doc = {**manifest.to_dict(), "name": model_name}
        meta = manifest.metadata
        metrics = {k: float(v) for k, v in (meta.get("metrics") or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for key in metrics:
            _key(key)  # metric keys share the tag key limits (128 printable characters)
        with self._write() as conn:
            model_id = self._ensure_model(conn, model_name)
            number = conn.execute(
                sa.update(models).where(models.c.id == model_id)
                .values(latest_version=models.c.latest_version + 1, updated_at=_now())
                .returning(models.c.latest_version)).scalar_one()
            if parent is not None:
                q.version_row(conn, ModelRef(model_name, version=parent))
            version_id = conn.execute(sa.insert(versions).values(
                model_id=model_id, version=number, status="active",
                description=description or meta.get("description"), created_at=_now(),
                created_by=self.actor, runtime=manifest.runtime.name, manifest=doc,
                parent_version=parent, data=meta.get("data"), code=meta.get("code"),
                params=dict(meta.get("params") or {}), signature=signature,
            ).returning(versions.c.id)).scalar_one()
            kept = [(f.path, f.sha256, f.size) for f in manifest.files]
            if signature is not None:  # the signed manifest's blob stays while the version does
                kept.append((MANIFEST_FILE, signature["manifest_sha256"],
                             signature["manifest_size"]))
            conn.execute(sa.insert(version_files), [
                {"version_id": version_id, "path": p, "sha256": h, "size": n}
                for p, h, n in kept])
            if metrics:
                conn.execute(sa.insert(version_metrics), [
                    {"version_id": version_id, "key": k, "value": v} for k, v in metrics.items()])
            for key, value in (tags or {}).items():
                conn.execute(sa.insert(version_tags).values(
                    version_id=version_id, key=_key(key), value=_tag_value(value)))
            forced = False
            if evaluation is not None:
                try:
                    self.evaluations.require(conn, model_name, number, doc,
                                             action=f"registering {model_name}/{number} as "
                                                    f"{model_name}@{alias}",
                                             override=evaluation[0])
                except EvaluationRequiredError as exc:
                    raise EvaluationRequiredError(
                        f"{exc} Nothing was registered: evaluate the package directory with "
                        "--record first (shipyard evaluate DIR --data ... --target ... --gate "
                        "GATE.yaml --record), or register it without --alias.") from None
            if alias is not None:
                forced = self._point_alias(conn, model_id, model_name, alias, version_id,
                                           manifest.signature, force)[1]
            imported = meta.get("imported") if isinstance(meta.get("imported"), dict) else None
            self._audit(conn, "version.register", model_name, number, alias, None, {
                "runtime": manifest.runtime.name, "files": len(manifest.files),
                "parent": parent, "tags": dict(tags or {}), "alias": alias,
                **({} if signature is None else {
                    "signed_by": signature["record"]["key_id"], "trusted_signer": signer}),
                # an imported model's trust decision (shipyard import): who allowed what
                **({"imported": {k: imported.get(k) for k in ("from", "source", "flavour",
                                                               "trust")}}
                   if imported else {})}, forced)
        return self.get_version(f"{model_name}/{number}")

    def record_trust_refusal(self, name: str, decision: Mapping[str, Any]) -> None:
        """Audit a trust decision that registered nothing: an import refused because its
        files would run code and the caller did not trust them (action ``trust.refuse``).
        Granted trust is in the ``version.register`` record of the version it made."""
        model_name = _model_name(name)
        with self._write() as conn:
            self._audit(conn, "trust.refuse", model_name, None, None, None, dict(decision))

    def _keep_signature(self, path: Path) -> dict[str, Any] | None:
        """The package's signature record, with its exact manifest bytes stored as a blob
        (the version's manifest is re-serialised under its registered name, so it is not
        the signed text): fetch writes both back for the server to verify."""
        record = read_record(path)
        if record is None:
            return None
        body = (path / MANIFEST_FILE).read_bytes()
        sha = self.artifacts.put_file(path / MANIFEST_FILE)
        return {"record": record, "manifest_sha256": sha, "manifest_size": len(body)}

    def record_trust(self, ref: str, *, endpoint: str, by: str) -> None:
        """Audit that a server loads ``ref`` with trust (its native files may run code),
        and ``by`` what: ``signature:KEY_ID`` or ``config:trust``."""
        parsed = parse_ref(ref, require_version=True)
        with self._write() as conn:
            row = q.version_row(conn, parsed)
            self._audit(conn, "version.trust", parsed.name, row.version, None, None,
                        {"endpoint": _endpoint(endpoint), "by": by})

    def set_alias(self, name: str, alias: str, version: int, *, force: bool = False,
                  require_evaluation: bool = False,
                  override_evaluation: str | None = None) -> ModelVersion:
        """Point ``alias`` at ``version`` (creating or moving it), guarded by the signature;
        with ``require_evaluation``, only to a version whose newest gated evaluation passed
        (``override_evaluation`` names the reason to go on anyway, audited)."""
        _settable_alias(alias)
        with self._write() as conn:
            model_name = self._move_alias(
                conn, name, alias, version, force=force,
                evaluation=self.evaluations.requirement(require_evaluation,
                                                       override_evaluation))[0]
        return self.get_version(f"{model_name}/{version}")

    def delete_alias(self, name: str, alias: str) -> None:
        with self._write() as conn:
            self._drop_alias(conn, name, alias)

    def set_tag(self, ref: str, key: str, value: str) -> None:
        """Tag a model (``NAME``) or a version (``NAME/V`` or ``NAME@ALIAS``)."""
        self._tag(ref, _key(key), _tag_value(value))

    def delete_tag(self, ref: str, key: str) -> None:
        self._tag(ref, _key(key), None)

    def set_description(self, ref: str, text: str) -> None:
        parsed = parse_ref(ref)
        with self._write() as conn:
            if parsed.version is None and parsed.alias is None:
                model = q.model_row(conn, parsed.name, lock=True)
                conn.execute(sa.update(models).where(models.c.id == model.id)
                             .values(description=text, updated_at=_now()))
                self._audit(conn, "model.describe", model.name, None, None,
                            model.description, text)
                return
            row = q.version_row(conn, parsed, lock=True)
            conn.execute(sa.update(versions).where(versions.c.id == row.id)
                         .values(description=text))
            self._audit(conn, "version.describe", parsed.name, row.version, None,
                        row.description, text)

    def archive(self, ref: str) -> ModelVersion:
        """Archive a version; refused while an alias or an active deployment points at it."""
        return self._set_status(ref, "archived")

    def restore(self, ref: str) -> ModelVersion:
        return self._set_status(ref, "active")

    def add_deployment(self, ref: str, endpoint: str) -> None:
        """Record that ``endpoint`` serves a version (the server calls this)."""
        _endpoint(endpoint)
        with self._write() as conn:
            row = q.version_row(conn, parse_ref(ref, require_version=True), lock=True)
            conn.execute(sa.insert(deployments).values(endpoint=endpoint, version_id=row.id,
                                                       status="active", created_at=_now()))
            self._audit(conn, "deployment.add", parse_ref(ref).name, row.version, None, None,
                        {"endpoint": endpoint})

    def end_deployment(self, ref: str, endpoint: str) -> None:
        with self._write() as conn:
            row = q.version_row(conn, parse_ref(ref, require_version=True), lock=True)
            done = conn.execute(sa.update(deployments).where(
                deployments.c.version_id == row.id, deployments.c.endpoint == endpoint,
                deployments.c.status == "active").values(status="ended")).rowcount
            if not done:
                raise RegistryError(f"{ref} has no active deployment on {endpoint!r}")
            self._audit(conn, "deployment.end", parse_ref(ref).name, row.version, None,
                        {"endpoint": endpoint}, None)

    # -- reads -------------------------------------------------------------------------------

    def get_model(self, name: str) -> RegisteredModel:
        with self.engine.connect() as conn:
            return q.to_model(conn, q.model_row(conn, _model_name(name)))

    def get_version(self, ref: str) -> ModelVersion:
        """``NAME/V``, ``NAME@ALIAS``, ``NAME@latest`` or ``NAME`` (latest), ``models:/`` ok."""
        parsed = parse_ref(ref)
        with self.engine.connect() as conn:
            return q.to_version(conn, q.version_row(conn, parsed), parsed.name)

    resolve = get_version

    def list_models(self, *, tags: Mapping[str, str] | None = None, alias: str | None = None,
                    query: str | None = None) -> list[RegisteredModel]:
        """Models, filtered by tags (all must match), having ``alias``, or name substring."""
        stmt = sa.select(models).order_by(models.c.name)
        for key, value in (tags or {}).items():
            stmt = stmt.where(sa.exists().where(
                model_tags.c.model_id == models.c.id, model_tags.c.key == key,
                model_tags.c.value == value))
        if alias is not None:
            stmt = stmt.where(sa.exists().where(aliases.c.model_id == models.c.id,
                                                aliases.c.alias == alias))
        if query:
            stmt = stmt.where(models.c.name.contains(query, autoescape=True))
        with self.engine.connect() as conn:
            return [q.to_model(conn, row) for row in conn.execute(stmt).all()]

    def search_versions(self, name: str | None = None, *,
                        tags: Mapping[str, str] | None = None, alias: str | None = None,
                        metric: str | None = None, since: datetime | None = None,
                        until: datetime | None = None,
                        include_archived: bool = False) -> list[ModelVersion]:
        """Versions, newest first. ``metric`` is like ``"accuracy >= 0.9"``."""
        stmt = (sa.select(versions, models.c.name.label("model_name"))
                .join(models, models.c.id == versions.c.model_id)
                .order_by(models.c.name, versions.c.version.desc()))
        if name is not None:
            stmt = stmt.where(models.c.name == _model_name(name))
        if not include_archived:
            stmt = stmt.where(versions.c.status == "active")
        for key, value in (tags or {}).items():
            stmt = stmt.where(sa.exists().where(
                version_tags.c.version_id == versions.c.id, version_tags.c.key == key,
                version_tags.c.value == value))
        if alias is not None:
            stmt = stmt.where(sa.exists().where(aliases.c.version_id == versions.c.id,
                                                aliases.c.alias == alias))
        if metric is not None:
            metric_key, op, threshold = _parse_metric(metric)
            stmt = stmt.where(sa.exists().where(
                version_metrics.c.version_id == versions.c.id,
                version_metrics.c.key == metric_key,
                getattr(version_metrics.c.value, _OPS[op])(threshold)))
        if since is not None:
            stmt = stmt.where(versions.c.created_at >= since.astimezone(UTC))
        if until is not None:
            stmt = stmt.where(versions.c.created_at < until.astimezone(UTC))
        with self.engine.connect() as conn:
            return [q.to_version(conn, row, row.model_name) for row in conn.execute(stmt).all()]

    def lineage(self, ref: str) -> Lineage:
        """Where a version came from (data, code, parent chain) and what came after it."""
        parsed = parse_ref(ref)
        with self.engine.connect() as conn:
            row = q.version_row(conn, parsed)
            version = q.to_version(conn, row, parsed.name)
            by_number = {r.version: r for r in conn.execute(
                sa.select(versions).where(versions.c.model_id == row.model_id)).all()}
        parents, seen, cursor = [], {row.version}, row.parent_version
        while cursor is not None and cursor in by_number and cursor not in seen:
            parents.append(f"{parsed.name}/{cursor}")
            seen.add(cursor)
            cursor = by_number[cursor].parent_version
        children, frontier = [], [row.version]
        while frontier:
            current = frontier.pop(0)
            for number, r in sorted(by_number.items()):
                if r.parent_version == current and f"{parsed.name}/{number}" not in children:
                    children.append(f"{parsed.name}/{number}")
                    frontier.append(number)
        with self.engine.connect() as conn:
            deps = conn.execute(sa.select(deployments).where(
                deployments.c.version_id == row.id).order_by(deployments.c.id)).all()
        evaluated = self.evaluations.of_fingerprint(content_fingerprint(row.manifest))
        return Lineage(version, tuple(parents), tuple(children), tuple(
            {"endpoint": d.endpoint, "status": d.status, "since": q.utc(d.created_at)}
            for d in deps), tuple(e.brief() for e in evaluated))

    def audit(self, *, model: str | None = None, action: str | None = None,
              since: datetime | None = None, limit: int | None = None) -> list[AuditRecord]:
        """The audit log, oldest first. Read-only: no API updates or deletes records."""
        with self.engine.connect() as conn:
            rows = conn.execute(q.audit_query(model=model, action=action, since=since,
                                              limit=limit)).all()
        return [q.to_audit(r) for r in rows]

    def fetch(self, ref: str, dest: str | Path | None = None) -> Path:
        """The version's package as a directory (cached under ``$SHIPYARD_HOME/cache``,
        safe to share between processes: see ``registry.fetching``). A ``dest`` that holds
        anything but this package (or nothing) is refused and left as it is."""
        version = self.get_version(ref)
        doc = version.manifest
        manifest = Manifest.from_dict(doc)  # lists every file with its SHA-256 (= blob key)
        target = Path(dest) if dest is not None else (
            self.settings.home / "cache" / "packages" / version.name /
            f"{version.version}-{_short_hash(doc)}")
        return fetch_package(self.artifacts, manifest, target, shared=dest is None,
                             signature=version.signature)

    def gc(self, *, grace_seconds: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Delete blobs no version references, older than ``grace_seconds`` (in-flight
        registrations store blobs before their transaction commits)."""
        with self.engine.connect() as conn:
            used = set(conn.execute(sa.select(version_files.c.sha256).distinct()).scalars())
        cutoff = _now().timestamp() - grace_seconds
        deleted = freed = kept = 0
        for sha, mtime, size in list(self.artifacts.blobs()):
            # a registration re-using a blob refreshes its modified time (put_file), and
            # the delete checks that time again atomically: an in-flight registration
            # never loses a blob, as long as it commits within the grace period
            if sha in used or mtime > cutoff or not (
                    dry_run or self.artifacts.delete_if_older(sha, cutoff)):
                kept += 1
                continue
            deleted += 1
            freed += size
        return GcReport(deleted, freed, kept)

    def acting_as(self, actor: str) -> Registry:
        """This registry (its database connections, its artifact store) recording ``actor``
        as who makes each change: a server acting for the holder of an API key. Close the
        registry it came from, not this view."""
        if not isinstance(actor, str) or not actor or len(actor) > 256:
            raise RegistryError(f"invalid actor {actor!r}: 1-256 characters")
        view = copy.copy(self)
        for name, value in vars(type(self)).items():  # parts bound to this registry's actor
            if isinstance(value, functools.cached_property):
                view.__dict__.pop(name, None)
        view.actor = actor
        return view

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _ensure_model(self, conn: sa.Connection, name: str) -> int:
        dialect = conn.dialect.name
        now = _now()
        values = {"name": name, "latest_version": 0, "created_at": now, "updated_at": now}
        if dialect in ("sqlite", "postgresql"):
            insert_fn = sqlite.insert if dialect == "sqlite" else postgresql.insert
            conn.execute(insert_fn(models).values(**values).on_conflict_do_nothing(
                index_elements=["name"]))
        elif conn.execute(sa.select(models.c.id).where(models.c.name == name)).first() is None:
            conn.execute(sa.insert(models).values(**values))
        return int(q.model_row(conn, name, lock=True).id)

    def _move_alias(self, conn: sa.Connection, name: str, alias: str, version: int, *,
                    force: bool = False, evaluation: tuple[str | None] | None = None,
                    ) -> tuple[str, int | None]:
        """``set_alias`` in an open transaction (audited); returns (the model's name, the
        version the alias pointed at before, None if it is new). ``evaluation``, when
        given, requires a passed evaluation; it holds the override's reason or None."""
        model = q.model_row(conn, _model_name(name), lock=True)
        row = q.version_row(conn, ModelRef(model.name, version=version))
        if row.status != "active":
            raise ConflictError(f"{model.name}/{version} is archived; restore it first")
        if evaluation is not None:
            self.evaluations.require(conn, model.name, version, row.manifest,
                                     action=f"moving {model.name}@{alias}",
                                     override=evaluation[0])
        before, forced = self._point_alias(conn, model.id, model.name, alias, row.id,
                                           Signature.from_dict(row.manifest["signature"]),
                                           force)
        self._audit(conn, "alias.set", model.name, version, alias,
                    None if before is None else {"version": before},
                    {"version": version}, forced)
        return model.name, before

    def _drop_alias(self, conn: sa.Connection, name: str, alias: str) -> None:
        """``delete_alias`` in an open transaction (audited)."""
        model = q.model_row(conn, _model_name(name), lock=True)
        current = q.alias_map(conn, model.id).get(check_alias(alias))
        if current is None:
            raise NotFoundError(f"model {model.name!r} has no alias {alias!r}")
        conn.execute(sa.delete(aliases).where(aliases.c.model_id == model.id,
                                              aliases.c.alias == alias))
        self._audit(conn, "alias.delete", model.name, current, alias,
                    {"version": current}, None)

    def _point_alias(self, conn: sa.Connection, model_id: int, name: str, alias: str,
                     version_id: int, signature: Signature,
                     force: bool) -> tuple[int | None, bool]:
        """Move ``alias``; returns (previous version number, whether the guard was forced)."""
        current = conn.execute(
            sa.select(versions.c.version, versions.c.manifest)
            .join(aliases, aliases.c.version_id == versions.c.id)
            .where(aliases.c.model_id == model_id, aliases.c.alias == alias)).first()
        forced = False
        if current is not None:
            diff = incompatibilities(Signature.from_dict(current.manifest["signature"]),
                                     signature)
            if diff and not force:
                raise IncompatibleSignatureError(f"{name}@{alias}", diff)
            forced = bool(diff)
            conn.execute(sa.update(aliases).where(aliases.c.model_id == model_id,
                                                  aliases.c.alias == alias)
                         .values(version_id=version_id, updated_at=_now()))
        else:
            conn.execute(sa.insert(aliases).values(model_id=model_id, alias=alias,
                                                   version_id=version_id, updated_at=_now()))
        return (None if current is None else int(current.version)), forced

    def _tag(self, ref: str, key: str, value: str | None) -> None:
        parsed = parse_ref(ref)
        with self._write() as conn:
            if parsed.version is None and parsed.alias is None:
                owner = q.model_row(conn, parsed.name, lock=True).id
                table, column, number = model_tags, "model_id", None
            else:
                row = q.version_row(conn, parsed, lock=True)
                owner, table, column, number = row.id, version_tags, "version_id", row.version
            where = (table.c[column] == owner, table.c.key == key)
            old = conn.execute(sa.select(table.c.value).where(*where)).scalar()
            if value is None and old is None:
                raise RegistryError(f"{ref} has no tag {key!r}")
            conn.execute(sa.delete(table).where(*where))
            if value is not None:
                conn.execute(sa.insert(table).values({column: owner, "key": key,
                                                      "value": value}))
            self._audit(conn, "tag.set" if value is not None else "tag.delete", parsed.name,
                        number, None, None if old is None else {key: old},
                        None if value is None else {key: value})

    def _set_status(self, ref: str, status: str) -> ModelVersion:
        parsed = parse_ref(ref, require_version=True)
        with self._write() as conn:
            model = q.model_row(conn, parsed.name, lock=True)
            row = q.version_row(conn, parsed)
            if row.status == status:
                raise ConflictError(f"{parsed.name}/{row.version} is already {status}")
            if status == "archived":
                blockers = [f"alias {a!r}" for a, v in q.alias_map(conn, model.id).items()
                            if v == row.version]
                blockers += [f"deployment on {e!r}" for e in conn.execute(
                    sa.select(deployments.c.endpoint).where(
                        deployments.c.version_id == row.id,
                        deployments.c.status == "active")).scalars()]
                blockers += [f"the traffic policy of {e!r}" for e in endpoints_loading(
                    conn, f"{parsed.name}/{row.version}")]
                if blockers:
                    raise ConflictError(f"cannot archive {parsed.name}/{row.version}: "
                                        f"{', '.join(blockers)} point(s) at it")
            conn.execute(sa.update(versions).where(versions.c.id == row.id)
                         .values(status=status))
            self._audit(conn, "version.archive" if status == "archived" else "version.restore",
                        parsed.name, row.version, None, {"status": row.status},
                        {"status": status})
        return self.get_version(f"{parsed.name}/{row.version}")

    def _audit(self, conn: sa.Connection, action: str, model: str | None,
               version: int | None, alias: str | None, before: Any, after: Any,
               forced: bool = False) -> None:
        conn.execute(sa.insert(audit_log).values(
            at=_now(), actor=self.actor, action=action, model=model, version=version,
            alias=alias, before=before, after=after, forced=forced))


@contextmanager
def _package_dir(source: Any) -> Iterator[Path]:
    """A directory holding the package: the path given, or a temp copy of a ``Package``."""
    if isinstance(source, (str, Path)):
        yield Path(source)
        return
    if not hasattr(source, "save") or not hasattr(source, "manifest"):
        raise RegistryError(f"cannot register a {type(source).__name__}: pass a package "
                            "directory or a shipyard Package")
    with tempfile.TemporaryDirectory(prefix="shipyard-register-") as tmp:
        yield Path(source.save(Path(tmp) / "pkg"))


def _model_name(name: str) -> str:
    try:
        return check_name(name)
    except PackageError as exc:
        raise RegistryError(str(exc)) from exc


def _parse_metric(text: str) -> tuple[str, str, float]:
    match = _METRIC.match(text)
    if match is None:
        raise RegistryError(f"malformed metric filter {text!r}: use e.g. 'accuracy >= 0.9'")
    try:
        return match.group(1), match.group(2), float(match.group(3))
    except ValueError as exc:
        raise RegistryError(f"malformed metric value in {text!r}") from exc


def _short_hash(doc: Mapping[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:12]
