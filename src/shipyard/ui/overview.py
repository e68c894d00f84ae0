"""The overview: every endpoint at a glance, one row each. Each figure is the one the API
gives: the newest analysed monitor window (as ``/metrics`` exports it), traffic shares and
rollouts as ``GET /v1/deployments`` answers, server errors from the prediction log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.service.deployment_status import deployments_overview
from shipyard.ui.layout import cell, fmt, page, pct, table, text_cell, url
from shipyard.ui.source import DashboardSource

# the headline metric per task: realised (labels) and estimated (label-free) beside it
HEADLINE = ("accuracy", "mae")


@dataclass(frozen=True)
class EndpointRow:
    name: str
    health: str
    traffic: list[dict[str, Any]]  # {version, variant, percent} as the admin API has them
    window_end: str | None
    requests: int | None
    request_rate: float | None  # requests per second over the window
    errors: int | None
    error_rate: float | None  # server errors / (requests + server errors)
    p50_ms: float | None
    p99_ms: float | None
    drift_share: float | None
    dataset_drift: bool | None
    metric: str | None
    realised: float | None
    estimated: float | None
    rules: list[str]
    firing: list[str]
    rollout: dict[str, Any] | None


def overview_rows(source: DashboardSource) -> tuple[list[EndpointRow], str]:
    """A row per endpoint, and what could not be read (a registry out of reach leaves the
    rest of the page standing: traffic then comes from the data plane)."""
    deployed: dict[str, dict[str, Any]] = {}
    problem = ""
    try:
        registry = source.registry
        if registry is not None:
            deployed = {d["endpoint"]: d for d in deployments_overview(registry)}
    except ShipyardError as exc:
        problem = f"the registry could not be read: {exc}"
    return [endpoint_row(source, name, deployed.get(name)) for name in source.endpoints()], \
        problem


def endpoint_row(source: DashboardSource, name: str,
                 deployment: Mapping[str, Any] | None) -> EndpointRow:
    newest = source.newest(name)
    record = newest.record or {}
    window = record.get("window") or {}
    metrics = record.get("metrics") or {}
    requests = record.get("requests")
    span = float(window["end_ts"]) - float(window["start_ts"]) if window else 0.0
    errors = sum(source.errors(name, window).values()) if window else None
    drift = record.get("drift") or {}
    metric, realised, estimated = headline(record.get("performance") or {})
    return EndpointRow(
        name=name, health=health(source, name),
        traffic=list((deployment or {}).get("traffic") or served_traffic(source, name)),
        window_end=window.get("end"), requests=requests,
        request_rate=requests / span if requests is not None and span > 0 else None,
        errors=errors,
        error_rate=errors / (requests + errors) if errors is not None and requests is not None
        and requests + errors > 0 else None,
        p50_ms=metrics.get("p50_latency_ms"), p99_ms=metrics.get("p99_latency_ms"),
        drift_share=drift.get("drift_share"),
        dataset_drift=None if not drift else bool(drift.get("dataset_drift")),
        metric=metric, realised=realised, estimated=estimated,
        rules=newest.rules, firing=sorted(newest.firing),
        rollout=(deployment or {}).get("rollout"))


def headline(performance: Mapping[str, Any]) -> tuple[str | None, float | None, float | None]:
    """The task's headline metric, realised over the window's labelled rows and estimated."""
    realised = performance.get("realised") or {}
    estimated = performance.get("estimated") or {}
    for metric in HEADLINE:
        if metric in realised or metric in estimated:
            return metric, realised.get(metric), estimated.get(metric)
    return None, None, None


def health(source: DashboardSource, name: str) -> str:
    """``ready`` / ``loading`` / ``failed: …`` on a model server; else what the monitor's
    files say (the dashboard runs without a server)."""
    plane = source.plane
    if plane is None:
        return "not served here"
    endpoint = plane.endpoints.get(name)
    if endpoint is None:
        return "unknown"
    table_ = endpoint.table
    if table_ is not None and all(table_.deployments[v].ready for v in table_.policy.versions) \
            and (table_.joint is None or table_.joint.ready):  # a split's joint process too
        return "ready"
    return "loading" if endpoint.last_error is None else f"failed: {endpoint.last_error}"


def served_traffic(source: DashboardSource, name: str) -> list[dict[str, Any]]:
    """A served endpoint without a registry policy (a package path): its one version."""
    plane = source.plane
    endpoint = None if plane is None else plane.endpoints.get(name)
    current = None if endpoint is None else endpoint.current
    if current is None:
        return []
    return [{"version": str(current.version), "variant": "stable", "percent": 100.0}]


def traffic_text(traffic: list[dict[str, Any]]) -> str:
    return ", ".join(f"{t['version']} {t['percent']:g}%"
                     + (f" (shadow copies {t['copied_percent']:g}%)"
                        if t.get("copied_percent") else "") for t in traffic) or "n/a"


def rollout_text(rollout: Mapping[str, Any] | None) -> str:
    if not rollout:
        return "none"
    steps = rollout.get("steps")
    step = f" step {int(rollout.get('step', 0)) + 1} of {steps}" if steps else ""
    return f"{rollout.get('kind')} to {rollout.get('candidate')}{step}"


def render_overview(rows: list[EndpointRow], *, served: bool, notice: str = "") -> str:
    lines = []
    for r in rows:
        health_tone = "ok" if r.health == "ready" else "bad" if r.health.startswith(
            "failed") else ""
        drift = "n/a" if r.drift_share is None else (
            f"{pct(r.drift_share)}{' — drifted' if r.dataset_drift else ''}")
        lines.append(
            f'<tr data-endpoint="{escape(r.name)}"><th scope="row">'
            f'<a href="{url("endpoints", r.name)}">{escape(r.name)}</a></th>'
            + text_cell(r.health, tone=health_tone)
            + text_cell(traffic_text(r.traffic))
            + cell(r.request_rate, name="request_rate")
            + cell(r.error_rate, pct(r.error_rate), name="error_rate",
                   tone="bad" if r.error_rate else "")
            + cell(r.p50_ms, name="p50_latency_ms") + cell(r.p99_ms, name="p99_latency_ms")
            + cell(r.drift_share, drift, name="drift_share",
                   tone="bad" if r.dataset_drift else "")
            + cell(r.realised, f"{r.metric} {fmt(r.realised)}" if r.metric else "n/a",
                   name="realised")
            + cell(r.estimated, fmt(r.estimated), name="estimated")
            + cell(len(r.firing), ", ".join(r.firing) or "none", name="alerts_firing",
                   tone="bad" if r.firing else "ok")
            + text_cell(rollout_text(r.rollout))
            + f"<td>{escape(r.window_end or 'no window yet')}</td></tr>")
    caption = ("Each endpoint's newest monitored window (the figures /metrics exports): "
               "requests per second, server-error rate, latency percentiles (ms), share of "
               "features drifted, the headline metric realised from feedback labels and "
               "estimated without them; alerts firing now; traffic and rollouts from the "
               "registry.")
    headers = ["endpoint", "health", "versions live (traffic)", "requests/s", "error rate",
               "p50 ms", "p99 ms", "drift", "realised", "estimated", "alerts firing",
               "rollout", "window end"]
    body = (table(caption, headers, lines, cls="overview") if rows else
            "<p>No endpoint yet: serve one (<code>shipyard serve</code>) or run the "
            "monitor (<code>shipyard monitor run</code>).</p>")
    note = "" if served else ("<p class=\"meta\">Read from the registry and the log "
                              "directory; no model server here (health and Try it need "
                              "<code>shipyard serve</code>).</p>")
    unmonitored = [r.name for r in rows if r.window_end is None]
    if unmonitored:  # why its figures are n/a, and how to get them
        note += ("<p class=\"meta\" data-metric=\"unmonitored\">No monitored window yet for "
                 f"{escape(', '.join(unmonitored))}: its traffic, drift and quality figures "
                 "come from the monitor. Give the serve config a <code>monitor:</code> "
                 "section (it runs on its schedule) or run <code>shipyard monitor run "
                 "ENDPOINT</code>.</p>")
    return page("Overview", note + body, active="overview", notice=notice)
