"""Helpers shared by the serving tests: iris rows, metrics parsing, a real server process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class IrisModels:
    x: np.ndarray  # the 150 iris rows
    packages: dict[int, Any]  # version -> shipyard.Package (C = 1.0, 0.01, 0.1)
    estimators: dict[int, Any]  # version -> the fitted LogisticRegression
    v1_dir: Path  # the first package saved as ``.../iris`` (its endpoint is "iris")

    def proba(self, version: int, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimators[version].predict_proba(
            pd.DataFrame(rows, columns=FEATURES)))


def rows_payload(x: np.ndarray) -> dict[str, Any]:
    """The simple JSON API body for rows of iris features."""
    return {"inputs": {name: x[:, i].tolist() for i, name in enumerate(FEATURES)}}


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample named ``name`` in a Prometheus exposition, as (labels, value)."""
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out.append((dict(sample.labels), sample.value))
    return out


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(v for lab, v in samples(text, name)
               if all(lab.get(k) == want for k, want in labels.items()))


def ray_or_skip() -> None:
    """Ray Serve is importable; else the test fails under CI=true and is skipped elsewhere."""
    import pytest

    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and Ray Serve is missing: {exc}")
        pytest.skip(f"Ray Serve is not installed ({exc}): pip install 'shipyard-ml[ray]'")


def serve_in_process(config: Any, home: Path,
                     posts: Sequence[tuple[str, Any]]) -> tuple[list[httpx.Response], str]:
    """Serve ``config`` (a ServeConfig) in this process (the app over httpx's ASGI
    transport), POST each ``(path, json)`` in turn, read ``/metrics``, then close the data
    plane (its prediction log is flushed): the answers and the metrics text."""
    import asyncio

    from shipyard.server.app import create_app
    from shipyard.service.dataplane import DataPlane
    from shipyard.settings import Settings

    async def scenario() -> tuple[list[httpx.Response], str]:
        plane = DataPlane(config, settings=Settings.from_env({"SHIPYARD_HOME": str(home)}))
        await plane.start()  # what the lifespan does
        try:
            transport = httpx.ASGITransport(app=create_app(plane))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                         timeout=30) as client:
                answers = [await client.post(path, json=body) for path, body in posts]
                return answers, (await client.get("/metrics")).text
        finally:
            await plane.close()

    return asyncio.run(scenario())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``shipyard serve`` in a child process on 127.0.0.1, its output in a file."""

    def __init__(self, args: Sequence[str], *, home: Path, out: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.out = out
        environ = {**os.environ, "SHIPYARD_HOME": str(home), "PYTHONUNBUFFERED": "1",
                   "SHIPYARD_ORT_THREADS": "1", **(env or {})}
        environ.pop("SHIPYARD_REGISTRY_URL", None)
        environ.pop("SHIPYARD_ARTIFACTS", None)
        self._log = out.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard.cli.main", "serve", *args,
             "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=environ, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self._log.flush()
        return self.out.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n"
                                     f"{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/v2/health/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running {timeout} s after the signal:\n"
                                 f"{self.output()}") from None

    def stop(self) -> None:
        """Kill the whole process group (the server and any workers it started)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        else:  # the server is gone; make sure no worker of its group outlived it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (from /proc), whichever of its threads started them."""
    tasks = list(Path(f"/proc/{pid}/task").glob("*/children"))
    if tasks:
        found: list[int] = []
        for path in tasks:
            with contextlib.suppress(OSError):
                found += [int(p) for p in path.read_text().split()]
        return found
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (psutil when installed, else /proc)."""
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise AssertionError(f"no VmRSS for pid {pid}") from None
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def cmdline(pid: int) -> str:
    """The process's command line, or "" once it has exited (a child may go between being
    listed and being read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def kill_child_log(logger: Any) -> None:
    """A ``ChildLogger`` dies as its process would: no final flush; its spool files' locks
    go with it."""
    logger._stop.set()
    spool = logger._spool
    assert spool is not None
    spool.close()
    for fd in spool._rotated.values():
        os.close(fd)
