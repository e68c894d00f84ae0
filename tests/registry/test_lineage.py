"""Lineage (data, code, params, parents, what came after), fetch + load, garbage collection."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import shipyard
from registry.helpers import FEATURES, MODEL, Packages, stored_blobs
from shipyard.errors import ConflictError
from shipyard.packaging import MANIFEST_FILE, prepare
from shipyard.registry import Registry
from shipyard.runtimes.lineage import data_fingerprint
from shipyard.settings import Settings


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=tester", "-c", "user.email=t@example.com",
                           "-c", "commit.gpgsign=false", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def code_packages(pkgs: Packages,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The base model packaged in a clean git work tree, a dirty one, and outside git."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: code lineage cannot be recorded")
    repo = tmp_path_factory.mktemp("repo")
    nowhere = tmp_path_factory.mktemp("no-git")
    out: dict[str, object] = {}
    with pytest.MonkeyPatch.context() as mp:
        # git must not find a repository above these directories (e.g. the project's own)
        mp.setenv("GIT_CEILING_DIRECTORIES", f"{repo.parent}{os.pathsep}{nowhere.parent}")
        _git(repo, "init", "-q")
        (repo / "train.py").write_text("print('train')\n")
        _git(repo, "add", "train.py")
        _git(repo, "commit", "-q", "-m", "train")
        out["commit"] = _git(repo, "rev-parse", "HEAD")
        mp.chdir(repo)
        out["clean"] = shipyard.package(pkgs.model, pkgs.x, name=MODEL)
        (repo / "train.py").write_text("print('train harder')\n")
        out["dirty"] = shipyard.package(pkgs.model, pkgs.x, name=MODEL)
        mp.chdir(nowhere)
        out["outside"] = shipyard.package(pkgs.model, pkgs.x, name=MODEL)
    yield out


def test_lineage_records_data_code_params_metrics(reg: Registry, pkgs: Packages,
                                                  code_packages: dict[str, object]) -> None:
    reg.register(code_packages["clean"])
    reg.register(code_packages["dirty"])
    reg.register(code_packages["outside"])
    commit = code_packages["commit"]
    assert reg.lineage("iris/1").version.code == {"git_commit": commit, "dirty": False}
    assert reg.lineage("iris/2").version.code == {"git_commit": commit, "dirty": True}
    assert reg.lineage("iris/3").version.code is None

    reg.register(pkgs.base)
    lineage = reg.lineage("iris/4")
    data = lineage.version.data
    assert data is not None
    expected = data_fingerprint(prepare(pkgs.x, pkgs.base.signature))
    assert data == expected
    assert len(data["sha256"]) == 64 and data["rows"] == 150
    assert data["columns"] == sorted(FEATURES)
    assert lineage.version.params == {"C": 1.0, "max_iter": 1000}
    assert lineage.version.metrics == {"accuracy": 0.96, "f1": 0.95}
    doc = lineage.to_dict()
    assert doc["uri"] == "models:/iris/4"
    assert doc["upstream"]["data"] == expected
    assert doc["upstream"]["params"] == {"C": 1.0, "max_iter": 1000}
    assert doc["metrics"] == {"accuracy": 0.96, "f1": 0.95}

    # other training data, other fingerprint
    reg.register(pkgs.removed_column)
    other = reg.lineage("iris/5").version.data
    assert other is not None and other["sha256"] != data["sha256"]
    assert other["columns"] == sorted(set(FEATURES) - {"petal_width"})


def test_lineage_parents_children_and_deployments(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base)  # 1
    assert reg.register(pkgs.compatible, parent=1).parent_version == 1  # 2
    reg.register(pkgs.base, parent=2)  # 3
    reg.register(pkgs.base, parent=1)  # 4
    reg.register(pkgs.base)  # 5, unrelated

    assert reg.lineage("iris/3").parents == ("iris/2", "iris/1")
    assert reg.lineage("iris/4").parents == ("iris/1",)
    assert reg.lineage("iris/1").parents == ()
    assert sorted(reg.lineage("iris/1").children) == ["iris/2", "iris/3", "iris/4"]
    assert reg.lineage("iris/2").children == ("iris/3",)
    assert reg.lineage("iris/5").children == () and reg.lineage("iris/5").parents == ()

    reg.add_deployment("iris/3", "api-eu")
    reg.add_deployment("iris/3", "api-us")
    reg.end_deployment("iris/3", "api-eu")
    deps = reg.lineage("iris/3").deployments
    assert [(d["endpoint"], d["status"]) for d in deps] == [("api-eu", "ended"),
                                                             ("api-us", "active")]
    assert all(d["since"].tzinfo is not None for d in deps)
    assert reg.lineage("iris/2").deployments == ()
    doc = reg.lineage("models:/iris/3").to_dict()
    assert doc["upstream"]["parents"] == ["iris/2", "iris/1"]
    assert [d["endpoint"] for d in doc["downstream"]["deployments"]] == ["api-eu", "api-us"]
    json.dumps(doc)  # JSON-ready
    assert reg.lineage("iris/1").to_dict()["downstream"]["versions"] == list(
        reg.lineage("iris/1").children)


def test_fetch_and_load_predict_like_the_original(reg: Registry, pkgs: Packages,
                                                  tmp_path: Path) -> None:
    reg.register(pkgs.relabelled)
    reg.register(pkgs.base, alias="production")
    loaded = shipyard.load("models:/iris@production", registry=reg)
    prediction = loaded.predict(pkgs.x)
    np.testing.assert_array_equal(prediction.predictions, pkgs.model.predict(pkgs.x))
    np.testing.assert_allclose(prediction.probabilities, pkgs.model.predict_proba(pkgs.x),
                               atol=1e-4)
    assert loaded.path.is_relative_to(tmp_path / "home" / "cache")
    assert shipyard.load("models:/iris/1", registry=reg).predict(pkgs.x.head()).classes == [
        "setosa", "versicolor", "virginica"]

    dest = reg.fetch("iris/2", tmp_path / "fetched")
    assert dest == tmp_path / "fetched"
    for path, data in pkgs.base.files.items():
        assert (dest / path).read_bytes() == data
    manifest = json.loads((dest / MANIFEST_FILE).read_text())
    assert manifest["files"] == [f.to_dict() for f in pkgs.base.manifest.files]
    assert reg.fetch("iris@production") == reg.fetch("iris/2")  # cached


def test_fetch_into_a_directory_holding_another_version(reg: Registry, pkgs: Packages,
                                                        tmp_path: Path) -> None:
    """Refused, and the directory keeps the version it holds (issue 13: fetch deleted it)."""
    reg.register(pkgs.base)
    reg.register(pkgs.relabelled)
    dest = tmp_path / "model"
    reg.fetch("iris/1", dest)
    with pytest.raises(ConflictError, match="holds a different package"):
        reg.fetch("iris/2", dest)
    assert shipyard.load(dest).predict(pkgs.x.head()).classes != [
        "setosa", "versicolor", "virginica"]
    again = reg.fetch("iris/2", tmp_path / "model-2")
    manifest = json.loads((again / MANIFEST_FILE).read_text())
    assert manifest["signature"]["class_labels"] == ["setosa", "versicolor", "virginica"]


def test_fetch_under_another_name(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, name="flowers", alias="production")
    loaded = shipyard.load("models:/flowers@production", registry=reg)
    assert loaded.name == "flowers"
    np.testing.assert_array_equal(loaded.predict(pkgs.x).predictions,
                                  pkgs.model.predict(pkgs.x))


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_gc_removes_only_old_unreferenced_blobs(reg: Registry, pkgs: Packages,
                                                tmp_path: Path) -> None:
    reg.register(pkgs.base)
    reg.register(pkgs.compatible)
    reg.archive("iris/2")  # archived versions still hold their blobs
    referenced = dict(stored_blobs(tmp_path))
    for path in referenced.values():
        _age(path, 10 * 86400)
    old_file, new_file = tmp_path / "old.bin", tmp_path / "new.bin"
    old_file.write_bytes(b"left behind by a crashed registration")
    new_file.write_bytes(b"a registration still in flight")
    old_sha = reg.artifacts.put_file(old_file)
    new_sha = reg.artifacts.put_file(new_file)
    _age(stored_blobs(tmp_path)[old_sha], 2 * 3600)

    dry = reg.gc(grace_seconds=3600, dry_run=True)
    assert (dry.deleted, dry.bytes_freed) == (1, old_file.stat().st_size)
    assert old_sha in stored_blobs(tmp_path)

    report = reg.gc(grace_seconds=3600)
    assert (report.deleted, report.bytes_freed) == (1, old_file.stat().st_size)
    assert report.kept == len(referenced) + 1
    assert set(stored_blobs(tmp_path)) == set(referenced) | {new_sha}

    # every registered version is still complete
    for ref in ("iris/1", "iris/2"):
        loaded = shipyard.load(reg.fetch(ref, tmp_path / "check" / ref.replace("/", "-")))
        assert len(loaded.predict(pkgs.x.head())) == 5

    assert reg.gc(grace_seconds=0).deleted == 1  # no grace: the in-flight blob goes too
    assert set(stored_blobs(tmp_path)) == set(referenced)


def test_registry_over_an_fsspec_store(backend: str, pkgs: Packages, tmp_path: Path) -> None:
    """The same registry over a remote-style store (fsspec's in-memory filesystem)."""
    reg = Registry(backend, artifacts=f"memory://shipyard-test-{uuid.uuid4().hex}",
                   actor="tester", auto_upgrade=True,
                   settings=Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")}))
    try:
        assert type(reg.artifacts).__name__ == "FsspecArtifactStore"
        reg.register(pkgs.base)
        reg.register(pkgs.base_dir, alias="production")
        shas = {f.sha256 for f in pkgs.base.manifest.files}
        assert {sha for sha, _, _ in reg.artifacts.blobs()} == shas  # stored once
        loaded = shipyard.load("models:/iris@production", registry=reg)
        np.testing.assert_array_equal(loaded.predict(pkgs.x).predictions,
                                      pkgs.model.predict(pkgs.x))
        stray = tmp_path / "stray.bin"
        stray.write_bytes(b"unreferenced")
        stray_sha = reg.artifacts.put_file(stray)
        assert reg.gc(grace_seconds=3600).deleted == 0  # too young
        report = reg.gc(grace_seconds=0)
        assert (report.deleted, report.bytes_freed) == (1, len(b"unreferenced"))
        assert not reg.artifacts.has(stray_sha)
        assert {sha for sha, _, _ in reg.artifacts.blobs()} == shas
    finally:
        for sha in {f.sha256 for f in pkgs.base.manifest.files}:
            reg.artifacts.delete(sha)
        reg.close()
