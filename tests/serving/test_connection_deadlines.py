"""A real server closes connections that send nothing, or stop half-way through a request's
headers or body, within the serve config's ``idle_timeout_s`` and ``read_timeout_s``."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import yaml

from serving.helpers import IrisModels, ServerProcess

IDLE_S = 1.0
READ_S = 1.0
WAIT_S = 8.0  # a socket still open this long after its deadline was never closed
SLACK_S = 3.0  # closed within its deadline and this (uvicorn's own idle default is 5 s)
BODY = b'{"inputs": {"sepal_length": [5.1], "sepal_width": [3.5], ' \
       b'"petal_length": [1.4], "petal_width": [0.2]}}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, iris: IrisModels) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("deadlines")
    config = tmp / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "idle_timeout_s": IDLE_S, "read_timeout_s": READ_S, "log_dir": str(tmp / "logs"),
        "endpoints": [{"name": "iris", "model": str(iris.v1_dir)}]}))
    running = ServerProcess(["--config", str(config)], home=tmp / "home", out=tmp / "out")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    sock.settimeout(WAIT_S)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took
    (raises socket.timeout when it is still open after WAIT_S)."""
    started = time.monotonic()
    data = b""
    with sock:
        while chunk := sock.recv(65536):
            data += chunk
    return data, time.monotonic() - started


def headers(length: int) -> bytes:
    return (b"POST /v1/endpoints/iris/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length)


def test_a_connection_that_sends_nothing_is_closed(server: ServerProcess) -> None:
    data, took = read_until_closed(connect(server))
    assert data == b"" and took < IDLE_S + SLACK_S


def test_half_sent_headers_get_408_and_a_closed_connection(server: ServerProcess) -> None:
    sock = connect(server)
    sock.sendall(b"POST /v1/endpoints/iris/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nCont")
    data, took = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"read_timeout_s" in data and took < READ_S + SLACK_S


def test_a_half_sent_body_gets_408_and_a_closed_connection(server: ServerProcess) -> None:
    sock = connect(server)
    sock.sendall(headers(len(BODY)) + BODY[:20])
    data, took = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert took < READ_S + SLACK_S


def test_an_idle_kept_alive_connection_is_closed(server: ServerProcess) -> None:
    sock = connect(server)
    sock.sendall(headers(len(BODY)) + BODY)
    data, took = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 "), data  # answered, then closed when idle
    assert data.count(b"HTTP/1.1 ") == 1 and took < IDLE_S + SLACK_S


def test_a_slow_request_that_arrives_within_the_deadline_is_answered(
        server: ServerProcess) -> None:
    sock = connect(server)
    sock.sendall(headers(len(BODY)))
    time.sleep(READ_S / 4)
    sock.sendall(BODY[:30])
    time.sleep(READ_S / 4)
    sock.sendall(BODY[30:])
    data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 "), data
    assert b'"label"' in data or b'"predictions"' in data


@pytest.mark.parametrize("after", ["nothing", "an answered request"])
def test_blank_lines_alone_never_hold_a_connection_open(server: ServerProcess,
                                                        after: str) -> None:
    """A request may start with empty lines, which begin no message: sent every half
    deadline they cancelled the idle timer and never armed the read deadline, so the
    connection stayed open for as long as the client kept sending them."""
    sock = connect(server)
    if after != "nothing":
        sock.sendall(headers(len(BODY)) + BODY)
    started = time.monotonic()
    sock.settimeout(min(IDLE_S, READ_S) / 2)
    data = b""
    with sock:
        while time.monotonic() - started < WAIT_S:
            try:
                sock.sendall(b"\r\n")
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # reset: the server closed it
                break
            if not chunk:
                break
            data += chunk
    took = time.monotonic() - started
    assert took < max(IDLE_S, READ_S) + SLACK_S, f"still open after {took:.1f} s"
    assert data.count(b"HTTP/1.1 200 ") == (after != "nothing"), data
