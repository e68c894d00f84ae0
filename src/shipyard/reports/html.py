"""A report as one standalone HTML page: inline CSS, inline SVG charts, no script that runs
and no URL outside the file. The report's data is embedded as JSON
(``<script type="application/json" id="shipyard-report">``, data only), so the page and
``--format json`` say the same thing.

Layout: summary cards, the drift table (drifted features first, each linking to its chart),
then quality, performance, alerts and a timeline where the subject is an endpoint, then one
collapsible section per feature (drifted ones open). Native ``<details>`` and anchors give
keyboard navigation without script."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from shipyard.views import svg

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;
margin:0 auto;max-width:1100px;padding:16px 24px;background:#fff}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{font-size:15px;margin:12px 0 4px}
.meta{color:#57606a}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:20px}.bad{color:#b3261e}.ok{color:#1a7f37}
table{border-collapse:collapse;margin:6px 0 12px}th,td{border-bottom:1px solid #d0d7de;
padding:3px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}caption{text-align:left;
color:#57606a;padding:2px 0}details{border:1px solid #d0d7de;border-radius:6px;
margin:6px 0;padding:4px 10px}summary{cursor:pointer;font-weight:600}
a{color:#0b5cad}a:focus,summary:focus{outline:2px solid #0b5cad;outline-offset:2px}
.chart text{font-size:10px;fill:#1b1f24}.chart circle{fill:#1f5fbf}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
"""


def render_html(report: Mapping[str, Any]) -> str:
    """The page for a report made by ``dataset_report`` or ``endpoint_report``."""
    title = str(report.get("title") or "shipyard report")
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="meta">{escape(_subject(report))} &middot; generated '
            f'{escape(str(report.get("generated_at", "")))} by shipyard</p>',
            _cards(report), _drift_table(report)]
    monitor = report.get("monitor") or {}
    if monitor.get("skipped"):
        body.append(f"<p><b>Not analysed:</b> {escape(str(monitor['skipped']))}</p>")
    for key, heading in (("quality", "Data quality"), ("performance", "Performance"),
                         ("output_drift", "Prediction drift"), ("latency", "Latency")):
        if monitor.get(key):
            body.append(f"<h2>{heading}</h2>{_values(monitor[key])}")
    if "alerts" in report:
        body.append(_alerts(report["alerts"]))
    if report.get("timeline"):
        body.append(_timeline(report["timeline"]))
    body.append(_features(report))
    data = _script_json(report)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
            + "\n".join(body) + "</main>"
            f'<script type="application/json" id="shipyard-report">{data}</script>'
            "</body></html>\n")


def _script_json(report: Mapping[str, Any]) -> str:
    """The report as JSON that cannot leave (or swallow the end of) its ``<script>`` element:
    ``<``, ``>`` and ``&`` as ``\\u`` escapes. Escaping only ``</`` is not enough: a name
    holding ``<!--`` and then ``<script`` puts the HTML parser in the "double escaped" state,
    where the element's own ``</script>`` no longer closes it and the rest of the page
    becomes part of the data."""
    text = json.dumps(report, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _subject(report: Mapping[str, Any]) -> str:
    subject = report.get("subject") or {}
    if subject.get("kind") == "endpoint":
        return (f"endpoint {subject.get('endpoint')}, {subject.get('since')} to "
                f"{subject.get('until')}")
    return f"current: {subject.get('current')}, reference: {subject.get('reference')}"


def _card(label: str, value: str, tone: str = "") -> str:
    cls = f' class="{tone}"' if tone else ""
    return f'<div class="card">{escape(label)}<b{cls}>{escape(value)}</b></div>'


def _cards(report: Mapping[str, Any]) -> str:
    rows = report.get("rows") or {}
    drift = report.get("drift") or {}
    # None: not known (a period with no rows never loads its reference), not zero rows
    cards = [_card(f"rows ({side})", "n/a" if rows.get(side) is None else f"{rows[side]:,}")
             for side in ("current", "reference")]
    if drift:
        drifted = len(drift.get("drifted_columns") or [])
        tested = len(drift.get("columns") or {})
        cards += [_card("dataset drift", "yes" if drift.get("dataset_drift") else "no",
                        "bad" if drift.get("dataset_drift") else "ok"),
                  _card("drifted features", f"{drifted} of {tested}",
                        "bad" if drifted else "ok"),
                  _card("drift share", _pct(drift.get("drift_share")))]
    metrics = (report.get("monitor") or {}).get("metrics") or {}
    for key, label in (("accuracy", "accuracy (labels)"),
                       ("estimated_accuracy", "accuracy (estimated)"),
                       ("p99_latency_ms", "p99 latency (ms)")):
        if metrics.get(key) is not None:
            cards.append(_card(label, _fmt(metrics[key])))
    firing = ((report.get("alerts") or {}).get("firing")) or {}
    if "alerts" in report:
        cards.append(_card("alerts firing", str(len(firing)), "bad" if firing else "ok"))
    return f'<div class="cards">{"".join(cards)}</div>'


def _order(report: Mapping[str, Any]) -> list[str]:
    """Features: drifted first, then by effect size, largest first."""
    columns = (report.get("drift") or {}).get("columns") or {}
    names = list(report.get("features") or {}) or list(columns)
    names += [n for n in columns if n not in names]

    def key(name: str) -> tuple[bool, float]:
        col = columns.get(name) or {}
        return (not col.get("drifted"), -(col.get("effect_size") or 0.0))

    return sorted(names, key=key)


def _drift_table(report: Mapping[str, Any]) -> str:
    columns = (report.get("drift") or {}).get("columns") or {}
    if not columns:
        return "<h2>Drift</h2><p>No drift tests in this report.</p>"
    features = report.get("features") or {}
    rows = []
    for i, name in enumerate(_order(report)):
        col = columns.get(name)
        if col is None:
            continue
        missing = (features.get(name) or {}).get("missing") or {}
        verdict = ("skipped: " + str(col["skipped"])) if col.get("skipped") else (
            "drifted" if col.get("drifted") else "no")
        # a link only where the feature has its section below (a summary to chart)
        label = (f'<a href="#f-{i}">{escape(name)}</a>' if name in features
                 else escape(name))
        rows.append(
            f'<tr><td>{label}</td><td>{escape(str(col.get("kind")))}'
            f'</td><td>{escape(str(col.get("method")))}</td>'
            f'<td class="n">{_fmt(col.get("p_adjusted"))}</td>'
            f'<td>{escape(str(col.get("effect_name")))} {_fmt(col.get("effect_size"))}</td>'
            f'<td class="n">{_fmt(col.get("threshold"))}</td>'
            f'<td class="{"bad" if col.get("drifted") else ""}">{escape(verdict)}</td>'
            f'<td class="n">{_pct(missing.get("reference"))} / {_pct(missing.get("current"))}'
            "</td></tr>")
    return ("<h2>Drift</h2><table><caption>Per feature: the test, its adjusted p-value, the "
            "effect size against its threshold, and the share of missing values "
            "(reference / current). Drifted features first.</caption><thead><tr>"
            "<th scope=\"col\">feature</th><th scope=\"col\">kind</th><th scope=\"col\">test"
            "</th><th scope=\"col\">p (adjusted)</th><th scope=\"col\">effect</th>"
            "<th scope=\"col\">threshold</th><th scope=\"col\">drifted</th>"
            "<th scope=\"col\">missing</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _features(report: Mapping[str, Any]) -> str:
    features = report.get("features") or {}
    columns = (report.get("drift") or {}).get("columns") or {}
    columns = {**((report.get("monitor") or {}).get("output_drift") or {}).get("columns", {}),
               **columns}
    if not features:
        return ""
    out = ['<h2>Features</h2><p class="legend" aria-hidden="true">'
           f'<span style="background:{svg.REF}"></span>reference'
           f'<span style="background:{svg.CUR}"></span>current</p>']
    for i, name in enumerate(_order(report)):
        summary = features.get(name)
        if summary is None:
            continue
        drifted = bool((columns.get(name) or {}).get("drifted"))
        out.append(f'<details id="f-{i}"{" open" if drifted else ""}><summary>'
                   f'{escape(name)}{" &mdash; drifted" if drifted else ""}</summary>'
                   f'<div class="grid">{_feature(name, summary)}</div></details>')
    return "\n".join(out)


def _feature(name: str, summary: Mapping[str, Any]) -> str:
    if "histogram" in summary:
        hist = summary["histogram"]
        q = summary["quantiles"]
        table = ("<table><caption>Quantiles</caption><thead><tr><th scope=\"col\">q</th>"
                 "<th scope=\"col\">reference</th><th scope=\"col\">current</th></tr></thead>"
                 "<tbody>" + "".join(
                     f'<tr><td>{p:g}</td><td class="n">{_fmt(r)}</td><td class="n">'
                     f"{_fmt(c)}</td></tr>"
                     for p, r, c in zip(q["q"], q["reference"], q["current"], strict=True))
                 + "</tbody></table>")
        return svg.histogram(hist["edges"], hist["reference"], hist["current"],
                             name=name) + table
    if "categories" in summary:
        cats = summary["categories"]
        other = cats["other"]
        new = cats.get("new") or []
        note = (f"<p>Other categories: {_pct(other['reference'])} of the reference, "
                f"{_pct(other['current'])} of the current data.")
        if new:
            note += (f" New in the current data ({cats['new_count']}, "
                     f"{_pct(cats['new_share'])} of its values): "
                     + escape(", ".join(map(str, new))) + ".")
        return svg.category_bars(cats["labels"], cats["reference"], cats["current"],
                                 name=name) + note + "</p>"
    return "<p>No distribution kept for this column.</p>"


def _alerts(alerts: Mapping[str, Any]) -> str:
    firing = alerts.get("firing") or {}
    events = alerts.get("events") or []
    parts = ["<h2>Alerts</h2>"]
    if firing:
        parts.append("<h3>Firing now</h3>" + _values(firing))
    else:
        parts.append("<p>No alert is firing.</p>")
    if events:
        parts.append("<h3>In this period</h3><table><thead><tr><th scope=\"col\">at</th>"
                     "<th scope=\"col\">rule</th><th scope=\"col\">state</th>"
                     "<th scope=\"col\">value</th></tr></thead><tbody>" + "".join(
                         f"<tr><td>{escape(str(e.get('at', '')))}</td>"
                         f"<td>{escape(str(e.get('rule', e.get('name', ''))))}</td>"
                         f"<td>{escape(str(e.get('state', e.get('status', ''))))}</td>"
                         f'<td class="n">{_fmt(e.get("value"))}</td></tr>' for e in events)
                     + "</tbody></table>")
    return "".join(parts)


def _timeline(points: list[Mapping[str, Any]]) -> str:
    parts = ["<h2>Over time</h2><div class=\"grid\">"]
    for key in ("drift_share", "accuracy", "estimated_accuracy", "p99_latency_ms"):
        series = [(str(p["end"]), float(p[key])) for p in points if p.get(key) is not None]
        if series:
            parts.append(f"<div><h3>{escape(key.replace('_', ' '))}</h3>"
                         + svg.line(series, name=key.replace("_", " ")) + "</div>")
    return "".join(parts) + "</div>"


def _values(data: Any) -> str:
    """A nested result as a two-column table (nested parts as compact JSON)."""
    if not isinstance(data, Mapping):
        return f"<p>{escape(json.dumps(data, default=str))}</p>"
    rows = []
    for key, value in data.items():
        shown = (_fmt(value) if isinstance(value, float) else
                 escape(json.dumps(value, default=str)) if isinstance(value, (dict, list))
                 else escape(str(value)))
        rows.append(f'<tr><th scope="row">{escape(str(key))}</th><td>{shown}</td></tr>')
    return "<table><tbody>" + "".join(rows) + "</tbody></table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return escape(str(value))


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1%}"
