"""The audit log: every mutating call leaves exactly one record; failed calls leave none.

Both tables run in one database per backend: each mutation case acts on a model of its own
(seeded identically), and failing calls must not change anything, so they can share one.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from registry.helpers import Packages
from shipyard.errors import (
    ConflictError,
    IncompatibleSignatureError,
    NotFoundError,
    PackageError,
    RegistryError,
)
from shipyard.registry import Registry

Call = Callable[[Registry, Packages, str], Any]


def seed(reg: Registry, pkgs: Packages, m: str) -> None:
    """m/1 (alias production), m/2 (compatible, tag stage=qa, deployed on ep-1), m/3
    (incompatible: petal_width removed), model tag team=ml."""
    reg.register(pkgs.base, name=m, alias="production")
    reg.register(pkgs.compatible, name=m, tags={"stage": "qa"})
    reg.register(pkgs.removed_column, name=m)
    reg.add_deployment(f"{m}/2", "ep-1")
    reg.set_tag(m, "team", "ml")


def _registered(pkg: Any, alias: str | None = None, parent: int | None = None,
                tags: dict[str, str] | None = None) -> dict[str, Any]:
    manifest = pkg.manifest
    return {"runtime": manifest.runtime.name, "files": len(manifest.files), "parent": parent,
            "tags": tags or {}, "alias": alias}


@dataclass(frozen=True)
class Case:
    id: str
    act: Call
    action: str
    version: int | None
    alias: str | None
    before: Any
    after: Any  # or a function of the packages
    prep: Call | None = None
    forced: bool = False


CASES = [
    Case("register", lambda r, p, m: r.register(p.compatible, name=m), "version.register", 4,
         None, None, lambda p: _registered(p.compatible)),
    Case("register-path", lambda r, p, m: r.register(p.base_dir, name=m), "version.register",
         4, None, None, lambda p: _registered(p.base)),
    Case("register-alias-parent-tags",
         lambda r, p, m: r.register(p.compatible, name=m, alias="staging", parent=1,
                                    tags={"k": "v"}),
         "version.register", 4, "staging", None,
         lambda p: _registered(p.compatible, "staging", 1, {"k": "v"})),
    Case("register-moves-alias",
         lambda r, p, m: r.register(p.compatible, name=m, alias="production"),
         "version.register", 4, "production", None,
         lambda p: _registered(p.compatible, "production")),
    Case("register-forced",
         lambda r, p, m: r.register(p.relabelled, name=m, alias="production", force=True),
         "version.register", 4, "production", None,
         lambda p: _registered(p.relabelled, "production"), forced=True),
    Case("set-alias-new", lambda r, p, m: r.set_alias(m, "staging", 2), "alias.set", 2,
         "staging", None, {"version": 2}),
    Case("set-alias-move", lambda r, p, m: r.set_alias(m, "production", 2), "alias.set", 2,
         "production", {"version": 1}, {"version": 2}),
    Case("set-alias-forced", lambda r, p, m: r.set_alias(m, "production", 3, force=True),
         "alias.set", 3, "production", {"version": 1}, {"version": 3}, forced=True),
    Case("delete-alias", lambda r, p, m: r.delete_alias(m, "production"), "alias.delete", 1,
         "production", {"version": 1}, None),
    Case("set-model-tag", lambda r, p, m: r.set_tag(m, "owner", "ana"), "tag.set", None,
         None, None, {"owner": "ana"}),
    Case("overwrite-model-tag", lambda r, p, m: r.set_tag(m, "team", "risk"), "tag.set",
         None, None, {"team": "ml"}, {"team": "risk"}),
    Case("delete-model-tag", lambda r, p, m: r.delete_tag(m, "team"), "tag.delete", None,
         None, {"team": "ml"}, None),
    Case("set-version-tag", lambda r, p, m: r.set_tag(f"{m}/1", "stage", "prod"), "tag.set",
         1, None, None, {"stage": "prod"}),
    Case("overwrite-version-tag", lambda r, p, m: r.set_tag(f"{m}/2", "stage", "prod"),
         "tag.set", 2, None, {"stage": "qa"}, {"stage": "prod"}),
    Case("set-version-tag-by-alias", lambda r, p, m: r.set_tag(f"{m}@production", "a", "b"),
         "tag.set", 1, None, None, {"a": "b"}),
    Case("delete-version-tag", lambda r, p, m: r.delete_tag(f"models:/{m}/2", "stage"),
         "tag.delete", 2, None, {"stage": "qa"}, None),
    Case("describe-model", lambda r, p, m: r.set_description(m, "classifies irises"),
         "model.describe", None, None, None, "classifies irises"),
    Case("redescribe-model", lambda r, p, m: r.set_description(m, "new"), "model.describe",
         None, None, "old", "new", prep=lambda r, p, m: r.set_description(m, "old")),
    Case("describe-version", lambda r, p, m: r.set_description(f"{m}/2", "smaller C"),
         "version.describe", 2, None, None, "smaller C"),
    Case("redescribe-version", lambda r, p, m: r.set_description(f"{m}@production", "new"),
         "version.describe", 1, None, "old", "new",
         prep=lambda r, p, m: r.set_description(f"{m}/1", "old")),
    Case("archive", lambda r, p, m: r.archive(f"{m}/3"), "version.archive", 3, None,
         {"status": "active"}, {"status": "archived"}),
    Case("restore", lambda r, p, m: r.restore(f"{m}/3"), "version.restore", 3, None,
         {"status": "archived"}, {"status": "active"},
         prep=lambda r, p, m: r.archive(f"{m}/3")),
    Case("add-deployment", lambda r, p, m: r.add_deployment(f"{m}/1", "ep-2"),
         "deployment.add", 1, None, None, {"endpoint": "ep-2"}),
    Case("end-deployment", lambda r, p, m: r.end_deployment(f"{m}/2", "ep-1"),
         "deployment.end", 2, None, {"endpoint": "ep-1"}, None),
]


def test_every_mutation_leaves_exactly_one_record(reg: Registry, pkgs: Packages) -> None:
    assert len({c.id for c in CASES}) == len(CASES)  # each case gets a model of its own
    problems: list[str] = []
    for case in CASES:
        m = f"m-{case.id}"
        seed(reg, pkgs, m)
        if case.prep is not None:
            case.prep(reg, pkgs, m)
        before = reg.audit()
        started = datetime.now(UTC)
        case.act(reg, pkgs, m)
        after = reg.audit()
        if len(after) != len(before) + 1 or after[:-1] != before:
            problems.append(f"{case.id}: {len(after) - len(before)} new records "
                            "(or older ones changed)")
            continue
        record = after[-1]
        expected_after = case.after(pkgs) if callable(case.after) else case.after
        got = (record.action, record.actor, record.model, record.version, record.alias,
               record.before, record.after, record.forced)
        want = (case.action, "tester", m, case.version, case.alias, case.before,
                expected_after, case.forced)
        if got != want:
            problems.append(f"{case.id}: got {got}, want {want}")
        if not (record.at.tzinfo is not None and record.at >= started):
            problems.append(f"{case.id}: recorded at {record.at}, called at {started}")
        if reg.audit(model=m, action=case.action)[-1] != record:
            problems.append(f"{case.id}: not found by audit(model=, action=)")
    assert not problems, "\n".join(problems)


def test_audit_filters(reg: Registry, pkgs: Packages) -> None:
    seed(reg, pkgs, "iris")
    seed(reg, pkgs, "other")
    records = reg.audit(model="iris")
    assert [r.action for r in records] == ["version.register"] * 3 + ["deployment.add",
                                                                      "tag.set"]
    assert len(reg.audit()) == 10
    assert [r.version for r in reg.audit(model="iris", action="version.register")] == [1, 2, 3]
    assert reg.audit(limit=2) == records[:2]
    assert reg.audit(model="ghost") == []
    assert reg.audit(since=records[-1].at)[0] == records[-1]
    assert records[0].to_dict()["after"]["alias"] == "production"
    assert [r.id for r in reg.audit()] == sorted(r.id for r in reg.audit())


FAILURES: list[tuple[str, Call, type[Exception]]] = [
    ("unknown-model-alias", lambda r, p, m: r.set_alias("ghost", "production", 1),
     NotFoundError),
    ("unknown-version-alias", lambda r, p, m: r.set_alias(m, "production", 9), NotFoundError),
    ("unknown-alias-delete", lambda r, p, m: r.delete_alias(m, "ghost"), NotFoundError),
    ("unknown-model-tag", lambda r, p, m: r.set_tag("ghost", "k", "v"), NotFoundError),
    ("unknown-version-tag", lambda r, p, m: r.set_tag(f"{m}/9", "k", "v"), NotFoundError),
    ("unknown-alias-tag", lambda r, p, m: r.delete_tag(f"{m}@ghost", "k"), NotFoundError),
    ("unknown-model-describe", lambda r, p, m: r.set_description("ghost", "x"),
     NotFoundError),
    ("unknown-version-describe", lambda r, p, m: r.set_description(f"{m}/9", "x"),
     NotFoundError),
    ("unknown-archive", lambda r, p, m: r.archive(f"{m}/9"), NotFoundError),
    ("unknown-restore", lambda r, p, m: r.restore("ghost/1"), NotFoundError),
    ("unknown-deploy", lambda r, p, m: r.add_deployment(f"{m}/9", "ep"), NotFoundError),
    ("unknown-undeploy", lambda r, p, m: r.end_deployment("ghost/1", "ep"), NotFoundError),
    ("unknown-parent", lambda r, p, m: r.register(p.base, name=m, parent=9), NotFoundError),
    ("archive-aliased", lambda r, p, m: r.archive(f"{m}/1"), ConflictError),
    ("archive-deployed", lambda r, p, m: r.archive(f"{m}/2"), ConflictError),
    ("incompatible-alias", lambda r, p, m: r.set_alias(m, "production", 3),
     IncompatibleSignatureError),
    ("incompatible-register",
     lambda r, p, m: r.register(p.narrowed_dtype, name=m, alias="production"),
     IncompatibleSignatureError),
    ("missing-model-tag", lambda r, p, m: r.delete_tag(m, "nope"), RegistryError),
    ("missing-version-tag", lambda r, p, m: r.delete_tag(f"{m}/1", "nope"), RegistryError),
    ("no-active-deployment", lambda r, p, m: r.end_deployment(f"{m}/1", "ep-1"),
     RegistryError),
    ("set-latest", lambda r, p, m: r.set_alias(m, "latest", 1), RegistryError),
    ("register-latest", lambda r, p, m: r.register(p.base, name=m, alias="latest"),
     RegistryError),
    ("bad-alias", lambda r, p, m: r.set_alias(m, "Prod", 1), RegistryError),
    ("bad-name", lambda r, p, m: r.register(p.base, name="../etc"), RegistryError),
    ("bad-tag-key", lambda r, p, m: r.set_tag(m, "", "v"), RegistryError),
    ("bad-register-tag", lambda r, p, m: r.register(p.base, name=m, tags={"": "v"}),
     RegistryError),
    ("long-tag-value", lambda r, p, m: r.set_tag(m, "k", "v" * 513), RegistryError),
    ("long-register-tag", lambda r, p, m: r.register(p.base, name=m, tags={"k": "v" * 513}),
     RegistryError),
    ("long-endpoint", lambda r, p, m: r.add_deployment(f"{m}/1", "e" * 129), RegistryError),
    ("no-version-in-ref", lambda r, p, m: r.archive(m), RegistryError),
    ("not-a-package", lambda r, p, m: r.register(42, name=m), RegistryError),
    ("not-a-package-dir", lambda r, p, m: r.register(p.base_dir / "model.onnx", name=m),
     PackageError),
]


def test_failed_calls_leave_no_record(reg: Registry, pkgs: Packages) -> None:
    m = "iris"
    seed(reg, pkgs, m)

    def state() -> tuple[Any, ...]:
        return (reg.audit(), reg.list_models(), reg.search_versions(include_archived=True),
                [reg.lineage(f"{m}/{n}").deployments for n in (1, 2, 3)])

    before = state()
    problems: list[str] = []
    for case_id, act, error in FAILURES:
        try:
            act(reg, pkgs, m)
        except error:
            pass
        except Exception as exc:
            problems.append(f"{case_id}: raised {type(exc).__name__}: {exc}, "
                            f"not {error.__name__}")
        else:
            problems.append(f"{case_id}: did not raise {error.__name__}")
        if state() != before:
            problems.append(f"{case_id}: changed the registry or its audit log")
            before = state()
    assert not problems, "\n".join(problems)


def test_alias_to_archived_version_adds_no_record(reg: Registry, pkgs: Packages) -> None:
    seed(reg, pkgs, "iris")
    reg.set_alias("iris", "production", 2)
    reg.archive("iris/1")
    before = reg.audit()
    with pytest.raises(ConflictError, match="archived"):
        reg.set_alias("iris", "production", 1)
    assert reg.audit() == before
    assert reg.get_model("iris").aliases == {"production": 2}


def test_registry_offers_no_way_to_change_the_audit_log() -> None:
    public = {name for name, _ in inspect.getmembers(Registry) if not name.startswith("_")}
    assert {n for n in public if "audit" in n} == {"audit"}
    writes = {n for n in public if n.split("_")[0] in (
        "update", "delete", "remove", "purge", "clear", "truncate", "drop", "edit", "set",
        "rewrite", "prune", "reset")}
    assert writes == {"delete_alias", "delete_tag", "set_alias", "set_tag", "set_description"}
    assert set(inspect.signature(Registry.audit).parameters) == {
        "self", "model", "action", "since", "limit"}


def test_audit_records_are_read_only_snapshots(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base)
    record = reg.audit()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.action = "forged"  # type: ignore[misc]
    assert reg.audit()[0].action == "version.register"
