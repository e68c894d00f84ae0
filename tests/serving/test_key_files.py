"""``shipyard serve --api-keys-dir``: API keys from a directory of files, the shape of a
mounted Kubernetes Secret; an error names the file, never the secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.service.config import ConfigError
from shipyard.service.key_files import read_key_files


def secret_volume(root: Path, keys: dict[str, str]) -> Path:
    """A directory laid out as kubelet mounts a Secret: files in a timestamped folder,
    ``..data`` linking to it, one link per key."""
    stamped = root / "..2026_12_06_10_00_00.1"
    stamped.mkdir(parents=True)
    for name, secret in keys.items():
        (stamped / name).write_text(secret)
    (root / "..data").symlink_to(stamped.name)
    for name in keys:
        (root / name).symlink_to(f"..data/{name}")
    return root


def test_each_file_is_a_key(tmp_path: Path) -> None:
    keys = secret_volume(tmp_path / "keys", {"client": "abc123\n", "batch": "xyz"})
    assert read_key_files(keys) == {"batch": "xyz", "client": "abc123"}


@pytest.mark.parametrize("content", ["", "\n", "two\nlines", "x" * 5000],
                         ids=["empty", "newline", "two-lines", "too-long"])
def test_a_bad_key_file_is_named_without_its_content(tmp_path: Path, content: str) -> None:
    keys = secret_volume(tmp_path / "keys", {"client": content})
    with pytest.raises(ConfigError) as error:
        read_key_files(keys)
    assert "client" in str(error.value)
    assert content.strip() == "" or content.strip()[:5] not in str(error.value)


def test_a_directory_without_keys_is_refused(tmp_path: Path) -> None:
    """A server told to check keys must not start open."""
    with pytest.raises(ConfigError, match="holds no key files"):
        read_key_files(secret_volume(tmp_path / "keys", {}))
    with pytest.raises(ConfigError, match="does not exist"):
        read_key_files(tmp_path / "missing")
