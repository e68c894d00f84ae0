"""An endpoint over time: its stored monitor windows (newest ``last``), as charts with their
tables. Traffic and latency, server errors per version (from the prediction log's ``errors``
rows, read once for the whole span), drift per feature as a feature x window heatmap,
prediction and target drift, data quality, realised metrics beside the label-free estimate,
and alert events as a timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

import numpy as np

from shipyard.ui.layout import cell, chart_with_table, fmt, page, table, text_cell, url
from shipyard.ui.log_rows import error_counts
from shipyard.ui.source import DashboardSource
from shipyard.views import charts

DEFAULT_WINDOWS = 96  # a day of 15-minute windows
MAX_WINDOWS = 2000
MAX_FEATURES = 30  # heatmap rows: the features with the largest effect anywhere


def label(window: Mapping[str, Any]) -> str:
    """A window's end, short: seconds shown for windows under a minute."""
    end = float(window.get("end_ts", 0.0))
    span = end - float(window.get("start_ts", end))
    stamp = datetime.fromtimestamp(end, UTC)
    return stamp.strftime("%m-%d %H:%M:%S" if span < 60 else "%m-%d %H:%M")


def endpoint_page(source: DashboardSource, name: str, last: int = DEFAULT_WINDOWS) -> str:
    records = [r for r in source.history(name).records(limit=last) if r.get("window")]
    if not records:
        return page(f"Endpoint {name}", "<p>No monitor windows stored yet: the monitor "
                    "(<code>monitor:</code> in serve.yaml, or <code>shipyard monitor run</code>)"
                    " has not run.</p>" + _links(name))
    labels = [label(r["window"]) for r in records]
    plural = "s" if len(records) > 1 else ""
    parts = [_links(name), f'<p class="meta">{len(records)} window{plural} from '
             f"{escape(records[0]['window'].get('start', ''))} to "
             f"{escape(records[-1]['window'].get('end', ''))}.</p>",
             '<h2 id="traffic">Traffic and latency</h2><div class="grid">',
             _traffic(source, name, records, labels), "</div>",
             '<h2 id="drift">Drift</h2>', _heatmap(name, records, labels),
             '<div class="grid">',
             _series_chart("Prediction and target drift (effect size)", labels, {
                 "prediction": [_effect(r, "output_drift", "prediction") for r in records],
                 "target": [_effect(r, "output_drift", "target") for r in records]}),
             _series_chart("Share of features drifted", labels, {
                 "drift share": [_metric(r, "drift_share") for r in records]}),
             "</div>", '<h2 id="quality">Data quality</h2><div class="grid">',
             _series_chart("Quality issues and outliers", labels, {
                 "quality issues": [_metric(r, "quality_issues") for r in records],
                 "outlier share": [_metric(r, "outlier_share") for r in records]}),
             "</div>", '<h2 id="performance">Performance</h2><div class="grid">',
             _performance(records, labels), "</div>", _slices(records, labels),
             '<h2 id="alerts">Alerts</h2>', _alerts(records, labels)]
    return page(f"Endpoint {name}", "".join(parts))


def _links(name: str) -> str:
    return (f'<p><a href="{url("endpoints", name, "try")}">Try it</a> · '
            f'<a href="{url("rollouts", name)}">Rollouts</a> · '
            f'<a href="{url("")}">Overview</a></p>')


def _metric(record: Mapping[str, Any], key: str) -> float | None:
    value = (record.get("metrics") or {}).get(key)
    return None if value is None else float(value)


def _effect(record: Mapping[str, Any], part: str, column: str) -> float | None:
    found = (((record.get(part) or {}).get("columns") or {}).get(column) or {})
    value = found.get("effect_size")
    return None if value is None else float(value)


def _traffic(source: DashboardSource, name: str, records: Sequence[Mapping[str, Any]],
             labels: Sequence[str]) -> str:
    """Requests per second, server errors and latency percentiles per version in each
    window, from the log's rows of the whole span (read once; each row counted in every
    window that holds it: sliding windows overlap)."""
    bounds = [(float(r["window"]["start_ts"]), float(r["window"]["end_ts"])) for r in records]
    since, until = min(b[0] for b in bounds), max(b[1] for b in bounds)
    requests = source.log_rows.requests(name, since, until)
    errors = source.log_rows.errors(name, since, until)
    versions = sorted({int(v) for v in requests["version"]} | {int(v) for v in
                                                               errors["version"]})
    rate: dict[str, list[float | None]] = {f"v{v}": [] for v in versions}
    failed: dict[str, list[float | None]] = {f"v{v}": [] for v in versions}
    latency: dict[str, list[float | None]] = {f"v{v} {q}": [] for v in versions
                                              for q in ("p50", "p99")}
    for start, end in bounds:
        got = _slice(requests, start, end)
        bad = error_counts(_slice(errors, start, end))
        for v in versions:
            mine = got["latency_ms"][got["version"] == v]
            rate[f"v{v}"].append(len(mine) / (end - start) if end > start else None)
            failed[f"v{v}"].append(float(bad.get(str(v), 0)))
            p50, p99 = np.percentile(mine, [50, 99]) if len(mine) else (None, None)
            latency[f"v{v} p50"].append(None if p50 is None else float(p50))
            latency[f"v{v} p99"].append(None if p99 is None else float(p99))
    return "".join([
        _series_chart("Requests per second per version", labels, rate),
        _series_chart("Server errors per version", labels, failed),
        _series_chart("Latency percentiles per version (ms)", labels, latency, unit=" ms"),
        _series_chart("Latency of all requests (ms, as monitored)", labels, {
            "p50": [_metric(r, "p50_latency_ms") for r in records],
            "p99": [_metric(r, "p99_latency_ms") for r in records]}, unit=" ms")])


def _slice(rows: Mapping[str, np.ndarray], start: float, end: float) -> dict[str, np.ndarray]:
    lo, hi = np.searchsorted(rows["ts"], [start, end], side="left")
    return {name: values[lo:hi] for name, values in rows.items()}


def _series_chart(title: str, labels: Sequence[str],
                  series: Mapping[str, Sequence[float | None]], unit: str = "",
                  zero: bool = True) -> str:
    chart = charts.lines(labels, series, name=title, unit=unit, zero=zero)
    rows = [f"<tr><td>{escape(lab)}</td>" + "".join(
        cell(vs[i], name=f"{title}/{key}@{lab}") for key, vs in series.items()) + "</tr>"
        for i, lab in enumerate(labels)]
    return chart_with_table(title, chart, f"{title} per window", ["window", *series], rows)


def _heatmap(name: str, records: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    cells: dict[tuple[str, str], tuple[float, bool]] = {}
    largest: dict[str, float] = {}
    for r, lab in zip(records, labels, strict=True):
        for feature, col in ((r.get("drift") or {}).get("columns") or {}).items():
            effect = col.get("effect_size")
            if effect is None:
                continue
            cells[(feature, lab)] = (float(effect), bool(col.get("drifted")))
            largest[feature] = max(largest.get(feature, 0.0), float(effect))
    features = sorted(largest, key=lambda f: (-largest[f], f))[:MAX_FEATURES]
    chart = charts.heatmap(features, labels, cells, name="Drift per feature")
    if not chart:
        return "<p>No drift tests in these windows.</p>"
    newest = records[-1]["window"]
    links = ", ".join(
        f'<a href="{url("endpoints", name, "features", f, query=_window_query(newest))}">'
        f"{escape(f)}</a>" for f in features)
    rows = [f"<tr><th scope=\"row\">{escape(f)}</th>" + "".join(
        cell(cells[(f, lab)][0], fmt(cells[(f, lab)][0]) + (" ✕" if cells[(f, lab)][1]
                                                          else ""))
        if (f, lab) in cells else "<td></td>" for lab in labels[-12:]) + "</tr>"
        for f in features]
    return (f"<div><h3>Drift per feature (effect size; red mark: drifted)</h3>{chart}"
            f"<p>Feature detail (newest window): {links}</p>"
            f"<details><summary>Drift per feature: table of the newest 12 windows</summary>"
            f"<table><caption>Effect size per feature and window (✕: drifted)</caption>"
            f"<thead><tr><th scope=\"col\">feature</th>"
            + "".join(f'<th scope="col">{escape(lab)}</th>' for lab in labels[-12:])
            + f"</tr></thead><tbody>{''.join(rows)}</tbody></table></details></div>")


def _window_query(window: Mapping[str, Any]) -> str:
    return f"since={float(window['start_ts'])!r}&until={float(window['end_ts'])!r}"


def _performance(records: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    keys = sorted({k for r in records for k in (r.get("metrics") or {})})
    names = [k for k in ("accuracy", "f1", "roc_auc", "mae", "rmse", "r2") if k in keys
             or f"estimated_{k}" in keys]
    out = []
    for metric in names[:3]:
        series = {"realised": [_metric(r, metric) for r in records],
                  "estimated": [_metric(r, f"estimated_{metric}") for r in records]}
        series.update({k: [_metric(r, k) for r in records] for k in keys
                       if k.startswith(f"{metric}(v")})
        out.append(_series_chart(f"{metric}: realised and estimated", labels, series,
                                 zero=False))
    return "".join(out) or "<p>No performance figures in these windows.</p>"


def _slices(records: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    """Each slice column's worst slice over the windows (the bound rules read), and the
    newest window's slices with their intervals; nothing without slice columns."""
    keys = sorted({k for r in records for k in (r.get("metrics") or {})
                   if k.startswith("worst_slice_")})
    newest = next((r["slices"] for r in reversed(records) if r.get("slices")), None)
    if not keys or newest is None:
        return ""
    metric = "accuracy" if any(k.startswith("worst_slice_accuracy(") for k in keys) else "mae"
    shown = [k for k in keys if k.startswith(f"worst_slice_{metric}(")]
    chart = _series_chart(f"Worst slice's {metric} (interval bound) per column", labels,
                          {k[len(f"worst_slice_{metric}("):-1]: [_metric(r, k) for r in records]
                           for k in shown}, zero=False)
    rows = []
    for column, found in (newest.get("columns") or {}).items():
        worst = ((found.get("worst") or {}).get(metric) or {}).get("slice")
        for item in found.get("slices") or []:
            interval = (item.get("metrics") or {}).get(metric) or {}
            tone = "bad" if item["slice"] == worst else ""
            rows.append(f"<tr>{text_cell(column)}{text_cell(str(item['slice']), tone=tone)}"
                        f"{cell(item.get('rows'))}{cell(item.get('labelled'))}"
                        f"{cell(interval.get('estimate'))}{cell(interval.get('low'))}"
                        f"{cell(interval.get('high'))}"
                        f"{text_cell('yes' if item.get('eligible') else 'too few labels')}"
                        "</tr>")
    newest_table = table(f"Slices of the newest window ({metric}; judged with "
                         f"{newest.get('min_labelled')}+ labelled rows)",
                         ["column", "slice", "rows", "labelled", metric, "low", "high",
                          "judged"], rows)
    return (f'<h2 id="slices">Slices</h2><div class="grid">{chart}</div>'
            f"<div>{newest_table}</div>")


def _alerts(records: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    events = [(i, str(e.get("rule")), e.get("state") == "firing")
              for i, r in enumerate(records) for e in r.get("alerts") or ()
              if isinstance(e, Mapping)]
    chart = charts.timeline(labels, events, name="Alert events")
    rows = [f"<tr><td>{escape(labels[i])}</td><td>{escape(rule)}</td>"
            f"<td class=\"{'bad' if firing else 'ok'}\">{'fires' if firing else 'resolves'}"
            "</td></tr>" for i, rule, firing in events]
    if not chart:
        return "<p>No alert fired or resolved in these windows.</p>"
    return chart_with_table("Alert events", chart, "Alert events per window",
                            ["window", "rule", "event"], rows)
