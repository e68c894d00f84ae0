"""No code a package names runs without trust: not on load, not in the conformance suite,
not in `inspect` or `models register` (which never import it at all)."""

import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipyard
from shipyard import UntrustedCodeError, UntrustedPickleError
from shipyard.cli.main import app
from shipyard.errors import PackageError, RuntimeUnavailableError
from shipyard.runtimes import check_runtime, runtime_class
from shipyard.runtimes.model import load as load_path
from untrusted_packages import command_package, import_package

runner = CliRunner()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "ran"


@pytest.fixture
def evil(tmp_path: Path, target: Path) -> Path:
    return command_package(tmp_path / "evil", target)


def test_load_refuses_a_package_that_names_a_command(evil: Path, target: Path) -> None:
    for load in (shipyard.load, load_path):
        with pytest.raises(UntrustedCodeError) as info:
            load(evil)
        message = str(info.value)
        assert "subprocess:run" in message and "trust=True" in message
        assert "shipyard serve --trust" in message and "trust: true" in message
        with pytest.raises(UntrustedCodeError):
            load(evil, runtime="python")
    with pytest.raises(UntrustedCodeError):
        check_runtime(runtime_class("python"), evil)
    assert not target.exists()


def test_trust_really_is_what_stood_in_the_way(evil: Path, target: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """The control: with trust the named code runs (and is then refused as no model), and
    that trust decision is recorded in the log, naming what ran."""
    with caplog.at_level("WARNING", logger="shipyard.trust"), \
            pytest.raises(RuntimeUnavailableError, match="no predict"):
        shipyard.load(evil, trust=True)
    assert target.exists()
    said = [r.getMessage() for r in caplog.records if r.name == "shipyard.trust"]
    assert said == ["trusted package: the python runtime imports 'subprocess:run' "
                    "(trust=True)"]


def test_torch_runtime_never_imports_a_named_module_without_trust(
        tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"shipyard_evil_{uuid.uuid4().hex}"
    path = import_package(tmp_path / "pkg", tmp_path / "code", module, target)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    with pytest.raises(UntrustedCodeError, match=f"{module}:Net"):
        shipyard.load(path, runtime="torch")
    with pytest.raises(UntrustedCodeError):
        check_runtime(runtime_class("torch"), path)
    assert not target.exists() and module not in sys.modules
    # the control: trusting it imports the module, whose class is then refused
    with pytest.raises(RuntimeUnavailableError, match="is not a torch module"):
        shipyard.load(path, runtime="torch", trust=True)
    assert target.exists()
    monkeypatch.delitem(sys.modules, module)


def test_inspect_and_register_never_import_what_a_package_names(
        evil: Path, target: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for var in ("SHIPYARD_REGISTRY_URL", "SHIPYARD_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    for args in (["inspect", str(evil)], ["inspect", str(evil), "--json"],
                 ["models", "register", str(evil)], ["models", "show", "evil/1", "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{args}: {result.output}"
    assert "subprocess:run" in result.output  # shown, never run
    assert not target.exists()


def test_one_error_family_for_code_that_would_run() -> None:
    assert issubclass(UntrustedPickleError, UntrustedCodeError)
    assert issubclass(UntrustedCodeError, PackageError)
    assert "--trust" in str(UntrustedPickleError("model.joblib"))
