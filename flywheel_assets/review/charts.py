"""Server-rendered SVG charts for the dashboard: line, bar and paired-bar charts as markup strings.

Every plotted point and bar carries `data-series`, `data-x` and `data-y` (the value rounded to six
places), so what a chart shows can be read back by a test or a script; every text is escaped.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence

WIDTH = 640
PLOT_HEIGHT = 200
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP = 64, 16, 40
FONT = 'font-family="system-ui, sans-serif" font-size="12"'
CHAR_WIDTH = 7.0  # rough width of one character at font-size 12, for layout only
NO_DATA = "No data yet"
# Okabe-Ito colours, told apart by colour-blind readers; lines also differ by dash pattern.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
THRESHOLD_COLOR, THRESHOLD_DASH = "#a32828", "4 4"


def line_chart(
    series: Mapping[str, Sequence[tuple[str, float]]],
    *,
    title: str,
    y_label: str,
    y_max: float | None = None,
    threshold: float | None = None,
    chart_id: str | None = None,
) -> str:
    """One polyline per series over a shared axis of category labels (ISO days sort in time order).

    `y_max` fixes the top of the y axis (it still grows to fit a larger value); `threshold` draws a
    dashed reference line, named in the legend. Points whose value is not finite are left out.
    """
    cid = chart_id or _chart_id(title)
    clean = {
        str(name): [(str(x), float(y)) for x, y in points if _finite(y)]
        for name, points in series.items()
    }
    clean = {name: points for name, points in clean.items() if points}
    if not clean:
        return _empty(title, cid)
    xs = sorted({x for points in clean.values() for x, _ in points})
    position = {x: i for i, x in enumerate(xs)}
    values = [y for points in clean.values() for _, y in points]
    if threshold is not None and _finite(threshold):
        values.append(float(threshold))
    else:
        threshold = None
    axis = _YAxis(values, y_max)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    inner = 12  # keeps the first and last points off the axis lines

    def x_of(label: str) -> float:
        if len(xs) == 1:
            return MARGIN_LEFT + plot_w / 2
        return MARGIN_LEFT + inner + position[label] * (plot_w - 2 * inner) / (len(xs) - 1)

    bottom = MARGIN_TOP + PLOT_HEIGHT
    parts = [_y_axis(axis, y_label)]
    longest = max(len(x) for x in xs) * CHAR_WIDTH + 10
    stride = max(1, math.ceil(len(xs) / max(2, int(plot_w // longest))))
    ticks = []
    for i, label in enumerate(xs):
        x = x_of(label)
        ticks.append(_line(x, bottom, x, bottom + 4, 'stroke="currentColor"'))
        if i % stride == 0:
            ticks.append(_text(x, bottom + 18, label, 'text-anchor="middle"'))
    parts.append(f'<g class="x-axis">{"".join(ticks)}</g>')
    if threshold is not None:
        y = axis.to_px(threshold)
        parts.append(
            f'<g class="threshold" data-threshold="{_num(threshold)}">'
            + _line(
                MARGIN_LEFT,
                y,
                WIDTH - MARGIN_RIGHT,
                y,
                f'stroke="{THRESHOLD_COLOR}" stroke-dasharray="{THRESHOLD_DASH}"',
            )
            + "</g>"
        )
    names = sorted(clean)
    ordered = {name: sorted(clean[name], key=lambda p: position[p[0]]) for name in names}
    for k, name in enumerate(names):
        color, dash = PALETTE[k % len(PALETTE)], DASHES[k % len(DASHES)]
        points = ordered[name]
        coords = " ".join(f"{x_of(x):.1f},{axis.to_px(y):.1f}" for x, y in points)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        marks = "".join(
            f'<circle class="point" cx="{x_of(x):.1f}" cy="{axis.to_px(y):.1f}" r="3.5" '
            f'fill="{color}"{_data(name, x, y)}><title>{_e(name)}, {_e(x)}: {_label(y)}'
            "</title></circle>"
            for x, y in points
        )
        parts.append(
            f'<g class="series" data-series="{_e(name)}">'
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"'
            f"{dash_attr}/>{marks}</g>"
        )
    entries = [(n, PALETTE[k % len(PALETTE)], DASHES[k % len(DASHES)]) for k, n in enumerate(names)]
    if threshold is not None:
        entries.append((f"threshold {_label(threshold)}", THRESHOLD_COLOR, THRESHOLD_DASH))
    legend, legend_h = _legend(entries, bottom + 34)
    parts.append(legend)
    latest = "; ".join(f"{n} {_label(ordered[n][-1][1])} at {ordered[n][-1][0]}" for n in names)
    desc = (
        f"Line chart of {y_label} for {len(names)} series over {len(xs)} points "
        f"from {xs[0]} to {xs[-1]}. Latest: {latest}."
    )
    if threshold is not None:
        desc += f" Threshold {_label(threshold)}."
    return _svg(cid, title, desc, bottom + 34 + legend_h + 8, parts)


def bar_chart(
    values: Mapping[str, float],
    *,
    title: str,
    y_label: str,
    chart_id: str | None = None,
) -> str:
    """One bar per key, in the mapping's order, each labelled with its value."""
    cid = chart_id or _chart_id(title)
    clean = {str(k): float(v) for k, v in values.items() if _finite(v)}
    if not clean:
        return _empty(title, cid)
    axis = _YAxis(list(clean.values()), None)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    slot = plot_w / len(clean)
    bar_w = min(56.0, slot * 0.6)
    labels, x_axis_h, reach = _x_labels(list(clean), slot)
    parts = [_y_axis(axis, y_label)]
    for i, (name, value) in enumerate(clean.items()):
        cx = MARGIN_LEFT + slot * (i + 0.5)
        parts.append(
            _bar(cx - bar_w / 2, bar_w, axis, value, PALETTE[0], y_label, name)
            + _text(cx, axis.to_px(max(value, 0.0)) - 4, _label(value), 'text-anchor="middle"')
            + labels(i, cx)
        )
    summary = ", ".join(f"{k} {_label(v)}" for k, v in clean.items())
    desc = f"Bar chart of {y_label}: {summary}."
    return _svg(cid, title, desc, MARGIN_TOP + PLOT_HEIGHT + x_axis_h + 8, parts, reach)


def paired_bar_chart(
    groups: Mapping[str, tuple[float | None, float | None]],
    *,
    title: str,
    y_label: str,
    labels: tuple[str, str] = ("before", "after"),
    y_max: float | None = None,
    chart_id: str | None = None,
) -> str:
    """Two bars per group (for example a pass rate before and after), in the mapping's order.

    A missing value (None, NaN) draws "n/a" in place of its bar.
    """
    cid = chart_id or _chart_id(title)
    clean = {
        str(k): tuple(float(v) if _finite(v) else None for v in pair) for k, pair in groups.items()
    }
    present = [v for pair in clean.values() for v in pair if v is not None]
    if not clean:
        return _empty(title, cid)
    axis = _YAxis(present or [0.0], y_max)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    slot = plot_w / len(clean)
    bar_w = min(36.0, slot * 0.36)
    colors = (PALETTE[5], PALETTE[0])
    x_labels, x_axis_h, reach = _x_labels(list(clean), slot)
    parts = [_y_axis(axis, y_label)]
    bottom = MARGIN_TOP + PLOT_HEIGHT
    for i, (name, pair) in enumerate(clean.items()):
        cx = MARGIN_LEFT + slot * (i + 0.5)
        group = []
        for j, value in enumerate(pair):
            x = cx - bar_w - 1 if j == 0 else cx + 1
            if value is None:
                group.append(
                    _text(
                        x + bar_w / 2,
                        bottom - 4,
                        "n/a",
                        f'text-anchor="middle" class="missing" data-series="{_e(labels[j])}" '
                        f'data-x="{_e(name)}"',
                    )
                )
                continue
            group.append(
                _bar(x, bar_w, axis, value, colors[j], labels[j], name)
                + _text(
                    x + bar_w / 2,
                    axis.to_px(max(value, 0.0)) - 4,
                    _label(value),
                    'text-anchor="middle" font-size="10"',
                )
            )
        parts.append(f'<g class="group" data-x="{_e(name)}">{"".join(group)}</g>')
        parts.append(x_labels(i, cx))
    legend_y = bottom + x_axis_h + 14
    legend, legend_h = _legend(
        [(labels[0], colors[0], None), (labels[1], colors[1], None)], legend_y
    )
    parts.append(legend)

    def pair_text(pair: tuple[float | None, float | None]) -> str:
        return ", ".join(
            f"{labels[j]} {_label(v) if v is not None else 'n/a'}" for j, v in enumerate(pair)
        )

    summary = "; ".join(f"{k}: {pair_text(pair)}" for k, pair in clean.items())
    desc = f"Paired bar chart of {y_label}, {labels[0]} and {labels[1]}, per group. {summary}."
    return _svg(cid, title, desc, legend_y + legend_h + 8, parts, reach)


class _YAxis:
    """A y axis from zero (or the lowest value, when negative) to a rounded top, with its ticks."""

    def __init__(self, values: Iterable[float], y_max: float | None):
        values = list(values)
        low = min(0.0, *values)
        high = max(values)
        integers = all(float(v).is_integer() for v in values)
        if y_max is not None and _finite(y_max):
            high = max(high, float(y_max))
        if high <= low:
            high = low + 1.0
        step = _nice_step((high - low) / 4)
        if integers:
            step = max(1.0, math.ceil(step))
        if y_max is None or high > float(y_max):
            high = math.ceil(round(high / step, 9)) * step
        self.low = math.floor(round(low / step, 9)) * step
        self.high = high
        count = int(round((self.high - self.low) / step, 9))
        ticks = [round(self.low + i * step, 10) for i in range(count + 1)]
        self.ticks = [t for t in ticks if t <= self.high + 1e-12]

    def to_px(self, value: float) -> float:
        frac = (value - self.low) / (self.high - self.low)
        return MARGIN_TOP + PLOT_HEIGHT * (1 - frac)


def _nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _y_axis(axis: _YAxis, y_label: str) -> str:
    right = WIDTH - MARGIN_RIGHT
    bottom = MARGIN_TOP + PLOT_HEIGHT
    parts = []
    for tick in axis.ticks:
        y = axis.to_px(tick)
        parts.append(_line(MARGIN_LEFT, y, right, y, 'stroke="currentColor" stroke-opacity="0.15"'))
        parts.append(_text(MARGIN_LEFT - 6, y + 4, _label(tick), 'text-anchor="end"'))
    parts.append(_line(MARGIN_LEFT, MARGIN_TOP, MARGIN_LEFT, bottom, 'stroke="currentColor"'))
    parts.append(_line(MARGIN_LEFT, bottom, right, bottom, 'stroke="currentColor"'))
    mid = MARGIN_TOP + PLOT_HEIGHT / 2
    parts.append(
        _text(14, mid, y_label, f'text-anchor="middle" transform="rotate(-90 14 {mid:.1f})"')
    )
    return f'<g class="y-axis">{"".join(parts)}</g>'


def _x_labels(names: list[str], slot: float):
    """A function drawing the i-th category label under the plot, the height the labels take, and
    how far they reach left of the image.

    Labels wider than their slot are turned 35 degrees, and ones over 40 characters are cut in the
    middle (the full text kept as a tooltip), so neighbours do not overlap and the end of a label,
    such as a model's status, stays readable.
    """
    shown = [n if len(n) <= 40 else n[:20] + "…" + n[-19:] for n in names]
    widest = max(len(s) for s in shown) * CHAR_WIDTH
    turned = widest > slot - 4
    bottom = MARGIN_TOP + PLOT_HEIGHT
    height = widest * math.sin(math.radians(35)) + 24 if turned else 24
    reach = 0.0
    if turned:
        cos = math.cos(math.radians(35))
        reach = max(
            len(s) * CHAR_WIDTH * cos - (MARGIN_LEFT + slot * (i + 0.5)) + 8
            for i, s in enumerate(shown)
        )

    def draw(i: int, cx: float) -> str:
        y = bottom + 16
        if turned:
            attrs = f'text-anchor="end" transform="rotate(-35 {cx:.1f} {y:.1f})"'
        else:
            attrs = 'text-anchor="middle"'
        tooltip = f"<title>{_e(names[i])}</title>" if shown[i] != names[i] else ""
        return f'<text x="{cx:.1f}" y="{y:.1f}" {attrs}>{tooltip}{_e(shown[i])}</text>'

    return draw, height, max(0.0, reach)


def _bar(
    x: float, width: float, axis: _YAxis, value: float, color: str, series: str, category: str
) -> str:
    zero = axis.to_px(max(axis.low, 0.0))
    top = axis.to_px(value)
    y, h = min(zero, top), abs(zero - top)
    return (
        f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}" '
        f'fill="{color}"{_data(series, category, value)}>'
        f"<title>{_e(series)}, {_e(category)}: {_label(value)}</title></rect>"
    )


def _legend(items: list[tuple[str, str, str | None]], top: float) -> tuple[str, float]:
    """Legend entries flowing left to right, wrapping to new rows; returns markup and height."""
    x, y, row_h = MARGIN_LEFT, top, 18
    parts = []
    for name, color, dash in items:
        width = 28 + len(name) * CHAR_WIDTH + 16
        if x + width > WIDTH - MARGIN_RIGHT and x > MARGIN_LEFT:
            x, y = MARGIN_LEFT, y + row_h
        if dash is None:
            swatch = f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="12" fill="{color}"/>'
        else:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            swatch = _line(x, y - 3, x + 22, y - 3, f'stroke="{color}" stroke-width="2"{dash_attr}')
        parts.append(swatch + _text(x + 28, y + 1, name, ""))
        x += width
    return f'<g class="legend">{"".join(parts)}</g>', y - top + row_h


def _svg(
    cid: str, title: str, desc: str, height: float, parts: list[str], left: float = 0.0
) -> str:
    # `left` widens the view to the left for turned labels that reach past the y axis' margin.
    left = math.ceil(left)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{_e(cid)}" '
        f'viewBox="{-left} 0 {WIDTH + left} {math.ceil(height)}" width="100%" role="img" '
        f'aria-labelledby="{_e(cid)}-title" aria-describedby="{_e(cid)}-desc" {FONT} '
        f'fill="currentColor">'
        f'<title id="{_e(cid)}-title">{_e(title)}</title>'
        f'<desc id="{_e(cid)}-desc">{_e(desc)}</desc>'
        + _text(MARGIN_LEFT, 22, title, 'font-size="14" font-weight="600"')
        + "".join(parts)
        + "</svg>"
    )


def _empty(title: str, cid: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-empty" id="{_e(cid)}" '
        f'viewBox="0 0 {WIDTH} 64" width="100%" role="img" aria-labelledby="{_e(cid)}-title" '
        f'aria-describedby="{_e(cid)}-desc" {FONT} fill="currentColor">'
        f'<title id="{_e(cid)}-title">{_e(title)}</title>'
        f'<desc id="{_e(cid)}-desc">{NO_DATA}.</desc>'
        + _text(MARGIN_LEFT, 22, title, 'font-size="14" font-weight="600"')
        + _text(MARGIN_LEFT, 48, NO_DATA, 'fill-opacity="0.7"')
        + "</svg>"
    )


def _chart_id(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:32] or "chart"
    return f"chart-{slug}-{hashlib.sha1(title.encode()).hexdigest()[:6]}"


def _data(series: str, x: str, y: float) -> str:
    return f' data-series="{_e(series)}" data-x="{_e(x)}" data-y="{_num(y)}"'


def _line(x1: float, y1: float, x2: float, y2: float, attrs: str) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {attrs}/>'


def _text(x: float, y: float, text: str, attrs: str) -> str:
    space = " " if attrs else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{space}{attrs}>{_e(text)}</text>'


def _num(value: float) -> str:
    """The machine-readable form of a value: repr of the float rounded to six places."""
    return repr(round(float(value), 6))


def _label(value: float) -> str:
    """A short human-readable form of a value: whole numbers as such, others to 3 digits."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.3g}"


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
