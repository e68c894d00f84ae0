"""Bad input gets a clear error of the right class, and changes nothing."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import shipyard
from registry.helpers import MODEL, Packages, stored_blobs
from shipyard.errors import (
    ManifestError,
    NotFoundError,
    PackageError,
    RegistryError,
    TamperedFileError,
)
from shipyard.registry import ModelRef, Registry, parse_ref

BAD_NAMES = ["fraud/detector", "fraud\\detector", "..", "a..b", "../fraud", "/abs", "",
             "x" * 200, "x" * 129, "bad\x00name", "bad\nname", "fraud\n", "tab\tname",
             " lead", ".hidden", "-dash", "naïve", "fraud detector"]
BAD_ALIASES = ["Production", "prod env", "1st", "", "a" * 65, "prod/1", "prod@x", "é",
               "-prod", "prod\n"]
MALFORMED_REFS = ["models:fraud", "models:/fraud/abc", "models:/fraud/0", "models:/",
                  "models:/a/b/c", "models:/fraud/-1", "models:/fraud/1.5",
                  "models:/fraud/ 1", "models:/fraud/²", "models:/fraud/٣", "models:/fraud@",
                  "models:/fraud@Prod", "models:/fraud/1@prod", "models://fraud", "fraud/",
                  "@prod", "models:/../x/1", "models:/fraud@latest/1"]
BAD_METRICS = ["accuracy", "accuracy >> 0.9", ">= 0.9", "accuracy >= high",
               "accuracy >= 0.9.1", "accuracy => 0.9", "accuracy >= ", "", "acc uracy > 1",
               "accuracy >= 1e", "accuracy >= 0.9; DROP TABLE versions"]


def _names_problem(ref: str) -> tuple[str, ...]:
    """What a malformed reference's error quotes: the reference, or its bad alias."""
    return repr(ref), f"invalid alias {ref.partition('@')[2]!r}"


def _tuple(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def _collect(cases: list[Any], call: Callable[[Any], object], error: type[Exception],
             *, not_error: type[Exception] | None = None,
             message: Callable[[Any], str | tuple[str, ...]] | None = None) -> list[str]:
    """Run ``call`` on each case; describe every case that does not fail as it should."""
    problems = []
    for case in cases:
        try:
            call(case)
        except error as exc:
            if not_error is not None and isinstance(exc, not_error):
                problems.append(f"{case!r}: {type(exc).__name__} is too specific: {exc}")
            elif message is not None and not any(
                    m in str(exc) for m in _tuple(message(case))):
                problems.append(f"{case!r}: message {str(exc)!r} lacks {message(case)!r}")
        except Exception as exc:
            problems.append(f"{case!r}: {type(exc).__name__}: {exc}")
        else:
            problems.append(f"{case!r}: accepted")
    return problems


def test_invalid_model_names(reg: Registry, pkgs: Packages, tmp_path: Path) -> None:
    problems = _collect(BAD_NAMES, lambda n: reg.register(pkgs.base, name=n), RegistryError,
                        not_error=NotFoundError, message=lambda n: "model name")
    problems += _collect(BAD_NAMES, reg.get_model, RegistryError, not_error=NotFoundError)
    problems += _collect(BAD_NAMES, lambda n: reg.set_tag(n, "k", "v"), RegistryError,
                         not_error=NotFoundError)
    assert not problems, "\n".join(problems)
    assert reg.audit() == [] and reg.list_models() == []
    assert stored_blobs(tmp_path) == {}, "nothing is stored for a request refused up front"
    assert reg.register(pkgs.base, name="x" * 128).version == 1  # the longest valid name
    assert reg.register(pkgs.base, name="Fraud-v2.1_b").version == 1


def test_invalid_aliases(reg: Registry, pkgs: Packages, tmp_path: Path) -> None:
    problems = _collect(BAD_ALIASES, lambda a: reg.register(pkgs.base, alias=a),
                        RegistryError, message=lambda a: "invalid alias")
    assert stored_blobs(tmp_path) == {}
    reg.register(pkgs.base)
    problems += _collect([*BAD_ALIASES, "latest"], lambda a: reg.set_alias(MODEL, a, 1),
                         RegistryError, not_error=NotFoundError)
    problems += _collect(BAD_ALIASES, lambda a: reg.delete_alias(MODEL, a), RegistryError,
                         not_error=NotFoundError)
    problems += _collect(["latest"], lambda a: reg.register(pkgs.base, alias=a),
                         RegistryError, message=lambda a: "'latest' is computed")
    assert not problems, "\n".join(problems)
    assert reg.get_model(MODEL).aliases == {}
    assert [r.action for r in reg.audit()] == ["version.register"]
    assert reg.get_model(MODEL).latest_version == 1


def test_unknown_model_version_alias(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, alias="production")
    unknown = {
        "ghost": "unknown model 'ghost'",
        "ghost/1": "unknown model 'ghost'",
        "ghost@production": "unknown model 'ghost'",
        "iris/9": "model 'iris' has no version 9 (latest is 1)",
        "models:/iris/99999999999999999999": "has no version 99999999999999999999",
        "iris@staging": "model 'iris' has no alias 'staging' (aliases: ['production'])",
    }
    problems = _collect(list(unknown), reg.get_version, NotFoundError, message=unknown.get)
    problems += _collect(list(unknown), reg.lineage, NotFoundError, message=unknown.get)
    problems += _collect(list(unknown), reg.fetch, NotFoundError, message=unknown.get)
    problems += _collect([u for u in unknown if "/" in u or "@" in u],
                         lambda u: shipyard.load(f"models:/{u.removeprefix('models:/')}",
                                                 registry=reg),
                         NotFoundError, message=unknown.get)
    calls: dict[str, Callable[[], object]] = {
        "ghost": lambda: reg.get_model("ghost"),
        "'staging'": lambda: reg.delete_alias(MODEL, "staging"),
        "no version 7": lambda: reg.set_alias(MODEL, "staging", 7),
        "no version 1099511627776": lambda: reg.set_alias(MODEL, "staging", 2**40),
        "no version 5": lambda: reg.register(pkgs.base, parent=5),
        "no version 2147483648": lambda: reg.register(pkgs.base, parent=2**31),
    }
    problems += _collect(list(calls), lambda k: calls[k](), NotFoundError,
                         message=lambda k: k)
    assert not problems, "\n".join(problems)
    assert reg.get_model(MODEL).latest_version == 1, "a failed register uses no number"
    assert reg.register(pkgs.base).version == 2


def test_malformed_references(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, name="fraud")
    problems = _collect(MALFORMED_REFS, reg.get_version, RegistryError,
                        not_error=NotFoundError, message=_names_problem)
    uris = [r for r in MALFORMED_REFS if r.startswith("models:")]  # others are paths to load
    problems += _collect(uris, lambda r: shipyard.load(r, registry=reg), RegistryError,
                         not_error=NotFoundError, message=_names_problem)
    problems += _collect(MALFORMED_REFS, lambda r: reg.set_tag(r, "k", "v"), RegistryError,
                         not_error=NotFoundError)
    assert not problems, "\n".join(problems)
    assert reg.audit()[-1].action == "version.register"


def test_reference_parsing() -> None:
    assert parse_ref("models:/fraud/3") == ModelRef("fraud", version=3)
    assert parse_ref("fraud/3") == ModelRef("fraud", version=3)
    assert parse_ref("models:/fraud@production") == ModelRef("fraud", alias="production")
    assert parse_ref("fraud@latest") == ModelRef("fraud", alias="latest")
    assert parse_ref("fraud") == ModelRef("fraud")
    assert ModelRef("fraud", version=3).uri == "models:/fraud/3"
    assert str(ModelRef("fraud", alias="prod")) == "fraud@prod"
    with pytest.raises(RegistryError, match="names no version"):
        parse_ref("fraud", require_version=True)
    with pytest.raises(RegistryError, match="must be a string"):
        parse_ref(3)  # type: ignore[arg-type]
    problems = _collect(MALFORMED_REFS, parse_ref, RegistryError, message=_names_problem)
    assert not problems, "\n".join(problems)


def test_bad_metric_filters(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base)
    problems = _collect(BAD_METRICS, lambda m: reg.search_versions(metric=m), RegistryError,
                        message=lambda m: "malformed metric")
    assert not problems, "\n".join(problems)
    assert len(reg.search_versions(metric="accuracy > 0.5")) == 1  # the table survived


def test_registering_what_is_not_a_package(reg: Registry, pkgs: Packages,
                                           tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    tampered = tmp_path / "tampered"
    shutil.copytree(pkgs.base_dir, tampered)
    with (tampered / "input_example.json").open("a") as fh:
        fh.write(" ")
    with pytest.raises(PackageError, match="not a package directory"):
        reg.register(tmp_path / "missing")
    with pytest.raises(PackageError, match="not a package directory"):
        reg.register(pkgs.base_dir / "model.onnx")
    with pytest.raises(ManifestError, match=r"no shipyard\.json"):
        reg.register(empty)
    with pytest.raises(TamperedFileError, match=r"input_example\.json"):
        reg.register(tampered)
    with pytest.raises(RegistryError, match="cannot register a dict"):
        reg.register({"name": "iris"})
    assert reg.audit() == [] and reg.list_models() == []
    assert stored_blobs(tmp_path) == {}


def test_tag_and_endpoint_limits(reg: Registry, pkgs: Packages) -> None:
    """The same limits on every backend (PostgreSQL enforces column sizes, SQLite does not)."""
    reg.register(pkgs.base)
    reg.set_tag(MODEL, "k" * 128, "v" * 512)
    reg.add_deployment("iris/1", "e" * 128)
    problems = _collect([
        lambda: reg.set_tag(MODEL, "k" * 129, "v"),
        lambda: reg.set_tag(MODEL, "k", "v" * 513),
        lambda: reg.set_tag("iris/1", "k", "v" * 513),
        lambda: reg.register(pkgs.base, tags={"k": "v" * 513}),
        lambda: reg.add_deployment("iris/1", "e" * 129),
        lambda: reg.add_deployment("iris/1", ""),
    ], lambda call: call(), RegistryError, not_error=NotFoundError)
    assert not problems, "\n".join(problems)
    assert reg.get_model(MODEL).tags == {"k" * 128: "v" * 512}
    assert reg.get_model(MODEL).latest_version == 1


def test_invalid_registry_url(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="invalid registry URL"):
        Registry("not a url", artifacts=tmp_path / "blobs")
