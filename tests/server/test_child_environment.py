"""The inference process runs model code: it gets an allowlisted environment (issue 13,
point 2), never the server's secrets."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from server.conftest import Packages
from shipyard.runtimes.child_env import PASSED, THREAD_COUNTS
from shipyard.runtimes.process import InferenceProcess
from shipyard.settings import Settings


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_the_inference_process_gets_only_the_environment_it_needs(
        packages: Packages, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_SECRET", "do-not-pass-me")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-pass-me-either")
    monkeypatch.setenv("SHIPYARD_REGISTRY_URL", "postgresql://user:password@127.0.0.1/db")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path))
    process = InferenceProcess(packages.iris, trust=False, runtime=None,
                               settings=Settings.from_env())
    try:
        env = environ_of(process.proc.pid)
    finally:
        asyncio.run(process.aclose())
    assert "do-not-pass-me" not in "\0".join(f"{k}={v}" for k, v in env.items())
    assert "password" not in "\0".join(env.values())
    assert "SHIPYARD_TEST_SECRET" not in env and "SHIPYARD_REGISTRY_URL" not in env
    assert env["OMP_NUM_THREADS"] == "1" and env["LC_ALL"] == "C.UTF-8"
    assert env["PATH"] == os.environ["PATH"] and env["SHIPYARD_HOME"] == str(tmp_path)
    assert env["PYTHONPATH"].split(os.pathsep)[0]  # the server's modules, custom models too
    shipyard_vars = {"SHIPYARD_HOME", "SHIPYARD_ACTOR", "SHIPYARD_ORT_THREADS",
                     "SHIPYARD_ORT_INTER_OP_THREADS", "SHIPYARD_DEVICE"}
    extra = {k for k in env if k not in PASSED | THREAD_COUNTS | shipyard_vars
             and not k.startswith("LC_") and k != "PYTHONPATH"}
    assert not extra, extra
