"""One feature of an endpoint over any period (a stored window, or since/until): the
reference distribution beside the current one, with the drift test, its p-value and effect
size. The period is analysed on demand exactly as ``shipyard report`` does
(``monitor_period.analyse_period``: the record ``monitor run`` would store for it)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from html import escape
from typing import Any

from shipyard.errors import NotFoundError
from shipyard.service.monitor_period import analyse_period
from shipyard.ui.endpoint_page import label
from shipyard.ui.layout import cell, fmt, page, pct, table, url
from shipyard.ui.source import DashboardSource
from shipyard.views import svg
from shipyard.views.features import Values, feature_summary

WINDOW_CHOICES = 48  # stored windows offered in the picker, newest first
TEST_FIELDS = (("kind", "kind"), ("method", "test"), ("p_value", "p-value"),
               ("p_adjusted", "p-value (adjusted)"), ("effect_name", "effect measure"),
               ("effect_size", "effect size"), ("threshold", "effect threshold"),
               ("drifted", "drifted"))


def feature_page(source: DashboardSource, name: str, feature: str,
                 since: float | None, until: float | None) -> str:
    records = source.history(name).records(limit=WINDOW_CHOICES)
    if since is None or until is None:
        if not records:
            raise NotFoundError(f"endpoint {name!r} has no stored windows; pick a period "
                                "with ?since=&until= (Unix seconds)")
        window = records[-1]["window"]
        since, until = float(window["start_ts"]), float(window["end_ts"])
    if not 0 <= since < until:
        raise NotFoundError("the period is empty: since must be before until")
    period = analyse_period(source.monitor(name), since, until)
    record = period.record
    column = _column(record, feature)
    body = [f'<p><a href="{url("endpoints", name)}">Endpoint {escape(name)}</a></p>',
            _picker(name, feature, records, since, until),
            f'<p class="meta">Period {escape(_iso(since))} to {escape(_iso(until))}: '
            f"{fmt(record.get('rows'))} rows.</p>"]
    if column is None:
        body.append(f"<p>No drift test of {escape(feature)} in this period"
                    f"{': ' + escape(str(record['skipped'])) if record.get('skipped') else ''}"
                    ".</p>")
        return page(f"Feature {feature} of {name}", "".join(body))
    rows = [f'<tr><th scope="row">{escape(text)}</th>'
            + (cell(column.get(key), name=key) if key not in ("kind", "method", "effect_name")
               else f'<td data-metric="{key}">{escape(str(column.get(key)))}</td>') + "</tr>"
            for key, text in TEST_FIELDS]
    body.append(table(f"Drift test of {feature}", ["", "value"], rows))
    if period.reference is not None and feature in period.reference.columns \
            and feature in period.current:
        kind = period.tested[feature]
        summary = feature_summary(period.reference.columns[feature],
                                  Values(period.current[feature], kind), kind)
        body.append(_distribution(feature, summary))
    return page(f"Feature {feature} of {name}", "".join(body))


def _column(record: Mapping[str, Any], feature: str) -> dict[str, Any] | None:
    for part in ("drift", "output_drift"):
        found = ((record.get(part) or {}).get("columns") or {}).get(feature)
        if isinstance(found, dict):
            return found
    return None


def _picker(name: str, feature: str, records: list[dict[str, Any]], since: float,
            until: float) -> str:
    options = "".join(
        f'<option value="{float(w["start_ts"])!r}-{float(w["end_ts"])!r}"'
        f'{" selected" if float(w["start_ts"]) == since and float(w["end_ts"]) == until else ""}'
        f">{escape(label(w))}</option>"
        for w in (r["window"] for r in reversed(records)))
    action = url("endpoints", name, "features", feature)
    return (f'<form class="card" method="get" action="{action}">'
            f'<div class="field"><label for="window">Stored window (end)</label>'
            f'<select id="window" name="window">{options}</select> '
            f"<button type=\"submit\">Show</button></div></form>"
            f'<form class="card" method="get" action="{action}"><div class="field">'
            f'<label for="since">Since (Unix s)</label><input id="since" name="since" '
            f'inputmode="decimal" value="{since!r}"></div><div class="field">'
            f'<label for="until">Until (Unix s)</label><input id="until" name="until" '
            f'inputmode="decimal" value="{until!r}"></div>'
            f"<button type=\"submit\">Show period</button></form>")


def _distribution(feature: str, summary: Mapping[str, Any]) -> str:
    legend = ('<p class="legend"><span class="ref">■ reference (grey)</span> '
              '<span class="cur">■ current (blue)</span></p>')
    missing = summary.get("missing") or {}
    note = (f"<p>Missing: {pct(missing.get('reference'))} of the reference, "
            f"{pct(missing.get('current'))} of the current rows.</p>")
    if "histogram" in summary:
        hist, q = summary["histogram"], summary["quantiles"]
        chart = svg.histogram(hist["edges"], hist["reference"], hist["current"], name=feature)
        rows = [f"<tr><td>{fmt(hist['edges'][i])} to {fmt(hist['edges'][i + 1])}</td>"
                + cell(r) + cell(c) + "</tr>"
                for i, (r, c) in enumerate(zip(hist["reference"], hist["current"],
                                               strict=True))]
        quantiles = [f"<tr><td>{p:g}</td>" + cell(r) + cell(c) + "</tr>"
                     for p, r, c in zip(q["q"], q["reference"], q["current"], strict=True)]
        return ("<h2>Distribution</h2>" + legend + chart + note
                + table("Quantiles", ["q", "reference", "current"], quantiles)
                + "<details><summary>Histogram: table</summary>"
                + table(f"Share of rows per bin of {feature}", ["bin", "reference", "current"],
                        rows) + "</details>")
    if "categories" in summary:
        cats = summary["categories"]
        chart = svg.category_bars(cats["labels"], cats["reference"], cats["current"],
                                  name=feature)
        rows = [f"<tr><td>{escape(str(lab))}</td>" + cell(r) + cell(c) + "</tr>"
                for lab, r, c in zip(cats["labels"], cats["reference"], cats["current"],
                                     strict=True)]
        return ("<h2>Distribution</h2>" + legend + chart + note
                + table(f"Share of rows per category of {feature}",
                        ["category", "reference", "current"], rows))
    return "<h2>Distribution</h2>" + note + "<p>No distribution kept for this column.</p>"


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
