"""Prometheus metrics of one serving process (one registry per data plane, so tests and
several apps in one process never share counters)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shipyard.stores.predictions import LogStats

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "shipyard_requests", "Prediction requests by endpoint, model, version, status.",
            ["endpoint", "model", "version", "status", "protocol"], registry=self.registry)
        self.latency = Histogram(
            "shipyard_request_latency_seconds", "Time from request to response.",
            ["endpoint", "model", "version", "status"], buckets=LATENCY_BUCKETS,
            registry=self.registry)
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
