"""Signed packages in the registry (issue 17): with ``require_signed`` the registry refuses a
package without a signature by a trusted key, naming the reason; a signed version keeps its
signature (and the exact manifest bytes it signs), so a fetched copy verifies again even
when it was registered under another name. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from registry.helpers import Packages, open_registry
from shipyard.errors import TamperedFileError
from shipyard.packaging import MANIFEST_FILE
from shipyard.packaging.signing import (
    SIGNATURE_FILE,
    BadSignatureError,
    SigningPolicy,
    UnsignedPackageError,
    UntrustedSignerError,
    generate_key,
    sign,
    trusted_keys,
    verify,
)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A trusted key, another key nobody trusts, and the folder trusting the first."""
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    public, _ = generate_key(tmp_path / "keys" / "release")
    shutil.copy(public, trusted / public.name)
    generate_key(tmp_path / "keys" / "stranger")
    return tmp_path / "keys" / "release", tmp_path / "keys" / "stranger", trusted


def _copy(pkgs: Packages, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(pkgs.base_dir, tmp_path / name))


def test_require_signed_refuses_what_a_trusted_key_did_not_sign(
        backend: str, pkgs: Packages, tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    release, stranger, trusted = keys
    policy = SigningPolicy.load(trusted, require_signed=True)
    unsigned = _copy(pkgs, tmp_path, "unsigned")
    foreign = _copy(pkgs, tmp_path, "foreign")
    sign(foreign, stranger)
    manifest_changed = _copy(pkgs, tmp_path, "manifest-changed")
    sign(manifest_changed, release)
    doc = json.loads((manifest_changed / MANIFEST_FILE).read_text())
    doc["metadata"]["description"] = "edited after signing"
    (manifest_changed / MANIFEST_FILE).write_text(json.dumps(doc))
    file_changed = _copy(pkgs, tmp_path, "file-changed")
    sign(file_changed, release)
    model_file = next(p for p in file_changed.iterdir() if p.suffix == ".onnx")
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with open_registry(backend, tmp_path) as reg:
        reg.signing = policy
        for package, error, words in (
                (unsigned, UnsignedPackageError, "is not signed"),
                (foreign, UntrustedSignerError, "not trusted here"),
                (manifest_changed, BadSignatureError, "changed after signing"),
                (file_changed, TamperedFileError, model_file.name)):
            with pytest.raises(error, match=words):
                reg.register(package)
        assert reg.list_models() == []  # nothing refused was registered
        signed = _copy(pkgs, tmp_path, "signed")
        kid = sign(signed, release)
        version = reg.register(signed, name="iris-signed")
        assert version.signed_by == kid
        audit = reg.audit(action="version.register")[-1]
        assert audit.after["signed_by"] == kid and audit.after["trusted_signer"] == kid


def test_a_fetched_signed_version_verifies_again_under_another_name(
        backend: str, pkgs: Packages, tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    release, _, trusted = keys
    signed = _copy(pkgs, tmp_path, "signed")
    kid = sign(signed, release)
    with open_registry(backend, tmp_path) as reg:
        plain = reg.register(pkgs.base_dir)
        version = reg.register(signed, name="renamed")  # a manifest re-serialised by name
        assert version.manifest["name"] == "renamed" and plain.signed_by is None
        fetched = reg.fetch(version.uri)
        assert verify(fetched, trusted_keys(trusted)) == kid
        assert (fetched / MANIFEST_FILE).read_bytes() == (signed / MANIFEST_FILE).read_bytes()
        assert reg.fetch(version.uri) == fetched  # the cached copy is reused as it is
        with pytest.raises(UnsignedPackageError):
            verify(reg.fetch(plain.uri), trusted_keys(trusted))
        assert not (reg.fetch(plain.uri) / SIGNATURE_FILE).exists()
        # gc keeps the signed manifest's blob while the version exists
        assert reg.gc(grace_seconds=0).deleted == 0
        shutil.rmtree(fetched)
        assert verify(reg.fetch(version.uri), trusted_keys(trusted)) == kid


def test_without_require_signed_unsigned_packages_register(
        backend: str, pkgs: Packages, tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    release, _, trusted = keys
    with open_registry(backend, tmp_path) as reg:
        reg.signing = SigningPolicy.load(trusted, require_signed=False)
        assert reg.register(pkgs.base_dir).signed_by is None
        # a signature by a trusted key that does not match is refused all the same
        tampered = _copy(pkgs, tmp_path, "tampered")
        sign(tampered, release)
        (tampered / MANIFEST_FILE).write_text(
            (tampered / MANIFEST_FILE).read_text().replace('"iris"', '"iris2"', 1))
        with pytest.raises(BadSignatureError):
            reg.register(tampered)


def test_require_signed_needs_trusted_keys(tmp_path: Path) -> None:
    from shipyard.errors import PackageError

    with pytest.raises(PackageError, match="trusted public keys"):
        SigningPolicy.load(None, require_signed=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageError, match="no trusted keys"):
        SigningPolicy.load(tmp_path / "empty", require_signed=True)
