"""Versions: registration, immutability, references, aliases, archive, tags, listing, search."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path

import pytest

import shipyard
from registry.helpers import MODEL, Packages, open_registry, stored_blobs, with_metadata
from shipyard.errors import ConflictError, NotFoundError, RegistryError
from shipyard.registry import Registry


def test_register_numbers_versions_from_one(reg: Registry, pkgs: Packages) -> None:
    first = reg.register(pkgs.base_dir)  # a package directory
    second = reg.register(pkgs.base)  # an in-memory Package
    third = reg.register(str(pkgs.base_dir))
    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert first.name == MODEL and first.uri == "models:/iris/1"
    assert first.status == "active" and first.created_by == "tester"
    assert first.runtime == pkgs.base.manifest.runtime.name
    assert first.metrics == {"accuracy": 0.96, "f1": 0.95}
    assert first.params == {"C": 1.0, "max_iter": 1000}
    model = reg.get_model(MODEL)
    assert model.latest_version == 3 and model.versions == 3


def test_register_under_another_name(reg: Registry, pkgs: Packages) -> None:
    version = reg.register(pkgs.base, name="flowers")
    assert version.uri == "models:/flowers/1"
    assert version.manifest["name"] == "flowers"
    with pytest.raises(NotFoundError, match="'iris'"):
        reg.get_model(MODEL)


def test_versions_are_immutable_and_blobs_stored_once(reg: Registry, pkgs: Packages,
                                                      tmp_path: Path) -> None:
    shas = {f.sha256 for f in pkgs.base.manifest.files}
    v1 = reg.register(pkgs.base)
    assert set(stored_blobs(tmp_path)) == shas
    v2 = reg.register(pkgs.base)
    v3 = reg.register(pkgs.base_dir)
    # the same package again is a new version, not an overwrite ...
    assert (v1.version, v2.version, v3.version) == (1, 2, 3)
    assert reg.get_version("iris/1").created_at == v1.created_at
    assert reg.get_version("iris/1").manifest == v1.manifest
    # ... and its files are stored once
    assert set(stored_blobs(tmp_path)) == shas
    reg.register(pkgs.compatible)
    both = shas | {f.sha256 for f in pkgs.compatible.manifest.files}
    assert set(stored_blobs(tmp_path)) == both
    assert len(stored_blobs(tmp_path)) < len(shas) + len(pkgs.compatible.manifest.files), \
        "the identical input example must be shared between the packages"


def test_get_version_by_number_or_alias(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base)
    reg.register(pkgs.compatible, alias="production")
    reg.register(pkgs.base)
    for ref in ["models:/iris/2", "iris/2", "iris@production", "models:/iris@production"]:
        got = reg.get_version(ref)
        assert (got.version, got.metrics, got.aliases) == (
            2, {"accuracy": 0.85}, ("production",)), ref
        assert reg.resolve(ref) == got
    assert reg.get_version("iris/1").version == 1


LATEST = ["iris", "iris@latest", "models:/iris@latest", "models:/iris"]


def _latest(reg: Registry) -> set[int]:
    return {reg.get_version(ref).version for ref in LATEST}


def test_latest_skips_archived_versions(reg: Registry, pkgs: Packages) -> None:
    for _ in range(3):
        reg.register(pkgs.base)
    assert _latest(reg) == {3}
    reg.archive("iris/3")
    assert _latest(reg) == {2}
    reg.archive("iris/2")
    assert _latest(reg) == {1}
    assert reg.get_version("iris/3").status == "archived"  # still readable by number
    reg.archive("iris/1")
    for ref in LATEST:
        with pytest.raises(NotFoundError, match="no active version"):
            reg.get_version(ref)
    reg.restore("iris/2")
    assert _latest(reg) == {2}


def test_aliases_set_move_delete(reg: Registry, pkgs: Packages) -> None:
    for _ in range(3):
        reg.register(pkgs.base)
    reg.set_alias(MODEL, "production", 1)
    moved = reg.set_alias(MODEL, "staging", 3)
    assert moved.version == 3 and moved.aliases == ("staging",)
    assert reg.get_model(MODEL).aliases == {"production": 1, "staging": 3}
    reg.set_alias(MODEL, "production", 3)
    assert reg.get_version("iris@production").version == 3
    assert reg.get_version("iris/3").aliases == ("production", "staging")
    assert reg.get_version("iris/1").aliases == ()
    reg.delete_alias(MODEL, "staging")
    assert reg.get_model(MODEL).aliases == {"production": 3}
    with pytest.raises(NotFoundError, match="staging"):
        reg.get_version("iris@staging")


def test_aliases_are_per_model(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, name="a", alias="production")
    reg.register(pkgs.base, name="b")
    reg.register(pkgs.base, name="b", alias="production")
    assert reg.get_version("a@production").version == 1
    assert reg.get_version("b@production").version == 2
    reg.delete_alias("a", "production")
    assert reg.get_version("b@production").version == 2


def test_archive_refused_while_alias_points_at_version(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, alias="production")
    reg.register(pkgs.base)
    with pytest.raises(ConflictError, match="alias 'production'"):
        reg.archive("iris/1")
    assert reg.get_version("iris/1").status == "active"
    reg.set_alias(MODEL, "production", 2)
    archived = reg.archive("iris/1")
    assert archived.status == "archived"
    with pytest.raises(ConflictError, match="archived"):
        reg.set_alias(MODEL, "production", 1)
    assert reg.get_version("iris@production").version == 2


def test_archive_refused_while_deployed(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base)
    reg.register(pkgs.base)
    reg.add_deployment("iris/1", "fraud-api")
    with pytest.raises(ConflictError, match="deployment on 'fraud-api'"):
        reg.archive("iris/1")
    reg.end_deployment("iris/1", "fraud-api")
    assert reg.archive("iris/1").status == "archived"


def test_restore_makes_version_active_again(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base)
    reg.register(pkgs.base)
    reg.archive("iris/2")
    assert reg.get_version(MODEL).version == 1
    restored = reg.restore("models:/iris/2")
    assert restored.status == "active"
    assert reg.get_version(MODEL).version == 2
    assert reg.set_alias(MODEL, "production", 2).aliases == ("production",)


def test_tags_on_models_and_versions(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, tags={"stage": "qa"})
    reg.register(pkgs.base, alias="production")
    assert reg.get_version("iris/1").tags == {"stage": "qa"}
    reg.set_tag(MODEL, "team", "fraud")
    reg.set_tag(MODEL, "team", "risk")  # overwrite
    reg.set_tag("iris/1", "stage", "prod")
    reg.set_tag("iris@production", "owner", "ana")
    assert reg.get_model(MODEL).tags == {"team": "risk"}
    assert reg.get_version("iris/1").tags == {"stage": "prod"}
    assert reg.get_version("iris/2").tags == {"owner": "ana"}
    reg.delete_tag("iris/1", "stage")
    reg.delete_tag(MODEL, "team")
    assert reg.get_version("iris/1").tags == {}
    assert reg.get_model(MODEL).tags == {}
    assert reg.get_version("iris/2").tags == {"owner": "ana"}


def test_descriptions_on_models_and_versions(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, description="first try")
    reg.register(with_metadata(pkgs.base, description="from the package"))
    assert reg.get_version("iris/1").description == "first try"
    assert reg.get_version("iris/2").description == "from the package"
    assert reg.get_model(MODEL).description is None
    reg.set_description(MODEL, "Iris species classifier")
    reg.set_description("iris/1", "baseline")
    assert reg.get_model(MODEL).description == "Iris species classifier"
    assert reg.get_version("iris/1").description == "baseline"
    assert reg.get_version("iris/2").description == "from the package"


def test_list_models_filters(reg: Registry, pkgs: Packages) -> None:
    for name in ["fraud_a", "fraudxa", "churn"]:
        reg.register(pkgs.base, name=name)
    reg.set_tag("fraud_a", "team", "risk")
    reg.set_tag("fraud_a", "tier", "1")
    reg.set_tag("fraudxa", "team", "risk")
    reg.set_tag("churn", "team", "growth")
    reg.set_alias("churn", "production", 1)

    def names(**kw: object) -> list[str]:
        return [m.name for m in reg.list_models(**kw)]  # type: ignore[arg-type]

    assert names() == ["churn", "fraud_a", "fraudxa"]
    assert names(tags={"team": "risk"}) == ["fraud_a", "fraudxa"]
    assert names(tags={"team": "risk", "tier": "1"}) == ["fraud_a"]
    assert names(tags={"team": "nobody"}) == []
    assert names(alias="production") == ["churn"]
    assert names(query="fraud") == ["fraud_a", "fraudxa"]
    assert names(query="d_a") == ["fraud_a"], "'_' must be literal, not a LIKE wildcard"
    assert names(query="fraud", tags={"tier": "1"}) == ["fraud_a"]
    model = reg.list_models(alias="production")[0]
    assert model.aliases == {"production": 1} and model.tags == {"team": "growth"}


@pytest.fixture
def scored(reg: Registry, pkgs: Packages) -> Registry:
    """iris/1..4 with accuracy 0.8, 0.9, 0.95, 0.99; tags; an alias; iris/4 archived."""
    for i, acc in enumerate([0.8, 0.9, 0.95, 0.99], start=1):
        reg.register(with_metadata(pkgs.base, metrics={"accuracy": acc, "loss": 1 - acc}),
                     tags={"parity": "odd" if i % 2 else "even"})
    reg.register(pkgs.base, name="other")
    reg.set_alias(MODEL, "production", 2)
    reg.archive("iris/4")
    return reg


def _numbers(versions: list) -> list[int]:  # type: ignore[type-arg]
    return [v.version for v in versions]


METRIC_FILTERS = [
    ("accuracy>=0.9", [3, 2]),
    ("accuracy >= 0.9", [3, 2]),
    ("accuracy>0.9", [3]),
    ("accuracy<0.9", [1]),
    ("accuracy<=0.9", [2, 1]),
    ("accuracy!=0.9", [3, 1]),
    ("accuracy==0.95", [3]),
    ("accuracy=0.95", [3]),
    ("loss>0.15", [1]),
    ("accuracy>=9e-1", [3, 2]),
    ("f1>0", []),  # nobody has an f1
]


def test_search_versions_by_metric(scored: Registry) -> None:
    got = {metric: _numbers(scored.search_versions(MODEL, metric=metric))
           for metric, _ in METRIC_FILTERS}
    assert got == dict(METRIC_FILTERS)


def test_search_versions_filters(scored: Registry) -> None:
    assert _numbers(scored.search_versions(MODEL)) == [3, 2, 1]
    assert _numbers(scored.search_versions(MODEL, include_archived=True)) == [4, 3, 2, 1]
    assert _numbers(scored.search_versions(MODEL, tags={"parity": "odd"})) == [3, 1]
    assert _numbers(scored.search_versions(MODEL, tags={"parity": "even"},
                                           include_archived=True)) == [4, 2]
    assert _numbers(scored.search_versions(MODEL, alias="production")) == [2]
    assert _numbers(scored.search_versions(MODEL, alias="production",
                                           metric="accuracy>0.9")) == []
    everything = scored.search_versions()
    assert [(v.name, v.version) for v in everything] == [
        ("iris", 3), ("iris", 2), ("iris", 1), ("other", 1)]
    assert scored.search_versions("ghost") == []
    assert _numbers(scored.search_versions(MODEL, metric="accuracy>0.95",
                                           include_archived=True)) == [4]


def test_search_versions_by_time_range(reg: Registry, pkgs: Packages) -> None:
    v1, v2, v3 = (reg.register(pkgs.base) for _ in range(3))
    assert v1.created_at < v2.created_at < v3.created_at
    assert _numbers(reg.search_versions(MODEL, since=v2.created_at)) == [3, 2]
    assert _numbers(reg.search_versions(MODEL, until=v2.created_at)) == [1]
    assert _numbers(reg.search_versions(MODEL, since=v2.created_at,
                                        until=v3.created_at)) == [2]
    # the bounds are instants: another time zone means the same thing
    tz = timezone(timedelta(hours=5, minutes=30))
    assert _numbers(reg.search_versions(MODEL, since=v2.created_at.astimezone(tz))) == [3, 2]
    later = v3.created_at + timedelta(seconds=1)
    assert reg.search_versions(MODEL, since=later) == []
    assert _numbers(reg.search_versions(MODEL, until=later)) == [3, 2, 1]


def test_fetch_never_overwrites_a_directory_that_is_not_a_package(reg: Registry, pkgs: Packages,
                                                                   tmp_path: Path) -> None:
    reg.register(pkgs.base_dir)
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(RegistryError, match="not a shipyard package"):
        reg.fetch("iris/1", precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (reg.fetch("iris/1", empty) / "shipyard.json").is_file()


def test_fetched_files_are_copies_not_links_to_blobs(reg: Registry, pkgs: Packages,
                                                     tmp_path: Path) -> None:
    reg.register(pkgs.base_dir)
    fetched = reg.fetch("iris/1", tmp_path / "copy")
    model_file = fetched / "model.onnx"
    model_file.write_bytes(b"edited")  # a user scribbles on the fetched copy
    again = reg.fetch("iris/1", tmp_path / "fresh")
    assert (again / "model.onnx").read_bytes() != b"edited"
    shipyard.load(again)  # the stored blob still verifies


def test_a_damaged_cached_fetch_is_fetched_again(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base_dir)
    cached = reg.fetch("iris/1")  # the default cache under $SHIPYARD_HOME
    (cached / "model.onnx").write_bytes(b"damaged")
    again = reg.fetch("iris/1")
    assert again == cached
    shipyard.load(again)  # every hash matches again: the damaged copy was replaced


def test_archive_and_restore_refuse_no_ops_without_audit(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base_dir)
    reg.register(pkgs.base_dir)
    reg.archive("iris/1")
    before = len(reg.audit())
    with pytest.raises(ConflictError, match="already archived"):
        reg.archive("iris/1")
    with pytest.raises(ConflictError, match="already active"):
        reg.restore("iris/2")
    assert len(reg.audit()) == before


def test_overlong_metric_keys_and_actors_are_clear_errors(reg: Registry, pkgs: Packages,
                                                          backend: str, tmp_path: Path) -> None:
    long_key = with_metadata(pkgs.base, metrics={"m" * 200: 0.5})
    with pytest.raises(RegistryError, match="invalid tag key"):
        reg.register(long_key)
    assert reg.list_models() == []
    with pytest.raises(RegistryError, match="invalid actor"):
        open_registry(backend, tmp_path / "other", actor="a" * 300)
