"""The page shell every dashboard page shares: navigation, the stylesheet (served as a file:
the Content-Security-Policy allows no inline style or script), and small HTML pieces (tables
whose number cells carry their exact value in ``data-value``, so a test can compare a page
with the API)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

PREFIX = "/ui"
# no script, no inline style, nothing from elsewhere; forms post only here
POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
          "frame-ancestors 'none'; base-uri 'none'")
NAV = (("overview", "Overview", ""), ("models", "Models", "/models"),
       ("rollouts", "Rollouts", "/rollouts"))

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;
margin:0;background:#fff}
header{background:#0f2940;color:#fff;padding:8px 24px;display:flex;gap:20px;align-items:center}
header a{color:#fff;text-decoration:none;padding:4px 6px;border-radius:4px}
header a[aria-current=page]{background:#1f5fbf}
header .brand{font-weight:700;margin-right:12px}
main{max-width:1280px;margin:0 auto;padding:12px 24px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;color:#0b5cad}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:24px 0 8px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{font-size:15px;margin:12px 0 4px}
.meta{color:#57606a}.bad{color:#b3261e;font-weight:600}.ok{color:#1a7f37}.warn{color:#9a6700}
table{border-collapse:collapse;margin:6px 0 12px}th,td{border-bottom:1px solid #d0d7de;
padding:3px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}caption{text-align:left;
color:#57606a;padding:2px 0}details{margin:4px 0}summary{cursor:pointer}
a{color:#0b5cad}a:focus,summary:focus,button:focus,input:focus,select:focus{
outline:2px solid #0b5cad;outline-offset:2px}
.chart text{font-size:10px;fill:#1b1f24}.chart circle{fill:#1f5fbf}
.chart .s0{fill:#1f5fbf}.chart .s1{fill:#b3261e}.chart .s2{fill:#1a7f37}
.chart .s3{fill:#8250df}.chart .s4{fill:#9a6700}.chart .s5{fill:#57606a}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.grid>div{min-width:300px}
.h0{fill:#f2f6fc}.h1{fill:#dbe7f7}.h2{fill:#c2d6f1}.h3{fill:#a6c3ea}.h4{fill:#86ade2}
.h5{fill:#6595d9}.h6{fill:#457dcf}.h7{fill:#2a66c2}.h8{fill:#1a4f9e}.hit{fill:#b3261e}
.fire{fill:#b3261e}.resolve{fill:#1a7f37}
.card{border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;margin:8px 0;
max-width:720px}.card h2{margin-top:4px}
label{display:inline-block;min-width:160px}.field{margin:4px 0}
input,select,button{font:inherit}button{background:#1f5fbf;color:#fff;border:0;
border-radius:4px;padding:5px 12px;cursor:pointer}button.danger{background:#b3261e}
.legend .ref{color:#5f6b7c}.legend .cur{color:#1f5fbf}
.error{border:1px solid #b3261e;color:#b3261e;padding:6px 10px;border-radius:6px}
"""


def url(*parts: str, query: str = "") -> str:
    """A dashboard URL: ``url("endpoints", name)`` -> ``/ui/endpoints/NAME``."""
    path = PREFIX + "".join("/" + quote(p, safe="") for p in parts)
    return path + ("?" + query if query else "")


def page(title: str, body: str, *, active: str = "", notice: str = "") -> str:
    """A whole page: skip link, navigation (``active`` marked for screen readers), body."""
    nav = "".join(
        f'<a href="{PREFIX}{path}"{" aria-current=page" if key == active else ""}>'
        f"{label}</a>" for key, label, path in NAV)
    note = f'<p class="error" role="alert">{escape(notice)}</p>' if notice else ""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{escape(title)} · shipyard</title>"
            f'<link rel="stylesheet" href="{PREFIX}/style.css">'
            f'<link rel="icon" href="data:,"></head><body>'
            '<a class="skip" href="#main">Skip to content</a>'
            f'<header><span class="brand">shipyard</span><nav aria-label="Dashboard">{nav}'
            f'</nav></header><main id="main"><h1>{escape(title)}</h1>{note}{body}</main>'
            "</body></html>\n")


def fmt(value: Any, digits: int = 4) -> str:
    """A number for reading: ``n/a`` when unknown, ``yes``/``no`` for flags."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1%}"


def cell(value: Any, shown: str | None = None, *, tone: str = "", name: str = "") -> str:
    """A number cell: shown formatted, its exact value in ``data-value`` (empty: unknown)."""
    cls = "n" + (f" {tone}" if tone else "")
    metric = f' data-metric="{escape(name)}"' if name else ""
    return (f'<td class="{cls}"{metric} data-value="{exact(value)}">'
            f"{escape(fmt(value) if shown is None else shown)}</td>")


def exact(value: Any) -> str:
    """A value as ``data-value`` holds it: a float's ``repr``, 1/0 for flags, "" unknown."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(float(value)) if math.isfinite(value) else ""
    return escape(str(value))


def table(caption: str, headers: Sequence[str], rows: Iterable[str], *,
          cls: str = "") -> str:
    """A table with a caption and column headers; ``rows`` are ready ``<tr>`` strings."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    klass = f' class="{cls}"' if cls else ""
    return (f"<table{klass}><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def text_cell(text: str, *, tone: str = "") -> str:
    cls = f' class="{tone}"' if tone else ""
    return f"<td{cls}>{escape(text)}</td>"


def chart_with_table(title: str, chart: str, caption: str, headers: Sequence[str],
                     rows: Iterable[str]) -> str:
    """A chart and, under a disclosure, the table of its numbers (the text alternative for
    anyone who cannot see the chart)."""
    if not chart:
        return f"<div><h3>{escape(title)}</h3><p>No data yet.</p></div>"
    return (f"<div><h3>{escape(title)}</h3>{chart}<details><summary>{escape(title)}: "
            f"table</summary>{table(caption, headers, rows)}</details></div>")
