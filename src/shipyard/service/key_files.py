"""API keys from a directory of files, one key each: the file's name is the key's name, its
content the secret. A Kubernetes Secret mounted as a volume has this shape (its ``..data``
links and timestamped folders, names starting with a dot, are not keys), so the secrets stay
out of ``serve.yaml``, the image and the environment.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.service.config import ConfigError

_MAX_SECRET = 4096


def read_key_files(directory: Path) -> dict[str, str]:
    """Key name -> secret for every file in ``directory`` (trailing newline dropped). An
    error names the file, never its content; a directory without keys is an error (a server
    told to check keys must not serve without any)."""
    if not directory.is_dir():
        raise ConfigError(f"API key directory {directory} does not exist")
    keys: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            secret = path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read API key file {path}: {type(exc).__name__}") \
                from None
        if not secret or len(secret) > _MAX_SECRET or not secret.isprintable():
            raise ConfigError(f"API key file {path} must hold one printable secret of 1 to "
                              f"{_MAX_SECRET} characters")
        keys[path.name] = secret
    if not keys:
        raise ConfigError(f"API key directory {directory} holds no key files")
    return keys
