"""``shipyard loadtest``: load a served model with realistic rows and measure it.

Rows come from the package's reference profile (its uniform row sample: the data the model
was packaged with, not one repeated example), sent as simple-JSON predict requests to the
URL the user gives, and to nothing else.

- **Open loop** (``rate``): request *i* is due at ``start + i / rate`` whatever happened
  before, and its latency counts from when it was due, not from when it was sent, so a
  server that stalls cannot hide its stall by slowing the client (coordinated omission).
- **Closed loop** (``concurrency``): that many clients, each sending its next request when
  its last one was answered.
- **Ramp**: open-loop steps at rising rates; the highest rate whose p99 met the target and
  which was achieved is reported.

Latencies go into an HDR histogram (1 µs to 60 s, three significant digits).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_IN_FLIGHT = 10_000  # open loop: requests past this many outstanding are dropped, counted
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass
class LoadResult:
    """One load step: what was sent, answered and how fast."""

    mode: str  # open or closed
    target: float  # the rate asked for (open) or the concurrency (closed)
    duration_s: float
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # "200", "503", "connect error"
    dropped: int = 0  # open loop: not sent, too many outstanding
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != "200")

    @property
    def achieved_rate(self) -> float:
        return sum(self.statuses.values()) / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "target": self.target, "duration_s": self.duration_s,
                "sent": self.sent, "answered": sum(self.statuses.values()), "ok": self.ok,
                "errors": self.errors, "statuses": dict(self.statuses),
                "dropped": self.dropped, "achieved_rate": self.achieved_rate,
                "latency_ms": self.latency_ms}


def reference_bodies(model: str, *, batch: int = 1, limit: int = 2000) -> list[bytes]:
    """Request bodies of ``batch`` rows each from ``model``'s reference sample (a package
    directory or a ``models:/`` URI, fetched from the registry)."""
    from pathlib import Path

    from shipyard.errors import ShipyardError
    from shipyard.registry import Registry, is_model_uri
    from shipyard.runtimes.model import describe

    path = Path(model)
    if is_model_uri(model):
        with Registry() as registry:
            path = registry.fetch(model)
    package = describe(path, model_files=False)
    profile = package.reference_profile()
    names = [spec.name for spec in package.signature.inputs]
    if profile is None or not all(n in profile.sample for n in names):
        raise ShipyardError(f"{model} has no reference rows to send (package it with a "
                            "sample, or use a newer package)")
    columns = {n: list(profile.sample[n]) for n in names}
    rows = [{n: _plain(columns[n][i]) for n in names}
            for i in range(min(limit, len(columns[names[0]])))]
    if not rows:
        raise ShipyardError(f"{model}'s reference sample is empty")
    return [json.dumps({"instances": [rows[(i + j) % len(rows)] for j in range(batch)]})
            .encode() for i in range(0, len(rows), batch)]


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    return None if isinstance(value, float) and value != value else value


def _histogram() -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(1, 60_000_000, 3)  # microseconds


def _summary(histogram: Any) -> dict[str, float]:
    if histogram.get_total_count() == 0:
        return {}
    out = {f"p{p:g}": histogram.get_value_at_percentile(p) / 1000.0 for p in PERCENTILES}
    out["max"] = histogram.get_max_value() / 1000.0
    return out


async def _send(client: Any, url: str, body: bytes, headers: dict[str, str]) -> str:
    import httpx

    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.ConnectError:
        return "connect error"
    except httpx.TimeoutException:
        return "timeout"
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return str(response.status_code)


async def open_loop(url: str, bodies: Sequence[bytes], rate: float, duration_s: float, *,
                    headers: dict[str, str] | None = None, timeout_s: float = 30.0
                    ) -> LoadResult:
    """Send ``rate`` requests a second for ``duration_s``, each at its due time."""
    import httpx

    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    result = LoadResult("open", rate, duration_s)
    histogram = _histogram()
    sent_headers = {"content-type": "application/json", **(headers or {})}
    total = int(rate * duration_s)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending: set[asyncio.Task[None]] = set()

        async def one(i: int, due: float) -> None:
            status = await _send(client, url, bodies[i % len(bodies)], sent_headers)
            result.statuses[status] += 1
            histogram.record_value(max(1, int((loop.time() - due) * 1e6)))

        for i in range(total):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(pending) >= MAX_IN_FLIGHT:
                result.dropped += 1
                continue
            task = loop.create_task(one(i, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            result.sent += 1
        if pending:
            await asyncio.wait(pending)
    result.latency_ms = _summary(histogram)
    return result


async def closed_loop(url: str, bodies: Sequence[bytes], concurrency: int, duration_s: float,
                      *, headers: dict[str, str] | None = None, timeout_s: float = 30.0
                      ) -> LoadResult:
    """``concurrency`` clients, each sending its next request when answered."""
    import httpx

    if concurrency < 1 or duration_s <= 0:
        raise ValueError("concurrency must be at least 1 and the duration positive")
    result = LoadResult("closed", concurrency, duration_s)
    histogram = _histogram()
    sent_headers = {"content-type": "application/json", **(headers or {})}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        end = time.perf_counter() + duration_s

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < end:
                started = time.perf_counter()
                result.sent += 1
                status = await _send(client, url, bodies[i % len(bodies)], sent_headers)
                result.statuses[status] += 1
                histogram.record_value(max(1, int((time.perf_counter() - started) * 1e6)))
                i += concurrency

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.latency_ms = _summary(histogram)
    return result


async def ramp(url: str, bodies: Sequence[bytes], rates: Sequence[float], step_s: float,
               target_p99_ms: float, *, headers: dict[str, str] | None = None
               ) -> tuple[list[LoadResult], float | None]:
    """Open-loop steps at ``rates`` (rising); stops after the first step that misses the
    target. Returns the steps and the highest rate that met it (achieved within 10 %,
    no errors, p99 at most ``target_p99_ms``)."""
    steps: list[LoadResult] = []
    best = None
    for rate in rates:
        step = await open_loop(url, bodies, rate, step_s, headers=headers)
        steps.append(step)
        met = (step.errors == 0 and step.dropped == 0
               and step.achieved_rate >= 0.9 * rate
               and step.latency_ms.get("p99", float("inf")) <= target_p99_ms)
        if not met:
            break
        best = rate
    return steps, best
