"""Two ``shipyard serve`` processes enforce ONE rate limit through the real Redis on
127.0.0.1:6379: clients hammer both for a few seconds with the same API key, and the 200s
they get together match ``burst + rate * seconds`` within 10% (each server alone, with
buckets in memory, would have let about twice that through)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from redis_server import fresh_prefix, redis_or_skip
from serving.helpers import IrisModels, ServerProcess, metric, rows_payload

RATE, BURST = 40.0, 20
SECONDS = 4.0
KEY = "shared-limit-test-key"


@pytest.fixture
def two_servers(tmp_path: Path, iris: IrisModels) -> Iterator[list[ServerProcess]]:
    url = redis_or_skip()
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "endpoints": [{"name": "iris", "model": str(iris.v1_dir)}],
        "api_keys": {"tester": KEY},
        "rate_limits": {"per_key": {"rate": RATE, "burst": BURST}},
        "rate_limit_store": url,
        "rate_limit_prefix": fresh_prefix(),
    }))
    servers = [ServerProcess(["--config", str(config), "--log-dir", str(tmp_path / "logs")],
                             home=tmp_path / "home", out=tmp_path / f"server{i}.out")
               for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_two_servers_share_one_limit_through_redis(two_servers: list[ServerProcess],
                                                   iris: IrisModels) -> None:
    body = rows_payload(iris.x[:1])
    headers = {"Authorization": f"Bearer {KEY}"}
    counts: Counter[tuple[int, int]] = Counter()  # (server, status) -> answers
    lock = threading.Lock()
    start = time.monotonic()
    stop_at = start + SECONDS
    first, last = [stop_at], [start]

    def hammer(index: int) -> None:
        server = two_servers[index % 2]
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop_at:
                answer = client.post(f"{server.base}/v1/endpoints/iris/predict", json=body,
                                     headers=headers)
                done = time.monotonic()
                with lock:
                    counts[(index % 2, answer.status_code)] += 1
                    if answer.status_code == 200:
                        first[0] = min(first[0], done)
                        last[0] = max(last[0], done)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # from the first answer let through (the burst went then) to the last one
    window = last[0] - first[0]
    accepted = counts[(0, 200)] + counts[(1, 200)]
    refused = counts[(0, 429)] + counts[(1, 429)]
    assert set(status for _, status in counts) <= {200, 429}, counts
    expected = BURST + RATE * window
    assert refused > accepted, counts  # the clients really went over the limit
    assert abs(accepted - expected) <= 0.1 * expected, (accepted, expected, window,
                                                        first[0] - start, counts)
    # both servers answered and both refused: one limit, not one per server
    for server in (0, 1):
        assert counts[(server, 200)] > 0 and counts[(server, 429)] > 0, counts
    limited = sum(metric(httpx.get(f"{s.base}/metrics", headers={"X-API-Key": KEY}).text,
                         "shipyard_rate_limited_total", endpoint="iris", key="tester",
                         limit="per_key")
                  for s in two_servers)
    assert limited == refused
