"""Prometheus metrics of one serving process (one registry per data plane, so tests and
several apps in one process never share counters)."""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from shipyard.stores.predictions import LogStats

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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

    def watch(self, depth: Callable[[], dict[str, int]], log_stats: Callable[[], LogStats],
              ) -> None:
        """Values read at scrape time: queue depth per endpoint, prediction-log counters."""
        self.registry.register(_ScrapeTime(depth, log_stats))


class _ScrapeTime(Collector):
    def __init__(self, depth: Callable[[], dict[str, int]],
                 log_stats: Callable[[], LogStats]) -> None:
        self.depth = depth
        self.log_stats = log_stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        queue = GaugeMetricFamily("shipyard_queue_depth", "Requests waiting for the model.",
                                  labels=["endpoint"])
        for endpoint, value in self.depth().items():
            queue.add_metric([endpoint], value)
        yield queue
        stats = self.log_stats()
        writes = CounterMetricFamily("shipyard_prediction_log_rows",
                                     "Prediction-log rows written or dropped.",
                                     labels=["outcome"])
        writes.add_metric(["written"], stats.written_rows)
        writes.add_metric(["dropped"], stats.dropped_rows)
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
