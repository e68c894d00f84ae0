"""A real S3 server for the tests: moto's standalone server (``moto[server]``) on 127.0.0.1.

The ``s3_server`` session fixture (``tests/conftest.py``) starts one per test process on a
free port, waits until it answers and stops it at the end. Code under test finds it the way
it finds any S3-compatible store: through the standard AWS environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), which ``s3_env``
sets for one test (``S3Server.env`` for a subprocess). The shared AWS files are pointed at
paths that do not exist, so a developer's own profile never leaks into a test.

Under ``CI=true`` a server that cannot start is a test failure; elsewhere a skip saying why.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT_S = 60.0
# variables that could point the code under test at another store or account
_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


@dataclass(frozen=True)
class S3Server:
    """A running S3 server: its endpoint and the environment that points clients at it."""

    endpoint: str
    secret_key: str  # this session's (made up) secret: tests check it never shows
    env: dict[str, str] = field(default_factory=dict)

    def bucket(self, prefix: str = "shipyard-test") -> str:
        """A new, empty bucket; returns its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def client(self) -> Any:
        """A boto3 S3 client of this server (for the tests' own checks)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.secret_key)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in ``bucket``, sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def unavailable(reason: str) -> None:
    """Fail under ``CI=true`` (the server is part of the test setup there), else skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_s3_server(workdir: Path) -> Iterator[S3Server]:
    """Start ``python -m moto.server`` on 127.0.0.1, yield it once it answers, stop it."""
    try:
        import moto.server  # noqa: F401  (the standalone server's extra)
    except ImportError as exc:
        unavailable(f"moto's S3 server is not installed ({exc}): pip install 'moto[server]' "
                    "(the dev extra has it)")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    secret = f"shipyard-test-secret-{secrets.token_hex(12)}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "shipyard-test-key",
           "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
           "AWS_EC2_METADATA_DISABLED": "true"}
    out = (workdir / "moto.log").open("wb")
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                            env=server_env)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                tail = (workdir / "moto.log").read_text(errors="replace")[-2000:]
                unavailable(f"moto's S3 server exited with code {proc.returncode}: {tail}")
            try:
                if httpx.get(f"{endpoint}/moto-api/", timeout=2.0).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                unavailable(f"moto's S3 server did not answer on {endpoint} within "
                            f"{START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)  # polling a server that gives no other signal when it is up
        yield S3Server(endpoint, secret, env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def apply_env(monkeypatch: pytest.MonkeyPatch, server: S3Server) -> None:
    """Point this test's process (and what it starts) at ``server``, and nowhere else."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
