"""Signed packages (issue 17, first step): ``shipyard keygen``, ``sign`` and ``verify``.
A package signed by a trusted key verifies; an unsigned one, one signed by a key not
trusted, one whose manifest or model file changed after signing, and one whose signature
was altered are each refused with an error naming the reason (and a non-zero exit)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.cli.app import app
from shipyard.errors import PackageError, TamperedFileError
from shipyard.packaging import MANIFEST_FILE
from shipyard.packaging.signing import (
    SIGNATURE_FILE,
    BadSignatureError,
    UnsignedPackageError,
    UntrustedSignerError,
    generate_key,
    sign,
    trusted_keys,
    verify,
)

runner = CliRunner()


@pytest.fixture
def signed(tmp_path: Path, customer_model: tuple[object, shipyard.Package]
           ) -> tuple[Path, Path, Path]:
    """A saved package signed with a new key; the folder trusting that key."""
    package = customer_model[1].save(tmp_path / "pkg")
    key = tmp_path / "keys" / "release"  # its folder is made, as a pasted command needs
    public, _ = generate_key(key)
    sign(package, key)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(public, trusted / public.name)
    return package, key, trusted


def test_a_signed_package_verifies_with_a_trusted_key(signed: tuple[Path, Path, Path]
                                                      ) -> None:
    package, key, trusted = signed
    kid = verify(package, trusted_keys(trusted))
    record = json.loads((package / SIGNATURE_FILE).read_text())
    assert record["key_id"] == kid and record["algorithm"] == "ed25519"
    assert oct(key.stat().st_mode & 0o777) == "0o600"  # the private key is the owner's
    with pytest.raises(PackageError, match="never overwritten"):
        generate_key(key)


def test_unsigned_and_untrusted_packages_are_refused(
        signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    package, _, trusted = signed
    other = tmp_path / "other"
    generate_key(other)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    shutil.copy(other.with_name("other.pub"), stranger / "other.pub")
    with pytest.raises(UntrustedSignerError, match="not trusted here"):
        verify(package, trusted_keys(stranger))
    sign(package, other)  # re-signed by a key the folder does not hold
    with pytest.raises(UntrustedSignerError):
        verify(package, trusted_keys(trusted))
    (package / SIGNATURE_FILE).unlink()
    with pytest.raises(UnsignedPackageError, match="not signed"):
        verify(package, trusted_keys(trusted))


def test_a_manifest_changed_after_signing_is_refused(signed: tuple[Path, Path, Path]
                                                     ) -> None:
    package, _, trusted = signed
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    manifest["metadata"] = {**manifest.get("metadata", {}), "owner": "mallory"}
    (package / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BadSignatureError, match="changed after signing"):
        verify(package, trusted_keys(trusted))


def test_a_model_file_changed_after_signing_is_refused(signed: tuple[Path, Path, Path]
                                                       ) -> None:
    package, _, trusted = signed
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    model_file = package / manifest["files"][0]["path"]
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(TamperedFileError):
        verify(package, trusted_keys(trusted))


def test_an_altered_signature_is_refused(signed: tuple[Path, Path, Path]) -> None:
    package, _, trusted = signed
    record = json.loads((package / SIGNATURE_FILE).read_text())
    sig = bytearray(record["signature"].encode())
    sig[5] = ord("A") if sig[5] != ord("A") else ord("B")
    record["signature"] = sig.decode()
    (package / SIGNATURE_FILE).write_text(json.dumps(record))
    with pytest.raises(BadSignatureError):
        verify(package, trusted_keys(trusted))
    (package / SIGNATURE_FILE).write_text("{not json")
    with pytest.raises(BadSignatureError, match="cannot be read"):
        verify(package, trusted_keys(trusted))


def test_a_tampered_package_is_never_signed(signed: tuple[Path, Path, Path]) -> None:
    package, key, _ = signed
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    model_file = package / manifest["files"][0]["path"]
    model_file.write_bytes(b"swapped")
    with pytest.raises(TamperedFileError):
        sign(package, key)


def test_the_commands(tmp_path: Path, customer_model: tuple[object, shipyard.Package]) -> None:
    package = customer_model[1].save(tmp_path / "pkg")
    key = tmp_path / "k"
    made = runner.invoke(app, ["keygen", str(key)])
    assert made.exit_code == 0 and "key id" in " ".join(made.output.split()), made.output
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (tmp_path / "k.pub").replace(trusted / "k.pub")
    refused = subprocess.run([sys.executable, "-m", "shipyard.cli.main", "verify",
                              str(package), "--trusted-keys", str(trusted)],
                             capture_output=True, text=True, timeout=120)
    said = " ".join((refused.stderr + refused.stdout).split())
    assert refused.returncode != 0 and "not signed" in said, refused
    assert runner.invoke(app, ["sign", str(package), "--key", str(key)]).exit_code == 0
    ok = runner.invoke(app, ["verify", str(package), "--trusted-keys", str(trusted)])
    # rich wraps long lines (a long temporary path): compare words, not line breaks
    assert ok.exit_code == 0 and "signed by trusted key" in " ".join(ok.output.split()), \
        ok.output
