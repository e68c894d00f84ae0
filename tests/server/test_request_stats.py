"""RequestStats: the hot routes' request counter and latency histogram, as Prometheus sees them."""

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shipyard.service.metrics import ServingMetrics


def _samples(metrics: ServingMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_counts_buckets_and_sums_like_prometheus_client() -> None:
    metrics = ServingMetrics()
    for seconds in (0.0003, 0.005, 0.005, 0.03, 20.0):  # 0.005 is a bucket edge: le="0.005"
        metrics.requests.observe(("ep", "m", "1", "200", "json"), seconds)
    metrics.requests.observe(("ep", "m", "1", "200", "oip"), 0.001)
    metrics.requests.observe(("ep", "m", "1", "400", "json"), 0.0001)
    got = _samples(metrics)
    ok = (("endpoint", "ep"), ("model", "m"))

    def req(protocol: str, status: str) -> float:
        return got[("shipyard_requests_total", tuple(sorted(
            (*ok, ("protocol", protocol), ("status", status), ("version", "1")))))]

    def lat(suffix: str, status: str = "200", le: str | None = None) -> float:
        labels = (*ok, ("status", status), ("version", "1"), *([("le", le)] if le else []))
        return got[(f"shipyard_request_latency_seconds{suffix}", tuple(sorted(labels)))]

    assert (req("json", "200"), req("oip", "200"), req("json", "400")) == (5, 1, 1)
    # the histogram has no protocol label: json and oip requests are merged
    assert [lat("_bucket", le=le) for le in ("0.0005", "0.001", "0.002", "0.005", "0.01",
                                              "0.05", "10.0", "+Inf")] == [1, 2, 2, 4, 4, 5, 5, 6]
    assert lat("_count") == 6
    assert abs(lat("_sum") - (0.0003 + 0.01 + 0.03 + 20.0 + 0.001)) < 1e-9
    assert lat("_count", status="400") == 1
