"""Inline SVG charts of series over time for the dashboard: several lines on one time axis,
and a feature x window heatmap. Like ``svg``: no script, no external resource, no ``style``
attribute (a strict Content-Security-Policy refuses those), each chart ``role="img"`` with an
``aria-label`` and ``<title>``; the pages put a table of the same numbers beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from shipyard.views.svg import PAD_B, PAD_L, PAD_T, fmt, num

W, H = 470, 150
DOTS_UP_TO = 48  # windows up to which every point is marked
LEGEND_W = 110
# line colours, distinguishable and >= 3:1 against white (WCAG non-text contrast); a page's
# stylesheet gives legend text and point marks the same colours as classes s0..s5
PALETTE = ("#1f5fbf", "#b3261e", "#1a7f37", "#8250df", "#9a6700", "#57606a")


def _open(alt: str, width: int, height: int) -> str:
    text = escape(alt)
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{text}"><title>{text}</title>')


def lines(labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *,
          name: str, unit: str = "", zero: bool = True) -> str:
    """One polyline per series over ``labels`` (the windows, oldest first); a missing value
    breaks its line. The axis starts at 0, or with ``zero=False`` just below the lowest value
    (metrics that move within a narrow band, such as accuracy). Empty string when no series
    has a value."""
    values = [v for vs in series.values() for v in vs if v is not None]
    if not labels or not values:
        return ""
    low = 0.0 if zero else min(values) - 0.05 * (max(values) - min(values) or 1.0)
    top = max(max(values) - low, 1e-12)
    base = H - PAD_B
    step = (W - 2 * PAD_L) / max(len(labels) - 1, 1)
    parts, summary = [], []
    for i, (label, vs) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        d, pen, dots = [], "M", []
        for j, v in enumerate(vs):
            if v is None:
                pen = "M"
                continue
            x, y = num(PAD_L + j * step), num(base - (v - low) / top * (base - PAD_T))
            d.append(f"{pen}{x},{y}")
            alone = (j == 0 or vs[j - 1] is None) and (j + 1 == len(vs) or vs[j + 1] is None)
            if alone or len(labels) <= DOTS_UP_TO:  # a lone point draws no line
                dots.append(f'<circle class="s{i % len(PALETTE)}" cx="{x}" cy="{y}" r="2.5"/>')
            pen = "L"
        if d:
            parts.append(f'<path fill="none" stroke="{colour}" stroke-width="1.5" '
                         f'd="{"".join(d)}"><title>{escape(label)}</title></path>'
                         + "".join(dots))
            known = [v for v in vs if v is not None]
            summary.append(f"{label}: last {fmt(known[-1])}{unit}, highest {fmt(max(known))}"
                           f"{unit}")
    alt = (f"{name} over {len(labels)} windows from {labels[0]} to {labels[-1]}; "
           + "; ".join(summary) + ".")
    legend = "".join(f'<text x="{W + 4}" y="{PAD_T + 8 + 11 * i}" '
                     f'class="s{i % len(PALETTE)}">{escape(label)}</text>'
                     for i, label in enumerate(series) if len(series) > 1)
    axis = (f'<text x="{PAD_L}" y="{H - 4}">{escape(labels[0])}</text>'
            f'<text x="{W - PAD_L}" y="{H - 4}" text-anchor="end">{escape(labels[-1])}</text>'
            f'<text x="{PAD_L}" y="{PAD_T + 8}">{escape(fmt(max(values)))}{escape(unit)}</text>'
            + ("" if zero else f'<text x="{PAD_L}" y="{H - PAD_B - 3}">'
               f"{escape(fmt(min(values)))}{escape(unit)}</text>"))
    width = W + LEGEND_W if legend else W  # the legend in a margin of its own
    return _open(alt, width, H) + "".join(parts) + axis + legend + "</svg>"


def heatmap(rows: Sequence[str], columns: Sequence[str],
            cells: Mapping[tuple[str, str], tuple[float, bool]], *, name: str) -> str:
    """``rows`` (features) x ``columns`` (windows): a cell's shade is its effect size against
    the largest shown; drifted cells carry a dark mark. ``cells[(row, column)]`` =
    (effect size, drifted); missing cells stay blank."""
    if not rows or not columns:
        return ""
    label_w, cell_h = 130, 14
    cell_w = max(2.0, min(24.0, (W - label_w) / len(columns)))
    width = int(label_w + cell_w * len(columns) + 4)
    height = PAD_T * 2 + cell_h * len(rows) + 14
    top = max([e for e, _ in cells.values()] + [1e-12])
    parts = []
    drifted: dict[str, int] = {}
    for i, row in enumerate(rows):
        y = PAD_T + i * cell_h
        short = row if len(row) <= 20 else row[:19] + "\u2026"
        parts.append(f'<text x="{label_w - 4}" y="{y + 11}" text-anchor="end">'
                     f"{escape(short)}</text>")
        for j, column in enumerate(columns):
            cell = cells.get((row, column))
            if cell is None:
                continue
            effect, hit = cell
            x = label_w + j * cell_w
            shade = round(8 * min(effect / top, 1.0))  # 9 steps, as CSS classes
            parts.append(f'<rect class="h{shade}" x="{num(x)}" y="{y}" width="{num(cell_w)}" '
                         f'height="{cell_h - 1}"><title>{escape(row)} {escape(column)}: '
                         f"effect {fmt(effect)}{' drifted' if hit else ''}</title></rect>")
            if hit:
                drifted[row] = drifted.get(row, 0) + 1
                parts.append(f'<rect class="hit" x="{num(x + cell_w / 2 - 1.5)}" '
                             f'y="{y + cell_h / 2 - 2}" width="3" height="3"/>')
    alt = (f"{name}: {len(rows)} features over {len(columns)} windows from {columns[0]} to "
           f"{columns[-1]}, shade = effect size (largest {fmt(top)}); "
           + ("drifted windows: " + ", ".join(f"{r} {n}" for r, n in drifted.items())
              if drifted else "no feature drifted") + ".")
    axis = f'<text x="{label_w}" y="{height - 3}">{escape(columns[0])}</text>'
    if cell_w * len(columns) > 200:  # room for both ends' labels
        axis += (f'<text x="{width - 2}" y="{height - 3}" text-anchor="end">'
                 f"{escape(columns[-1])}</text>")
    return _open(alt, width, height) + "".join(parts) + axis + "</svg>"


def timeline(labels: Sequence[str], events: Sequence[tuple[int, str, bool]], *,
             name: str) -> str:
    """Alert events on the window axis: (window index, rule, firing) as a tick, red when it
    fires and green when it resolves."""
    if not labels or not events:
        return ""
    height = 60
    step = (W - 2 * PAD_L) / max(len(labels) - 1, 1)
    ticks = "".join(
        f'<rect class="{"fire" if firing else "resolve"}" x="{num(PAD_L + i * step - 1.5)}" '
        f'y="{PAD_T}" width="3" height="30"><title>{escape(rule)} '
        f'{"fires" if firing else "resolves"} at {escape(labels[i])}</title></rect>'
        for i, rule, firing in events)
    alt = (f"{name}: {len(events)} alert events from {labels[0]} to {labels[-1]}: "
           + "; ".join(f"{rule} {'fires' if f else 'resolves'} at {labels[i]}"
                       for i, rule, f in events[:10]) + ".")
    axis = (f'<line x1="{PAD_L}" x2="{W - PAD_L}" y1="{PAD_T + 15}" y2="{PAD_T + 15}" '
            f'stroke="#8a96a8"/><text x="{PAD_L}" y="{height - 4}">{escape(labels[0])}</text>'
            f'<text x="{W - PAD_L}" y="{height - 4}" text-anchor="end">{escape(labels[-1])}'
            "</text>")
    return _open(alt, W, height) + axis + ticks + "</svg>"
