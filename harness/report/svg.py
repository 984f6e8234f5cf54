"""Inline SVG charts for the HTML report (no JS, no external assets).

Two kinds: a horizontal bar chart (one labelled bar per item with its value at the bar's end, vertical grid lines
at "nice" ticks, the full label as a tooltip) and a line chart (named series of (x, y) points over shared axes, a
legend, each point's value as a tooltip) for timelines and curves.  Every text is HTML-escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    color: str
    """A CSS colour."""
    tooltip: str = ""


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``maximum`` (steps of 1, 2, 2.5 or 5 × 10^k)."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < maximum - 1e-12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(value: float, unit: str) -> str:
    if value >= 100:
        text = f"{value:.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"
    return f"{text} {unit}" if unit else text


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    unit: str = "s",
    width: int = 960,
    label_width: int = 330,
    row_height: int = 24,
) -> str:
    """An ``<svg>`` element (a string) that scales to its container's width."""
    value_width = 70
    top, bottom = 8, 28
    plot_width = width - label_width - value_width
    height = top + bottom + row_height * max(len(bars), 1)
    ticks = nice_ticks(max((b.value for b in bars), default=0.0))
    scale = plot_width / ticks[-1]
    label_chars = int(label_width / 7.2)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    axis_y = top + row_height * max(len(bars), 1)
    for tick in ticks:
        x = label_width + tick * scale
        tick_label = escape(f"{tick:g} {unit}".strip())
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="#e5e7eb" stroke-width="1"/>'
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#6b7280">{tick_label}</text>'
        )
    for index, bar in enumerate(bars):
        y = top + index * row_height
        bar_len = max(bar.value * scale, 1.5)
        mid = y + row_height / 2
        tip = escape(bar.tooltip or f"{bar.label}: {_fmt(bar.value, unit)}")
        parts.append(
            f"<g><title>{tip}</title>"
            f'<text x="{label_width - 10}" y="{mid + 4:.1f}" text-anchor="end" fill="#1f2937">'
            f"{escape(_truncate(bar.label, label_chars))}</text>"
            f'<rect x="{label_width}" y="{y + 5}" width="{bar_len:.1f}" height="{row_height - 10}" rx="3" '
            f'fill="{escape(bar.color)}"/>'
            f'<text x="{label_width + bar_len + 6:.1f}" y="{mid + 4:.1f}" fill="#374151">'
            f"{escape(_fmt(bar.value, unit))}</text></g>"
        )
    parts.append(
        f'<line x1="{label_width}" y1="{top}" x2="{label_width}" y2="{axis_y}" stroke="#9ca3af" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
"""Line colours, in series order."""


def _axis(low: float, high: float, count: int = 5) -> list[float]:
    """Nice ticks covering [low, high] (low is included; 0 when the data starts there)."""
    span = high - low
    if span <= 0:
        return [low, low + 1.0]
    return [round(low + t, 10) for t in nice_ticks(span, count)]


def line_chart(
    lines: Mapping[str, Sequence[Sequence[float]]],
    *,
    title: str,
    x_unit: str = "s",
    y_unit: str = "",
    width: int = 960,
    height: int = 280,
) -> str:
    """An ``<svg>`` line chart of named series of (x, y) points, scaled to its container's width.

    The y axis starts at 0 unless a value is negative; the x axis spans the data.  Series keep their order (and
    colour) as given; an empty series is listed in the legend only."""
    left, right, top, bottom = 64, 16, 12, 52
    points = [(float(x), float(y)) for pts in lines.values() for x, y in pts]
    xs = [x for x, _ in points] or [0.0, 1.0]
    ys = [y for _, y in points] or [0.0, 1.0]
    x_ticks = _axis(min(xs), max(xs))
    y_ticks = _axis(min(0.0, min(ys)), max(ys))
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x_ticks[0]) / (x_ticks[-1] - x_ticks[0]) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in y_ticks:
        y = py(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">'
                     f"{escape(_fmt(abs(tick), y_unit) if tick >= 0 else '-' + _fmt(-tick, y_unit))}</text>")
    axis_y = top + plot_h
    for tick in x_ticks:
        x = px(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="#f3f4f6"/>'
                     f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#6b7280">'
                     f"{escape(f'{tick:g} {x_unit}'.strip())}</text>")
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="#9ca3af"/>')
    legend_x = left
    for index, (name, pts) in enumerate(lines.items()):
        color = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{px(float(x)):.1f},{py(float(y)):.1f}" for x, y in pts)
        if coords:
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
            parts += [f'<circle cx="{px(float(x)):.1f}" cy="{py(float(y)):.1f}" r="2.5" fill="{color}">'
                      f"<title>{escape(name)}: {escape(_fmt(abs(float(y)), y_unit))} at "
                      f"{escape(f'{float(x):g} {x_unit}'.strip())}</title></circle>" for x, y in pts]
        parts.append(f'<rect x="{legend_x}" y="{height - 16}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{legend_x + 14}" y="{height - 7}" fill="#374151">{escape(name)}</text>')
        legend_x += 28 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)
