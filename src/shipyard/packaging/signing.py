"""Package signatures: Ed25519 over the manifest's bytes.

The manifest (``shipyard.json``) holds every file's SHA-256, so one signature over its exact
bytes covers the whole package: ``verify`` checks the signature with a *trusted* public key
(never the one the package carries), then every file against the manifest. The signature
lives beside the manifest in ``signature.json``, which the manifest does not list:

    {"format": "shipyard-signature/1", "algorithm": "ed25519", "key_id": "<16 hex>",
     "manifest_sha256": "<hex>", "signature": "<base64>"}

``key_id`` is the first 16 hex digits of the SHA-256 of the raw public key. Keys are PEM
files: the private key PKCS#8 (written 0600), the public key SubjectPublicKeyInfo, named
``NAME.pub``; a folder of ``*.pub`` files is a set of trusted keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import PackageError
from shipyard.packaging.integrity import verify_files
from shipyard.packaging.manifest import MANIFEST_FILE, Manifest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SIGNATURE_FILE = "signature.json"
FORMAT = "shipyard-signature/1"


class SignatureError(PackageError):
    """A package's signature is missing, not from a trusted key, or does not match."""


class UnsignedPackageError(SignatureError):
    """The package carries no signature."""


class UntrustedSignerError(SignatureError):
    """The package is signed, by a key that is not among the trusted ones."""


class BadSignatureError(SignatureError):
    """The signature does not match the manifest: the manifest changed after signing, or
    the signature file was altered."""


def key_id(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key(private_path: Path) -> tuple[Path, str]:
    """A new Ed25519 key: the private key at ``private_path`` (0600; an existing file is
    never overwritten) and the public one beside it as ``.pub``; returns that path and the
    key id."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise PackageError(f"{path} exists: a key is never overwritten")
    private_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return public_path, key_id(key.public_key())


def _private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PackageError(f"cannot read the private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PackageError(f"{path} is not an Ed25519 private key")
    return key


def _public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read the public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise PackageError(f"{path} is not an Ed25519 public key")
    return key


def trusted_keys(folder: Path) -> dict[str, Ed25519PublicKey]:
    """The ``*.pub`` keys in ``folder`` by key id."""
    if not folder.is_dir():
        raise PackageError(f"no folder of trusted keys at {folder}")
    return {key_id(key): key for key in map(_public_key, sorted(folder.glob("*.pub")))}


def sign(package_dir: Path, private_key: Path) -> str:
    """Sign the package (its files must match its manifest first); returns the key id."""
    manifest = Manifest.read(package_dir)
    verify_files(package_dir, manifest.files)  # never vouch for a tampered package
    key = _private_key(private_key)
    body = (package_dir / MANIFEST_FILE).read_bytes()
    kid = key_id(key.public_key())
    record = {"format": FORMAT, "algorithm": "ed25519", "key_id": kid,
              "manifest_sha256": hashlib.sha256(body).hexdigest(),
              "signature": base64.b64encode(key.sign(body)).decode("ascii")}
    (package_dir / SIGNATURE_FILE).write_text(json.dumps(record, indent=2) + "\n",
                                              encoding="utf-8")
    return kid


def verify(package_dir: Path, trusted: Mapping[str, Ed25519PublicKey]) -> str:
    """Check the package's signature with a trusted key, then its files against its
    manifest; returns the signer's key id. `UnsignedPackageError`, `UntrustedSignerError`,
    `BadSignatureError`, or the integrity errors (`TamperedFileError`, `MissingFileError`)
    naming the file."""
    from cryptography.exceptions import InvalidSignature

    path = package_dir / SIGNATURE_FILE
    if not path.is_file():
        raise UnsignedPackageError(f"{package_dir} is not signed (no {SIGNATURE_FILE})")
    record = _record(path)
    kid = str(record["key_id"])
    key = trusted.get(kid)
    if key is None:
        raise UntrustedSignerError(f"{package_dir} is signed by key {kid}, which is not "
                                   f"trusted here (trusted: {sorted(trusted) or 'none'})")
    body = (package_dir / MANIFEST_FILE).read_bytes()
    try:
        key.verify(base64.b64decode(str(record["signature"]), validate=True), body)
    except (InvalidSignature, ValueError):
        raise BadSignatureError(f"{package_dir}: the signature of key {kid} does not match "
                                f"its {MANIFEST_FILE} (changed after signing)") from None
    verify_files(package_dir, Manifest.read(package_dir).files)
    return kid


def _record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadSignatureError(f"{path} cannot be read: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or \
            record.get("algorithm") != "ed25519" or not isinstance(record.get("key_id"), str) \
            or not isinstance(record.get("signature"), str):
        raise BadSignatureError(f"{path} is not a {FORMAT} signature")
    return record


def read_record(package_dir: Path) -> dict[str, Any] | None:
    """The package's signature record, None when unsigned (`BadSignatureError` if it is not
    one)."""
    path = package_dir / SIGNATURE_FILE
    return _record(path) if path.is_file() else None


@dataclass(frozen=True)
class SigningPolicy:
    """Which signers are trusted, and whether every package must carry a trusted signature.

    ``check`` returns the trusted signer's key id (or None) and refuses, naming the reason:
    with ``require_signed``, an unsigned package or one signed by another key; always, a
    package whose signature by a trusted key does not match (it changed after signing)."""

    trusted: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    require_signed: bool = False

    @classmethod
    def load(cls, folder: str | Path | None, require_signed: bool) -> SigningPolicy:
        """The ``*.pub`` keys in ``folder`` (none: no folder) and the requirement."""
        if require_signed and not folder:
            raise PackageError("require_signed needs a folder of trusted public keys "
                               "(trusted_keys / --trusted-keys / SHIPYARD_TRUSTED_KEYS)")
        keys = trusted_keys(Path(folder)) if folder else {}
        if require_signed and not keys:
            raise PackageError(f"require_signed: no trusted keys (*.pub) in {folder}")
        return cls(keys, require_signed)

    def check(self, package_dir: Path) -> str | None:
        if not self.trusted:
            return None
        try:
            return verify(package_dir, self.trusted)
        except (UnsignedPackageError, UntrustedSignerError):
            if self.require_signed:
                raise
            return None
