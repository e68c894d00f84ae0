"""Monitor tables that fit the terminal without cutting a number.

Rich squeezes a table that is too wide by wrapping and then cutting cells, which can turn
``0.0123`` into ``0.0…``. :func:`fitted_table` lays a table out itself instead: a number
column is exactly as wide as its widest cell and never wraps; text columns share what is
left and wrap between words; when even that does not fit, the least important columns are
left out (and named in the caption) rather than any value shortened.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shipyard.monitoring.alert_metrics import REGRESSION
from shipyard.service.config import format_duration

HEADERS = {"roc_auc": "ROC AUC", "log_loss": "log loss", "calibration_error": "ECE",
           "mae": "MAE", "rmse": "RMSE", "r2": "R²"}


@dataclass(frozen=True)
class Col:
    """A column: numbers (and times) never wrap, text wraps between words; ``drop`` > 0
    may be left out, highest first."""

    header: str
    numeric: bool = True
    drop: int = 0
    left: bool = False  # justified left (text always is)


def _plain(cell: str) -> str:
    return Text.from_markup(cell).plain


def _words(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def _needs(col: Col, cells: Sequence[str]) -> tuple[int, int]:
    """(narrowest, widest) the column can be without breaking a word or a number."""
    plain = [_plain(c) for c in cells]
    widest = max([len(line) for c in [*plain, col.header] for line in c.splitlines()] or [1])
    if col.numeric:
        return widest, widest
    return max([_words(c) for c in [*plain, col.header]] or [1]), widest


def _overhead(count: int, **style: Any) -> int:
    """Width the table's padding and rules add to ``count`` columns, measured."""
    probe = Table(**style)
    for _ in range(count):
        probe.add_column("x", width=1)
    probe.add_row(*(["x"] * count))
    console = Console(width=1000, file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        console.print(probe)
    return max(len(line) for line in captured.get().splitlines()) - count


def fitted_table(console: Console, columns: Sequence[Col], rows: Sequence[Sequence[str]],
                 **style: Any) -> Table:
    """A table of ``rows`` that fits ``console.width`` (see the module doc)."""
    style = {"box": None, "pad_edge": False, "collapse_padding": True,
             "header_style": "bold underline", "title_justify": "left",
             "caption_justify": "left", **style}
    keep = list(range(len(columns)))
    while True:
        needs = [_needs(columns[i], [r[i] for r in rows]) for i in keep]
        room = console.width - _overhead(len(keep), **_layout(style))
        if sum(low for low, _ in needs) <= room or not any(columns[i].drop for i in keep):
            break
        keep.remove(max(keep, key=lambda i: (columns[i].drop, i)))
    widths = _share(needs, room)
    dropped = [columns[i].header for i in range(len(columns)) if i not in keep]
    if dropped:
        note = f"left out at this width: {', '.join(dropped)} (--json for all)"
        style["caption"] = f"{style['caption']}\n{note}" if style.get("caption") else note
    if style.get("title"):  # else rich wraps the title to the table's width
        style.setdefault("min_width", min(console.width, Text.from_markup(
            str(style["title"])).cell_len))
    table = Table(**style)
    for i, width in zip(keep, widths, strict=True):
        col = columns[i]
        table.add_column(col.header, justify="right" if col.numeric and not col.left
                         else "left",
                         no_wrap=col.numeric, width=width)
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def _layout(style: Mapping[str, Any]) -> dict[str, Any]:
    return {k: style[k] for k in ("box", "pad_edge", "collapse_padding", "padding",
                                  "show_edge") if k in style}


def _share(needs: Sequence[tuple[int, int]], room: int) -> list[int]:
    """Each column its narrowest, then what is left to the columns that want more, in
    order, up to their widest."""
    widths = [low for low, _ in needs]
    spare = room - sum(widths)
    for i, (low, high) in enumerate(needs):
        extra = max(0, min(high - low, spare))
        widths[i] += extra
        spare -= extra
    return widths


# -- values --------------------------------------------------------------------------------

def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _int(value: Any) -> str:
    return "-" if value is None else str(int(value))


def _yes(value: Any) -> str:
    return "-" if value is None else ("[red]yes[/]" if value else "no")


def _drift(metrics: Mapping[str, Any]) -> str:
    """The drifted-column share, red when the window's dataset drifted."""
    share = number(metrics.get("drift_share"))
    return f"[red]{share}[/]" if metrics.get("dataset_drift") else share


def window_label(window: Mapping[str, Any]) -> str:
    """``05-01 14:00 +1h`` (seconds too when the window is shorter than a minute or does not
    start on one; `` …`` while in progress), or ``last 500 rows``."""
    if window.get("kind") == "rows":
        skipped = int(window.get("offset") or 0)
        if skipped:
            return f"{window.get('last')} rows before the newest {skipped}"
        return f"last {window.get('last')} rows"
    start_ts, end_ts = float(window["start_ts"]), float(window["end_ts"])
    seconds = end_ts - start_ts < 60 or start_ts % 60 != 0
    start = str(window["start"])[5:19 if seconds else 16].replace("T", " ")
    span = format_duration(end_ts - start_ts)
    return f"{start} +{span}{'' if window.get('complete', True) else ' …'}"


# -- the tables ----------------------------------------------------------------------------

def regression_records(records: Sequence[Mapping[str, Any]]) -> bool:
    return any(any(r.get("metrics", {}).get(n) is not None for n in REGRESSION)
               or ((r.get("performance") or {}).get("reference") or {}).get("mae") is not None
               for r in records)


def windows_table(console: Console, title: str, records: Sequence[Mapping[str, Any]]) -> None:
    """One line per window: drift, quality, outliers, performance (accuracy and its
    estimate, or MAE / RMSE / R² against the reference's), latency and alert changes."""
    regression = regression_records(records)
    performance = [Col(HEADERS[n], drop=2) for n in REGRESSION] if regression else [
        Col("acc", drop=2), Col("est", drop=2)]
    columns = [Col("window (UTC)", left=True), Col("rows"), Col("drift"),
               Col("cols", drop=5), Col("pred", drop=4), Col("qual", drop=3),
               Col("outl", drop=6), *performance, Col("p99 ms", drop=7)]
    alerts = any(r.get("alerts") for r in records)
    if alerts:
        columns.append(Col("alerts", numeric=False, drop=1))  # the events are listed below
    rows = []
    for record in records:
        m = record.get("metrics", {})
        values = [m.get(n) for n in REGRESSION] if regression else [
            m.get("accuracy"), m.get("estimated_accuracy")]
        rows.append([
            window_label(record["window"]), str(record.get("rows", 0)), _drift(m),
            _int(m.get("drifted_columns")), _yes(m.get("prediction_drift")),
            _int(m.get("quality_issues")), pct(m.get("outlier_share")),
            *(number(v) for v in values), number(m.get("p99_latency_ms")),
            *([_changes(record.get("alerts") or [])] if alerts else [])])
    console.print(fitted_table(console, columns, rows, title=title,
                               caption=_caption(records, regression)))


def _changes(events: Sequence[Mapping[str, Any]]) -> str:
    fired = sum(1 for e in events if e.get("state") == "firing")
    resolved = len(events) - fired
    return ", ".join(([f"[red]{fired} fired[/]"] if fired else [])
                     + ([f"[green]{resolved} resolved[/]"] if resolved else []))


def _caption(records: Sequence[Mapping[str, Any]], regression: bool) -> str:
    text = ("drift: share of input columns drifted (red: dataset drift), cols: how many, "
            "pred: prediction drift, qual: quality issues, outl: outlier share, ")
    if regression:
        reference = next((p for r in reversed(records)
                          if (p := (r.get("performance") or {}).get("reference"))), None)
        text += "MAE / RMSE / R²: realised on the labelled rows"
        if reference:
            text += " (reference: " + ", ".join(f"{HEADERS[n]} {number(reference.get(n))}"
                                                for n in REGRESSION) + ")"
    else:
        text += "acc / est: realised / estimated accuracy"
    if any(r.get("alerts") for r in records):
        text += ", alerts: rules that fired or resolved"
    return text


def endpoints_table(console: Console, title: str,
                    summaries: Sequence[Mapping[str, Any]]) -> None:
    """``monitor status`` without an endpoint: one line per monitored endpoint."""
    columns = [Col("endpoint", numeric=False), Col("windows"),
               Col("newest window (UTC)", left=True), Col("rows"), Col("drift"),
               Col("firing", numeric=False, drop=1)]
    rows = []
    for s in summaries:
        latest = s.get("latest") or {}
        m = latest.get("metrics", {})
        rows.append([s["endpoint"], str(s.get("windows_stored", 0)),
                     window_label(latest["window"]) if latest else "-",
                     str(latest.get("rows", 0)) if latest else "-",
                     _drift(m),
                     ", ".join(f"[red]{n}[/]" for n in s.get("firing", [])) or "none"])
    console.print(fitted_table(console, columns, rows, title=title))
