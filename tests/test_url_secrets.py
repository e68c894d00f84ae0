"""A password in the registry URL or the artifact store URL never reaches an error message,
a log line or a repr: those end up in the server log, in ``last_error`` and on screens."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import ArtifactStoreError, RegistryError
from shipyard.registry import Registry
from shipyard.settings import Settings, without_password
from shipyard.stores.artifacts import open_artifact_store

SECRET = "S3cr3tPassw0rd"


@pytest.mark.parametrize("url", [
    f"u:{SECRET}@nohost",  # no scheme: SQLAlchemy cannot parse it
    f"postgresql//u:{SECRET}@db/registry",  # a typo
    f"postgresql://u:{SECRET}@db:port/registry",  # SQLAlchemy raises ValueError on this one
])
def test_an_invalid_registry_url_is_named_without_its_password(tmp_path: Path,
                                                               url: str) -> None:
    with pytest.raises(RegistryError) as info:
        Registry(url=url, artifacts=str(tmp_path / "artifacts"))
    assert SECRET not in str(info.value)
    assert "invalid registry URL" in str(info.value), info.value


def test_a_missing_blob_names_the_store_without_its_password(tmp_path: Path) -> None:
    store = open_artifact_store(f"memory://reader:{SECRET}@bucket/blobs")
    with pytest.raises(ArtifactStoreError) as info:
        store.fetch("a" * 64, tmp_path / "blob")
    assert SECRET not in str(info.value) and "reader:***@bucket" in str(info.value)


def test_settings_repr_holds_no_password() -> None:
    settings = Settings.from_env({"SHIPYARD_REGISTRY_URL": f"postgresql://u:{SECRET}@db/r",
                                  "SHIPYARD_ARTIFACTS": f"sftp://u:{SECRET}@files/blobs"})
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert settings.registry_url.endswith(f"{SECRET}@db/r")  # still there to connect with


def test_without_password_keeps_everything_else() -> None:
    assert without_password("postgresql://u:pw@db:5432/r") == "postgresql://u:***@db:5432/r"
    assert without_password("u:pw@h") == "u:***@h"
    for url in ("sqlite:////tmp/registry.db", "s3://bucket/blobs", "/tmp/artifacts",
                "postgresql://u@db/r"):
        assert without_password(url) == url


def test_an_unreachable_registry_is_one_clear_error_without_its_password(
        tmp_path: Path) -> None:
    """Refused connections come back as one error of the tree (the CLI prints one line, the
    server answers 503), naming the registry without its password: no driver traceback."""
    from shipyard.errors import RegistryUnavailableError
    from shipyard.protocol.http_errors import error_parts

    url = f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/registry"  # nothing listens on 1
    with pytest.raises(RegistryUnavailableError) as info:
        Registry(url=url, artifacts=str(tmp_path / "artifacts")).list_models()
    message = str(info.value)
    assert SECRET not in message and "u:***@127.0.0.1:1" in message, message
    assert "cannot reach the registry" in message and "refused" in message.lower(), message
    assert error_parts(info.value)[0] == 503


def test_the_cli_says_an_unreachable_registry_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "SHIPYARD_REGISTRY_URL":
           f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/registry",
           "SHIPYARD_HOME": str(tmp_path), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "shipyard.cli.main", "models", "list"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "OperationalError" not in done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "cannot reach the registry" in done.stderr, done.stderr
