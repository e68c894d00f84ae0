"""``shipyard serve`` as a real process on 127.0.0.1: the prediction log survives SIGTERM
(nothing lost) and SIGKILL (at most the last flush interval missing, never a corrupt segment,
and the next server on the same log replays the rest from the inference process's spool),
and ``--workers 2`` runs two worker processes that each serve and each log.

``--workers N``: uvicorn's supervisor process starts N worker processes (spawned, so each
imports shipyard and loads every model itself: memory grows about linearly with N); they
accept connections from one shared listening socket, so which worker gets a connection is up
to the kernel, and at light load one worker may get them all. Each worker writes its own
prediction-log segments (the pid is in the file name), and ``/metrics`` answers for both
(each worker shares a snapshot of its metrics in a directory the supervisor made and
removes). SIGTERM to the supervisor stops the workers gracefully, and each flushes its log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from serving.helpers import (
    IrisModels,
    ServerProcess,
    children,
    cmdline,
    metric,
    rows_payload,
    rss_mib,
)
from shipyard.stores.predictions import read_log

ENDPOINT = "iris"  # named after the package directory

Factory = Callable[..., ServerProcess]


@pytest.fixture
def start_server(tmp_path: Path, iris: IrisModels) -> Iterator[Factory]:
    started: list[ServerProcess] = []

    def start(*extra: str) -> ServerProcess:
        server = ServerProcess([str(iris.v1_dir), "--log-dir", str(tmp_path / "logs"),
                                *extra], home=tmp_path / "home",
                               out=tmp_path / f"server{len(started)}.out")
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def send(server: ServerProcess, iris: IrisModels, ids: Sequence[str], *, rows: int = 0,
         threads: int = 8, fresh_connections: bool = False) -> dict[str, int]:
    """POST one request per id (``rows`` rows, or 1-3 by default); status code per id,
    0 when the request got no HTTP answer."""
    rng = np.random.default_rng(len(ids))
    bodies = {rid: rows_payload(iris.x[rng.choice(150, size=rows or int(rng.integers(1, 4)))])
              for rid in ids}
    shared = httpx.Client(timeout=30)

    def one(rid: str) -> int:
        try:
            if fresh_connections:
                with httpx.Client(timeout=30) as client:
                    r = client.post(f"{server.base}/v1/endpoints/{ENDPOINT}/predict",
                                    json=bodies[rid], headers={"X-Request-Id": rid})
            else:
                r = shared.post(f"{server.base}/v1/endpoints/{ENDPOINT}/predict",
                                json=bodies[rid], headers={"X-Request-Id": rid})
        except httpx.HTTPError:
            return 0
        if r.status_code == 200:
            assert r.json()["request_id"] == rid
        return r.status_code

    try:
        with ThreadPoolExecutor(threads) as pool:
            return dict(zip(ids, pool.map(one, ids), strict=True))
    finally:
        shared.close()


def new_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}-{uuid.uuid4().hex[:8]}" for i in range(n)]


def segments(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.rglob("*.parquet") if not p.name.startswith("."))


def logged(log_dir: Path) -> Counter[str]:
    """Request id -> how many times it was logged (its first row counted)."""
    table = read_log(log_dir, ENDPOINT)
    return Counter(rid for rid, row in zip(table.column("request_id").to_pylist(),
                                           table.column("row").to_pylist(), strict=True)
                   if row == 0)


def settled_log(log_dir: Path, wanted: set[str], quiet_s: float = 3.0,
                timeout_s: float = 30.0) -> Counter[str]:
    """``logged(log_dir)`` once it holds every id in ``wanted``, or once it has not changed
    for ``quiet_s`` (three of the servers' 1 s flush intervals): up to 8 ids may be lost for
    good, and waiting the whole ``timeout_s`` for them only made the test slow."""
    deadline = time.monotonic() + timeout_s
    counts, since = logged(log_dir), time.monotonic()
    while time.monotonic() < deadline and not wanted <= set(counts):
        time.sleep(0.2)
        now = logged(log_dir)
        if now != counts:
            counts, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return counts


def check_segments_readable(log_dir: Path) -> None:
    for path in segments(log_dir):
        pq.read_table(path)  # raises on a partial or corrupt file
    # an inference process's spool (runtimes/spool.py) is the one other file a kill leaves
    leftovers = [p for p in log_dir.rglob("*") if p.is_file() and p.suffix != ".parquet"
                 and not (p.suffix == ".spool" and p.parent.parent.name == "spool")]
    assert all(p.name.startswith(".") for p in leftovers), leftovers


def test_sigterm_flushes_every_answered_request(start_server: Factory, iris: IrisModels,
                                                tmp_path: Path) -> None:
    server = start_server()
    rss_start = rss_mib(server.pid)
    ids = new_ids("t", 120)
    statuses = send(server, iris, ids)
    assert set(statuses.values()) == {200}
    rss_traffic = rss_mib(server.pid)
    server.signal(signal.SIGTERM)  # well inside the 1 s flush interval: close() flushes
    code = server.wait()
    assert code in (0, -signal.SIGTERM), server.output()
    assert "Application shutdown complete" in server.output()
    counts = logged(tmp_path / "logs")
    assert counts == Counter(ids), "the log lost or duplicated requests"
    check_segments_readable(tmp_path / "logs")
    print(f"\n1 worker RSS: {rss_start:.0f} MiB after start, {rss_traffic:.0f} MiB after "
          f"{len(ids)} requests (exit code {code})")


def test_sigterm_while_requests_are_in_flight(start_server: Factory, iris: IrisModels,
                                              tmp_path: Path) -> None:
    """Requests still running when SIGTERM arrives finish, and each one answered is logged;
    no request is logged without having been answered."""
    server = start_server()
    # far more requests than are answered before the SIGTERM (which cuts the rest off), so
    # a fast, quiet machine cannot finish the burst first
    ids = new_ids("f", 2000)
    with ThreadPoolExecutor(1) as pool:
        burst = pool.submit(send, server, iris, ids, rows=200, threads=8)
        # wait (bounded) until part of the burst has been answered, then stop the server
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not burst.done():
            text = httpx.get(f"{server.base}/metrics", timeout=10).text
            if metric(text, "shipyard_requests_total") >= 40:
                break
            time.sleep(0.01)
        assert not burst.done(), "the burst finished before SIGTERM: make it longer"
        server.signal(signal.SIGTERM)
        statuses = burst.result()
    server.wait()
    answered = {rid for rid, status in statuses.items() if status == 200}
    others = {rid: s for rid, s in statuses.items() if s != 200}
    assert set(others.values()) <= {0, 503}, others  # refused or cut off, never a 5xx crash
    counts = logged(tmp_path / "logs")
    assert max(counts.values()) == 1
    assert set(counts) == answered
    check_segments_readable(tmp_path / "logs")
    print(f"\nSIGTERM mid-burst: {len(answered)} answered and logged, {len(others)} not "
          "answered")


def test_sigkill_loses_at_most_the_last_flush_interval(start_server: Factory,
                                                       iris: IrisModels,
                                                       tmp_path: Path) -> None:
    server = start_server()
    early = new_ids("early", 80)
    assert set(send(server, iris, early).values()) == {200}
    time.sleep(2.5)  # > 1 s flush interval, with a generous margin
    late = new_ids("late", 80)
    late_status = send(server, iris, late)
    os.killpg(server.pid, signal.SIGKILL)  # no shutdown, no final flush
    assert server.wait() == -signal.SIGKILL
    log_dir = tmp_path / "logs"
    check_segments_readable(log_dir)
    counts = logged(log_dir)
    assert max(counts.values()) == 1
    missing = [rid for rid in early if rid not in counts]
    assert not missing, f"{len(missing)} requests answered 2.5 s before the kill were lost"
    answered_late = {rid for rid, s in late_status.items() if s == 200}
    assert set(counts) <= set(early) | answered_late
    print(f"\nSIGKILL: {sum(rid in counts for rid in late)} of the {len(late)} requests "
          "answered just before the kill were logged")
    # what the killed group had not written yet is in its inference process's spool: the
    # next server on the same log replays it. Only the log entries (request ids, latency)
    # the server had not yet passed to its inference process die with it: they travel with
    # the next batch's frame, so at most the last batch, <= 8 requests with 8 clients.
    again = start_server()
    counts = settled_log(log_dir, answered_late)
    assert max(counts.values()) == 1
    lost = sorted(answered_late - set(counts))
    assert len(lost) <= 8, f"{len(lost)} answered requests were not replayed: {lost[:9]}"
    print(f"after a restart: {len(answered_late) - len(lost)} of {len(answered_late)} logged")
    assert not list((log_dir / "spool").rglob("*.spool")) or again.proc.poll() is None


def test_two_workers_each_serve_and_log(start_server: Factory, iris: IrisModels,
                                        tmp_path: Path) -> None:
    server = start_server("--workers", "2")
    kids = {pid: cmdline(pid) for pid in children(server.pid)}
    workers = [pid for pid, cmd in kids.items() if "spawn_main" in cmd]
    helpers = [pid for pid in kids if pid not in workers]  # multiprocessing's resource tracker
    assert len(workers) == 2, kids
    deadline = time.monotonic() + 60  # ready means one worker is; wait for the other too
    while server.output().count("Application startup complete") < 2:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    # each worker runs its model in an inference process, which writes that worker's log
    writer_of = {child: worker for worker in workers for child in children(worker)}
    assert sorted(writer_of.values()) == sorted(workers), (writer_of, workers)
    at_start = {pid: rss_mib(pid) for pid in [server.pid, *kids, *writer_of]}
    log_dir = tmp_path / "logs"
    sent: list[str] = []
    seen: set[int] = set()
    for round_ in range(6):  # bounded; big bodies keep one worker's event loop busy
        ids = new_ids(f"w{round_}", 24)  # parsing, so the kernel hands the other worker some
        statuses = send(server, iris, ids, rows=1000, threads=8, fresh_connections=True)
        assert set(statuses.values()) == {200}
        sent += ids
        deadline = time.monotonic() + 3  # wait for the 1 s flush of both workers
        # segments are TIME-PID-SEQ: an inference process names them after its spool,
        # whose PID is the worker that started it (runtimes/process.py)
        while time.monotonic() < deadline:
            seen = {int(p.name.split("-")[1]) for p in segments(log_dir)}
            if seen == set(workers):
                break
            time.sleep(0.1)
        if seen == set(workers):
            break
    names = {server.pid: "supervisor", **{pid: f"worker {pid}" for pid in workers},
             **{pid: f"inference process of {w}" for pid, w in writer_of.items()},
             **{pid: f"resource tracker {pid}" for pid in helpers}}
    after = {pid: rss_mib(pid) for pid in names}
    assert seen == set(workers), f"segments from {seen}, workers {workers} ({writer_of})"
    shared = worker_metrics_dir(workers)
    scraped = scrape_totals(server, len(sent))
    assert scraped == [len(sent)] * len(scraped), scraped  # every scrape: both workers' counts
    snapshots = sorted(p.name for p in shared.iterdir())
    assert snapshots == sorted(f"{pid}.metrics.json" for pid in workers), snapshots
    server.signal(signal.SIGTERM)
    code = server.wait()
    assert code in (0, -signal.SIGTERM), server.output()
    for pid in [*workers, *writer_of]:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text(), f"process {pid} outlived the supervisor"
    counts = logged(log_dir)
    assert counts == Counter(sent)  # both workers flushed on shutdown
    assert not shared.exists(), "the supervisor leaves its metrics directory behind"
    per_worker = Counter(int(p.name.split("-")[1]) for p in segments(log_dir))
    figures = ", ".join(f"{name} {at_start[pid]:.0f} -> {after[pid]:.0f} MiB"
                        for pid, name in names.items())
    print(f"\n--workers 2 RSS after start -> after {len(sent)} requests of 1000 rows: "
          f"{figures}; total {sum(at_start.values()):.0f} -> {sum(after.values()):.0f} MiB; "
          f"segments per worker {dict(per_worker)}")


def worker_metrics_dir(workers: Sequence[int]) -> Path:
    """The directory where ``--workers N`` share their metrics (from a worker's environment:
    the same for every worker)."""
    found = set()
    for pid in workers:
        env = dict(item.split("=", 1) for item in
                   Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
        found.add(env["SHIPYARD_WORKER_METRICS_DIR"])
    assert len(found) == 1, found
    return Path(found.pop())


def scrape_totals(server: ServerProcess, want: int, scrapes: int = 8) -> list[int]:
    """``shipyard_requests_total`` of the endpoint in ``scrapes`` scrapes, each on a new
    connection (so both workers answer some), once one shows ``want`` (within 5 s: another
    worker's snapshot is at most a second old)."""
    def total() -> int:
        with httpx.Client(timeout=10) as client:
            r = client.get(f"{server.base}/metrics")
        assert r.status_code == 200, r.text
        return int(metric(r.text, "shipyard_requests_total", endpoint=ENDPOINT, status="200"))

    deadline = time.monotonic() + 5
    while total() != want and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.2)  # let both workers publish after that
    return [total() for _ in range(scrapes)]


def _raw(server: ServerProcess, data: bytes) -> None:
    """Send ``data`` on a fresh connection and hang up at once, reading nothing."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)


def test_clients_that_hang_up_mid_request_harm_no_one_else(start_server: Factory,
                                                           iris: IrisModels,
                                                           tmp_path: Path) -> None:
    """While other clients keep predicting, some hang up half-way through the headers,
    half-way through the body, or right after sending a whole request (so it is batched and
    predicted for nobody). Every other request is answered and logged exactly once; the
    server logs no error and keeps serving."""
    server = start_server()
    body = json.dumps(rows_payload(iris.x[:3])).encode()
    path = f"/v1/endpoints/{ENDPOINT}/predict"

    def request(rid: str, content_length: int) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"X-Request-Id: {rid}\r\nContent-Length: {content_length}\r\n\r\n").encode()

    def hang_ups(rounds: int) -> list[str]:
        gone = []
        for i in range(rounds):
            _raw(server, request(f"cut-headers-{i}", len(body))[:30])
            _raw(server, request(f"cut-body-{i}", len(body)) + body[:len(body) // 2])
            gone.append(f"gone-{i}")
            _raw(server, request(gone[-1], len(body)) + body)
        return gone

    ids = new_ids("stay", 300)
    with ThreadPoolExecutor(2) as pool:
        staying = pool.submit(send, server, iris, ids, threads=6)
        cutting = pool.submit(hang_ups, 40)
        statuses, gone = staying.result(), cutting.result()
    assert set(statuses.values()) == {200}
    after = httpx.post(f"{server.base}{path}", json=rows_payload(iris.x[:2]),
                       headers={"X-Request-Id": "after"}, timeout=30)
    assert after.status_code == 200
    server.signal(signal.SIGTERM)
    server.wait()
    output = server.output()
    for bad in ("Traceback", "Exception in ASGI application", "internal error"):
        assert bad not in output, output
    counts = logged(tmp_path / "logs")
    assert {rid: counts[rid] for rid in [*ids, "after"]} == dict.fromkeys([*ids, "after"], 1)
    # a request predicted for a client that had left may be logged, once; one whose body
    # never arrived was never predicted
    assert set(counts) - {*ids, "after"} <= set(gone)
    assert max(counts.values()) == 1
    check_segments_readable(tmp_path / "logs")
