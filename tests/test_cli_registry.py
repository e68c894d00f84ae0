"""`shipyard models ...`, `shipyard audit`, `shipyard db ...` and `shipyard gc` end to end."""

import json
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import shipyard
from shipyard.cli.main import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for var in ("SHIPYARD_REGISTRY_URL", "SHIPYARD_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def package_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    root = tmp_path_factory.mktemp("pkgs")
    good = shipyard.package(LogisticRegression(max_iter=500).fit(x, y), x, name="iris",
                            metrics={"accuracy": 0.97}).save(root / "good")
    fewer = x.drop(columns=["petal width (cm)"])
    bad = shipyard.package(LogisticRegression(max_iter=500).fit(fewer, y), fewer,
                           name="iris").save(root / "bad")
    return good, bad


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}"
    return result.output


def test_register_list_show_alias_lineage_audit(home: Path,
                                                package_dirs: tuple[Path, Path]) -> None:
    good, _ = package_dirs
    assert "models:/iris/1" in invoke("models", "register", str(good), "--alias", "production",
                                      "--tag", "team=risk")
    created = json.loads(invoke("models", "register", str(good), "--parent", "1", "--json"))
    assert created["version"] == 2 and created["parent_version"] == 1

    listed = json.loads(invoke("models", "list", "--json"))
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [
        ("iris", 2, {"production": 1})]
    assert json.loads(invoke("models", "list", "--alias", "staging", "--json")) == []

    invoke("models", "alias", "iris", "production", "2")
    shown = json.loads(invoke("models", "show", "iris@production", "--json"))
    assert shown["version"] == 2 and shown["manifest"]["name"] == "iris"
    whole = json.loads(invoke("models", "show", "iris", "--json"))
    assert [v["version"] for v in whole["versions"]] == [2, 1]

    found = json.loads(invoke("models", "versions", "iris", "--tag", "team=risk", "--json"))
    assert [v["version"] for v in found] == [1]
    found = json.loads(invoke("models", "versions", "--metric", "accuracy>0.9", "--json"))
    assert len(found) == 2

    lineage = json.loads(invoke("models", "lineage", "iris/1", "--json"))
    assert lineage["downstream"]["versions"] == ["iris/2"]
    assert lineage["upstream"]["data"]["rows"] == 150

    records = json.loads(invoke("audit", "--model", "iris", "--json"))
    assert [r["action"] for r in records] == ["version.register", "version.register",
                                              "alias.set"]
    assert "alias.set" in invoke("audit")


def test_tag_describe_archive_restore(home: Path, package_dirs: tuple[Path, Path]) -> None:
    good, _ = package_dirs
    invoke("models", "register", str(good))
    invoke("models", "register", str(good))
    invoke("models", "tag", "iris/1", "stage=old", "owner=me")
    invoke("models", "tag", "iris/1", "--delete", "owner")
    invoke("models", "describe", "iris", "the iris model")
    invoke("models", "archive", "iris/1")
    shown = json.loads(invoke("models", "show", "iris/1", "--json"))
    assert shown["status"] == "archived" and shown["tags"] == {"stage": "old"}
    assert json.loads(invoke("models", "show", "iris@latest", "--json"))["version"] == 2
    invoke("models", "restore", "iris/1")
    assert json.loads(invoke("models", "show", "iris", "--json"))["description"] == \
        "the iris model"


def test_errors_are_clear_and_exit_1(home: Path, package_dirs: tuple[Path, Path]) -> None:
    good, bad = package_dirs
    invoke("models", "register", str(good), "--alias", "production")
    invoke("models", "register", str(bad))
    cases = [
        (["models", "show", "nope/1"], "unknown model 'nope'"),
        (["models", "show", "models:/iris/abc"], "positive integer"),
        (["models", "alias", "iris", "production", "2"], "petal width (cm)"),
        (["models", "archive", "iris/1"], "alias 'production'"),
        (["models", "register", str(good), "--name", "../evil"], "invalid model name"),
        (["models", "register", str(good), "--tag", "novalue"], "key=value"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code != 0, args
        assert isinstance(result.exception, shipyard.ShipyardError), (args, result.output)
        assert message in str(result.exception), (args, str(result.exception))
    # forced promotion goes through and is audited as forced
    invoke("models", "alias", "iris", "production", "2", "--force")
    forced = json.loads(invoke("audit", "--action", "alias.set", "--json"))
    assert forced[-1]["forced"] is True


def test_db_status_upgrade_and_gc(home: Path, package_dirs: tuple[Path, Path],
                                  tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert "empty" in invoke("db", "status", "--url", url)
    assert "→ 0006" in invoke("db", "upgrade", "--url", url)
    assert "up to date" in invoke("db", "status", "--url", url)
    assert json.loads(invoke("db", "status", "--url", url, "--json")) == {
        "current": "0006", "head": "0006", "up_to_date": True}
    good, _ = package_dirs
    invoke("models", "register", str(good))
    assert "deleted 0 blob(s)" in invoke("gc", "--grace", "0")
