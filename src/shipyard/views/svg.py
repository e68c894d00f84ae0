"""Inline SVG charts for reports and the dashboard: no script, no external resource, each
with a text alternative (``role="img"``, ``aria-label`` and ``<title>``). Bars are one
``<path>`` per series, so a chart costs a few hundred bytes and a thousand of them fit in a
small file."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

W, H = 360, 130  # chart size (px)
PAD_L, PAD_B, PAD_T = 6, 18, 6
REF, CUR = "#8a96a8", "#1f5fbf"  # reference grey, current blue (contrast >= 4.5:1 on white)


def num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _open(alt: str, height: int = H) -> str:
    text = escape(alt)
    return (f'<svg class="chart" viewBox="0 0 {W} {height}" width="{W}" height="{height}" '
            f'role="img" aria-label="{text}"><title>{text}</title>')


def histogram(edges: Sequence[float | None], reference: Sequence[float | None],
              current: Sequence[float | None], *, name: str) -> str:
    """Side-by-side bars per bin: the share of each side's values in it."""
    ref = [v or 0.0 for v in reference]
    cur = [v or 0.0 for v in current]
    top = max([*ref, *cur, 1e-12])
    bins = len(ref)
    slot = (W - 2 * PAD_L) / max(bins, 1)
    base = H - PAD_B
    scale = (base - PAD_T) / top
    paths = []
    for series, offset, colour in ((ref, 0.0, REF), (cur, 0.5, CUR)):
        d = "".join(f"M{num(PAD_L + i * slot + offset * slot)},{num(base)}"
                    f"v-{num(v * scale)}h{num(slot / 2 - 0.5)}v{num(v * scale)}z"
                    for i, v in enumerate(series) if v > 0)
        paths.append(f'<path fill="{colour}" d="{d}"/>')
    lo, hi = edges[0], edges[-1]
    peak = max(range(bins), key=lambda i: cur[i]) if bins else 0
    alt = (f"Histogram of {name}: reference (grey) and current (blue) shares in {bins} bins "
           f"from {fmt(lo)} to {fmt(hi)}; the current data peaks in bin {peak + 1} "
           f"({cur[peak]:.1%})." if bins else f"No values of {name}.")
    axis = (f'<text x="{PAD_L}" y="{H - 4}">{escape(fmt(lo))}</text>'
            f'<text x="{W - PAD_L}" y="{H - 4}" text-anchor="end">{escape(fmt(hi))}</text>')
    return _open(alt) + "".join(paths) + axis + "</svg>"


def category_bars(labels: Sequence[str], reference: Sequence[float | None],
                  current: Sequence[float | None], *, name: str) -> str:
    """Two horizontal bars per category (reference above, current below)."""
    row, label_w = 16, 120
    height = PAD_T * 2 + row * max(len(labels), 1)
    span = W - label_w - 50
    top = max([*(v or 0.0 for v in reference), *(v or 0.0 for v in current), 1e-12])
    parts = []
    for i, label in enumerate(labels):
        y = PAD_T + i * row
        ref, cur = reference[i] or 0.0, current[i] or 0.0
        short = label if len(label) <= 18 else label[:17] + "\u2026"
        parts.append(f'<text x="{label_w - 4}" y="{y + 11}" text-anchor="end">'
                     f"{escape(short)}</text>"
                     f'<path fill="{REF}" d="M{label_w},{y + 2}h{num(ref / top * span)}v5'
                     f'h-{num(ref / top * span)}z"/>'
                     f'<path fill="{CUR}" d="M{label_w},{y + 8}h{num(cur / top * span)}v5'
                     f'h-{num(cur / top * span)}z"/>'
                     f'<text x="{num(label_w + max(ref, cur) / top * span)}" dx="4" '
                     f'y="{y + 11}">{cur:.0%}</text>')
    alt = (f"Category shares of {name}, reference (grey) and current (blue): "
           + "; ".join(f"{label} {(r or 0):.1%} vs {(c or 0):.1%}"
                       for label, r, c in zip(labels, reference, current, strict=True)))
    return _open(alt, height) + "".join(parts) + "</svg>"


def line(points: Sequence[tuple[str, float]], *, name: str, ceiling: float | None = None) -> str:
    """One series over time (``points``: label, value), dots joined by a line."""
    if not points:
        return ""
    values = [v for _, v in points]
    top = max([*values, ceiling or 0.0, 1e-12])
    base = H - PAD_B
    step = (W - 2 * PAD_L) / max(len(points) - 1, 1)
    xy = [(PAD_L + i * step, base - v / top * (base - PAD_T)) for i, v in enumerate(values)]
    poly = " ".join(f"{num(x)},{num(y)}" for x, y in xy)
    dots = "".join(f'<circle cx="{num(x)}" cy="{num(y)}" r="2"/>' for x, y in xy)
    alt = (f"{name} over {len(points)} windows, from {points[0][0]} to {points[-1][0]}: "
           f"first {values[0]:.3g}, last {values[-1]:.3g}, highest {max(values):.3g}.")
    return (_open(alt) + f'<polyline fill="none" stroke="{CUR}" stroke-width="1.5" '
            f'points="{poly}"/>{dots}'
            f'<text x="{PAD_L}" y="{H - 4}">{escape(points[0][0])}</text>'
            f'<text x="{W - PAD_L}" y="{H - 4}" text-anchor="end">{escape(points[-1][0])}'
            "</text></svg>")
