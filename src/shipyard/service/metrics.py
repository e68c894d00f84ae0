"""Prometheus metrics of one serving process (one registry per data plane, so tests and
several apps in one process never share counters), and ``SharedMetrics``: one ``/metrics``
for the worker processes of ``--workers N``."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from shipyard.stores.predictions import LogStats

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class SharedSource(Collector, Protocol):
    """A collector that reads state every worker shares; ``names``: its families."""

    names: frozenset[str]


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.shared_sources: list[SharedSource] = []
        self.requests = RequestStats()  # shipyard_requests_total + latency histogram
        self.registry.register(self.requests)
        self.batch_size = Histogram(
            "shipyard_batch_size_rows", "Rows per model call after adaptive batching.",
            ["endpoint", "model", "version"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.load_seconds = Gauge(
            "shipyard_model_load_seconds", "Seconds to load and warm up a model version.",
            ["endpoint", "model", "version"], registry=self.registry)
        self.load_failures = Counter(
            "shipyard_model_load_failures", "Model versions that failed to load or warm up.",
            ["endpoint", "model"], registry=self.registry)
        self.swaps = Counter(
            "shipyard_model_swaps", "Hot swaps to a new model version.", ["endpoint"],
            registry=self.registry)
        self.retained = Gauge(
            "shipyard_retained_versions", "Versions a swap left out, kept loaded (not routed "
            "to) for retain_previous_s so that a rollback needs no load.", ["endpoint"],
            registry=self.registry)

    def watch(self, depth: Callable[[], dict[str, int]], log_stats: Callable[[], LogStats],
              capacity: Callable[[], dict[str, int]] = dict) -> None:
        """Values read at scrape time: queue depth and capacity per endpoint, prediction-log
        counters."""
        self.registry.register(_ScrapeTime(depth, log_stats, capacity))

    def watch_shared(self, *collectors: SharedSource) -> None:
        """Collectors whose values every worker reads from the same source (stored monitor
        results, the rollout state): ``SharedMetrics`` asks them afresh on each scrape
        instead of adding up every worker's copy."""
        for collector in collectors:
            self.registry.register(collector)
            self.shared_sources.append(collector)


class _ScrapeTime(Collector):
    def __init__(self, depth: Callable[[], dict[str, int]],
                 log_stats: Callable[[], LogStats],
                 capacity: Callable[[], dict[str, int]] = dict) -> None:
        self.depth = depth
        self.log_stats = log_stats
        self.capacity = capacity

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        queue = GaugeMetricFamily("shipyard_queue_depth", "Requests waiting for the model.",
                                  labels=["endpoint"])
        for endpoint, value in self.depth().items():
            queue.add_metric([endpoint], value)
        yield queue
        limit = GaugeMetricFamily("shipyard_queue_capacity", "Requests a version's queue "
                                  "holds before new ones are refused (max_queue).",
                                  labels=["endpoint"])
        for endpoint, value in self.capacity().items():
            limit.add_metric([endpoint], value)
        yield limit
        stats = self.log_stats()
        writes = CounterMetricFamily("shipyard_prediction_log_rows",
                                     "Prediction-log rows written, dropped, or quarantined "
                                     "(set aside after a failed segment write).",
                                     labels=["outcome"])
        writes.add_metric(["written"], stats.written_rows)
        writes.add_metric(["dropped"], stats.dropped_rows)
        writes.add_metric(["quarantined"], stats.quarantined_rows)
        yield writes
        segments = CounterMetricFamily("shipyard_prediction_log_segments",
                                       "Parquet segments written.")
        segments.add_metric([], stats.segments)
        yield segments
        errors = CounterMetricFamily("shipyard_prediction_log_write_errors",
                                     "Segments that failed to write.")
        errors.add_metric([], stats.write_errors)
        yield errors


class RequestStats(Collector):
    """``shipyard_requests_total`` and ``shipyard_request_latency_seconds``, kept as plain
    per-label-set lists and turned into Prometheus families only at scrape time.

    ``observe`` runs once per request on the event loop: a dict lookup, a bisect and two
    list updates (no locks, no label-dict building), several times cheaper than a
    prometheus_client ``Counter.inc`` + ``Histogram.observe`` pair, which take a lock per
    value. Only the event loop writes; a scrape reads a snapshot."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._le = [repr(float(b)) for b in buckets] + ["+Inf"]  # as prometheus_client
        # (endpoint, model, version, status, protocol) -> [count per bucket..., +Inf, sum]
        self._series: dict[tuple[str, str, str, str, str], list[float]] = {}

    def observe(self, key: tuple[str, str, str, str, str], seconds: float) -> None:
        row = self._series.get(key)
        if row is None:
            row = self._series[key] = [0] * (len(self.buckets) + 1) + [0.0]
        row[bisect_left(self.buckets, seconds)] += 1
        row[-1] += seconds

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        series = [(key, list(row)) for key, row in list(self._series.items())]
        requests = CounterMetricFamily(
            "shipyard_requests", "Prediction requests by endpoint, model, version, status.",
            labels=["endpoint", "model", "version", "status", "protocol"])
        merged: dict[tuple[str, ...], list[float]] = {}  # the latency histogram has no protocol
        for key, row in series:
            requests.add_metric(list(key), sum(row[:-1]))
            into = merged.setdefault(key[:4], [0] * len(row))
            for i, value in enumerate(row):
                into[i] += value
        yield requests
        latency = HistogramMetricFamily(
            "shipyard_request_latency_seconds", "Time from request to response.",
            labels=["endpoint", "model", "version", "status"])
        for labels, row in merged.items():
            cumulative = list(itertools.accumulate(row[:-1]))
            latency.add_metric(list(labels), list(zip(self._le, cumulative, strict=True)),
                               sum_value=row[-1])
        yield latency


# -- several worker processes: one /metrics ---------------------------------------------------

# how a gauge's values from the live workers combine (default: their sum)
GAUGE_MERGE: dict[str, str] = {"shipyard_model_load_seconds": "max"}
SNAPSHOT_SUFFIX = ".metrics.json"


class SharedMetrics:
    """``/metrics`` of a server with ``--workers N``: every worker answers a scrape with the
    whole server's figures, not its own share.

    Each worker writes a snapshot of its registry to ``directory/<pid>.metrics.json`` every
    ``interval`` seconds (``run``), when it answers a scrape, and when it stops. A scrape
    merges every snapshot in the directory: counters and histograms are summed over all
    workers, including ones that have exited (their counts happened, and a total must never
    go down while the server runs); gauges only over live workers, summed (queue depth) or
    by ``GAUGE_MERGE`` (the highest model load time). Another worker's figures are at most
    ``interval`` seconds old. ``_created`` samples are left out: they do not add up.
    The families of ``shared`` (state every worker reads alike: stored monitor results)
    are neither snapshotted nor merged: the answering worker reads them afresh."""

    def __init__(self, registry: Collector, directory: Path, *, interval: float = 1.0,
                 pid: int | None = None, shared: Sequence[SharedSource] = ()) -> None:
        self.registry = registry
        self.shared = list(shared)
        self._skip = frozenset().union(*(c.names for c in self.shared))
        self.directory = directory
        self.interval = interval
        self.pid = os.getpid() if pid is None else pid
        self.path = directory / f"{self.pid}{SNAPSHOT_SUFFIX}"

    def publish(self, *, live: bool = True) -> None:
        """Write this worker's snapshot (whole: a new file renamed over the old one)."""
        families = [{"name": m.name, "type": m.type, "help": m.documentation,
                     "samples": [[s.name, s.labels, s.value] for s in m.samples
                                 if not s.name.endswith("_created")]}
                    for m in self.registry.collect() if m.name not in self._skip]
        body = json.dumps({"pid": self.pid, "live": live, "families": families})
        staged = self.path.with_suffix(".tmp")
        staged.write_text(body, encoding="utf-8")
        staged.replace(self.path)

    async def run(self) -> None:
        """Publish every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.publish()
            except OSError:  # a full or vanished directory must not stop the worker
                log.exception("could not write this worker's metrics snapshot")

    def render(self) -> bytes:
        """The whole server's metrics in Prometheus' text format."""
        self.publish()
        snapshots = []
        for path in sorted(self.directory.glob(f"*{SNAPSHOT_SUFFIX}")):
            try:
                snapshots.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):  # vanished, or a worker's tmp file was never renamed
                continue
        fresh = [m for collector in self.shared for m in collector.collect()]
        return generate_latest(_Merged([*merge_snapshots(snapshots), *fresh]))


def merge_snapshots(snapshots: list[dict[str, Any]]) -> list[Metric]:
    """The families of every snapshot, merged (see ``SharedMetrics``)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]] = {}
    for snap in snapshots:
        live = bool(snap.get("live")) and _alive(int(snap["pid"]))
        for fam in snap["families"]:
            name, kind = fam["name"], fam["type"]
            if name not in families:
                families[name] = Metric(name, fam["help"], kind)
                values[name] = {}
            if kind == "gauge" and not live:
                continue
            into = values[name]
            for sample, labels, value in fam["samples"]:
                into.setdefault((sample, tuple(sorted(labels.items()))), []).append(value)
    for name, metric in families.items():
        combine = max if GAUGE_MERGE.get(name) == "max" and metric.type == "gauge" else sum
        for (sample, labels), found in values[name].items():
            metric.add_sample(sample, dict(labels), float(combine(found)))
    return list(families.values())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class _Merged:
    """What ``generate_latest`` reads: merged families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
