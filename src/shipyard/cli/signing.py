"""``shipyard keygen``, ``shipyard sign`` and ``shipyard verify``: Ed25519 signatures of a
package's manifest (``packaging/signing.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.output import console


def keygen(
    path: Annotated[Path, typer.Argument(help="where the private key goes (0600); the "
                                              "public key is written beside it as PATH.pub")],
) -> None:
    """Make an Ed25519 signing key pair. Share PATH.pub with whoever verifies."""
    from shipyard.packaging.signing import generate_key

    public, kid = generate_key(path)
    console.print(f"private key {path} (keep it secret), public key {public}, key id {kid}")


def sign(
    package: Annotated[Path, typer.Argument(help="the package directory")],
    key: Annotated[Path, typer.Option("--key", help="the Ed25519 private key (PEM)")],
) -> None:
    """Sign a package: an Ed25519 signature of its manifest, which holds every file's hash,
    written to signature.json (the files must match the manifest)."""
    from shipyard.packaging.signing import sign as sign_package

    kid = sign_package(package, key)
    console.print(f"signed {package} with key {kid}")


def verify(
    package: Annotated[Path, typer.Argument(help="the package directory")],
    trusted_keys: Annotated[Path, typer.Option(
        "--trusted-keys", help="a folder of trusted public keys (*.pub)")],
) -> None:
    """Check a package's signature with the trusted keys, then every file against its
    manifest; exits non-zero naming the reason (unsigned, untrusted signer, signature or
    file mismatch)."""
    from shipyard.packaging.signing import trusted_keys as load_trusted
    from shipyard.packaging.signing import verify as verify_package

    kid = verify_package(package, load_trusted(trusted_keys))
    console.print(f"{package}: signed by trusted key {kid}; every file matches its manifest")
