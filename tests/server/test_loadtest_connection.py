"""The load test's own HTTP/1.1 client (``loadtest/connection.py``) against small servers on
127.0.0.1 that answer in the ways HTTP allows: a length, chunks, a closed connection, bytes
split across packets, a body that ends with the connection, silence (a timeout), garbage;
never more connections than its limit; over TLS, a certificate checked against the default
trust."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from serving.test_tls import self_signed
from shipyard.errors import ShipyardError
from shipyard.loadtest.connection import Connections, Target, _complete, post_requests

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + await reader.readexactly(length)


async def _with_server(handler: Handler, work: Callable[[Target], Awaitable[object]]
                       ) -> object:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await work(Target.parse(f"http://127.0.0.1:{port}/v1/endpoints/e/predict"))
    finally:
        await asyncio.sleep(0.05)  # the handlers see the client's connections close
        server.close()
        await server.wait_closed()


def test_complete_finds_the_end_of_each_kind_of_answer() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert _complete(ok + b"hel") is None
    assert _complete(ok + b"hello") == ("200", True)
    assert _complete(b"HTTP/1.1 200 OK\r\nContent-Le") is None
    chunked = b"HTTP/1.1 503 X\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
    assert _complete(chunked) is None
    assert _complete(chunked + b"0\r\n\r\n") == ("503", True)
    assert _complete(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n") == ("204", False)
    assert _complete(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n") == ("200", False)
    assert _complete(b"SSH-2.0-OpenSSH\r\n\r\n") == ("bad response", False)
    assert _complete(b"HTTP/1.1 2xx OK\r\nContent-Length: 0\r\n\r\n") == ("bad response", False)
    assert _complete(b"HTTP/1.1 200 OK\r\n\r\nuntil the connection closes") is None


def test_requests_are_whole_posts_built_once() -> None:
    target = Target.parse("http://127.0.0.1:8000/p?x=1")
    (request,) = post_requests(target, [b'{"a": 1}'], {"Authorization": "Bearer k"})
    head, body = request.split(b"\r\n\r\n")
    assert head.startswith(b"POST /p?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8000\r\n")
    assert b"\r\nauthorization: Bearer k" in head and b"\r\ncontent-length: 8" in head
    assert body == b'{"a": 1}'
    with pytest.raises(ShipyardError, match="line break"):
        post_requests(target, [b"{}"], {"x": "a\r\nb"})
    with pytest.raises(ShipyardError, match="http:// or https://"):
        Target.parse("ftp://127.0.0.1/")


def test_answers_by_length_chunks_split_packets_and_closed_connections() -> None:
    seen: list[bytes] = []
    connections_made = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections_made
        connections_made += 1
        try:
            while True:
                request = await _read_request(reader)
                seen.append(request)
                n = len(seen)
                if n % 3 == 0:  # chunked, in two packets
                    writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n")
                    await writer.drain()
                    await asyncio.sleep(0.01)
                    writer.write(b"abc\r\n0\r\n\r\n")
                elif n % 3 == 1:  # a length, then the server closes the connection
                    writer.write(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n"
                                 b"Content-Length: 2\r\n\r\nno")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    async def work(target: Target) -> list[str]:
        connections = Connections(target, 1, timeout_s=5)
        requests = post_requests(target, [b'{"n": 1}'])
        try:
            return [await connections.send(requests[0]) for _ in range(6)]
        finally:
            connections.close()

    statuses = asyncio.run(_with_server(handler, work))
    assert statuses == ["404", "200", "201", "404", "200", "201"]
    assert len(seen) == 6 and all(s.endswith(b'{"n": 1}') for s in seen)
    assert connections_made == 3  # a new connection only after the server closed one


def test_silence_is_a_timeout_garbage_is_a_bad_response_and_the_limit_holds() -> None:
    open_now = most = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            request = await _read_request(reader)
            if b"silent" in request:
                await asyncio.sleep(1.0)
            elif b"garbage" in request:
                writer.write(b"garbage\r\n\r\n")
            elif b"until-close" in request:  # no length: the body ends with the connection
                writer.write(b"HTTP/1.1 202 Accepted\r\n\r\nbody")
            else:
                await asyncio.sleep(0.02)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            open_now -= 1
            writer.close()

    async def work(target: Target) -> tuple[list[str], list[str]]:
        connections = Connections(target, 2, timeout_s=0.3)
        ok, *odd = post_requests(target, [b'"ok"', b'"silent"', b'"garbage"',
                                          b'"until-close"'])
        try:
            many = await asyncio.gather(*(connections.send(ok) for _ in range(8)))
            return list(many), [await connections.send(request) for request in odd]
        finally:
            connections.close()

    many, odd = asyncio.run(_with_server(handler, work))  # type: ignore[misc]
    assert many == ["200"] * 8 and most == 2
    assert odd == ["timeout", "bad response", "202"]


def test_nothing_listening_is_a_connect_error() -> None:
    async def work() -> str:
        target = Target.parse("http://127.0.0.1:9/")  # discard port: nothing listens
        connections = Connections(target, 4, timeout_s=2)
        return await connections.send(post_requests(target, [b"{}"])[0])

    assert asyncio.run(work()) == "connect error"


def test_https_verifies_the_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    cert, key = self_signed(tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    async def send_twice() -> list[str]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=serving)
        port = server.sockets[0].getsockname()[1]
        target = Target.parse(f"https://127.0.0.1:{port}/p")
        request = post_requests(target, [b"{}"])[0]
        try:
            out = []
            for trusted in (False, True):  # the CA as OpenSSL's default trust, or not
                if trusted:
                    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
                connections = Connections(target, 1, timeout_s=5)
                out.append(await connections.send(request))
                connections.close()
            await asyncio.sleep(0.05)
            return out
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(send_twice()) == ["connect error", "200"]
