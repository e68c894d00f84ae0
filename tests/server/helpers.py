"""Helpers shared by the server tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

import shipyard
from shipyard.service.config import EndpointConfig
from shipyard.service.dataplane import DataPlane


class Served(NamedTuple):
    client: TestClient
    plane: DataPlane
    log_dir: Path


def endpoint(name: str, model: Path | str, **options: Any) -> EndpointConfig:
    return EndpointConfig(name=name, model=str(model), **options)


def local(package: Path, data: Any) -> shipyard.Prediction:
    """What the package predicts in-process: the reference for every served answer (the
    tests' own packages: trusted, so custom classes load)."""
    return shipyard.load(package, trust=True).predict(data)


def probabilities_by_class(prediction: shipyard.Prediction) -> list[dict[str, float]]:
    """The simple API's shape: one {class: probability} object per row."""
    assert prediction.probabilities is not None and prediction.classes is not None
    names = [str(c) for c in prediction.classes]
    return [dict(zip(names, row, strict=True)) for row in prediction.probabilities.tolist()]


def assert_matches_local(body: dict[str, Any], expected: shipyard.Prediction) -> None:
    assert body["predictions"] == expected.predictions.tolist()
    want = probabilities_by_class(expected)
    assert len(body["probabilities"]) == len(want)
    for got_row, want_row in zip(body["probabilities"], want, strict=True):
        assert got_row.keys() == want_row.keys()
        for cls, value in want_row.items():
            assert got_row[cls] == pytest.approx(value, rel=1e-9, abs=1e-12)


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text -> {(sample name, labels): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def metric(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def oip_columns(frame: Any, datatypes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """An OIP ``inputs`` list with one JSON tensor per DataFrame column."""
    datatypes = datatypes or {}
    tensors = []
    for column in frame.columns:
        values = frame[column].tolist()
        tensors.append({"name": column, "shape": [len(values)],
                        "datatype": datatypes.get(column, "FP64"), "data": values})
    return tensors


def binary_request(tensors: list[tuple[str, str, list[int], bytes]],
                   extra: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a binary-tensor infer request: (name, datatype, shape, raw)."""
    import orjson

    header = {"inputs": [{"name": n, "datatype": d, "shape": s,
                          "parameters": {"binary_data_size": len(raw)}}
                         for n, d, s, raw in tensors], **(extra or {})}
    head = orjson.dumps(header)
    body = head + b"".join(raw for *_, raw in tensors)
    return body, {"Inference-Header-Content-Length": str(len(head)),
                  "Content-Type": "application/octet-stream"}


def le_bytes(values: Any, dtype: str) -> bytes:
    return np.asarray(values, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


# -- a real server in a subprocess -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer(NamedTuple):
    process: subprocess.Popen[bytes]
    url: str
    host_port: str
    log_dir: Path
    output: Path


@contextmanager
def live_server(tmp: Path, *models: Path, args: Sequence[str] = ()) -> Iterator[LiveServer]:
    """``shipyard serve MODELS... ARGS...`` on a free port, ready (every model loaded) when
    yielded."""
    port = free_port()
    log_dir = tmp / "serve-logs"
    output = tmp / "serve-output.txt"
    env = {**os.environ, "SHIPYARD_HOME": str(tmp / "home"), "SHIPYARD_ORT_THREADS": "1"}
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard.cli.main", "serve", *map(str, models), *args,
             "--port", str(port), "--log-dir", str(log_dir)],
            env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp)
    server = LiveServer(process, f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", log_dir,
                        output)
    try:
        wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(server: LiveServer, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n"
                                 f"{server.output.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{server.url}/v2/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not ready after {limit_s}s:\n"
                         f"{server.output.read_text(errors='replace')}")
