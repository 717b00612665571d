"""Charts drawn on the server as SVG strings: no JavaScript, no external library.

Every label may be untrusted (item ids, placements, URLs), so every piece of text and every
attribute value goes through ``_text`` or ``_attr``. Each drawn mark carries its exact value
in ``data-*`` attributes and a ``<title>`` tooltip, for tests and for people hovering.

Colours are SVG presentation attributes, not ``style``: the dashboard's CSP forbids inline
styles, and a stylesheet may still override them through the ``class`` names.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence

Point = tuple[int, float | None]  # (x, y); y None is a gap in the line
NumberFormat = Callable[[float], str]

WIDTH = 400  # viewBox units; the SVG itself is as wide as its container (phone to desktop)
LINE_HEIGHT = 240
FONT_SIZE = 12
CHAR_WIDTH = 7  # a generous average glyph width at FONT_SIZE, to space tick labels
BAR_ROW = 26
WIDE_CHAR = 9  # room per bar-label character: wide glyphs at the phone's larger size
BAR_LABEL_CHARS = 16  # longer bar labels are cut; the full text stays in the tooltip
MAX_X_TICKS = 8
Y_TICKS = 4
PALETTE = ("#2563eb", "#d97706", "#059669", "#9333ea", "#dc2626")
AXIS = "#9ca3af"
GRID = "#e5e7eb"
INK = "#374151"

# Characters XML 1.0 forbids even when escaped; an id containing one must not break the SVG.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def format_number(value: float) -> str:
    """1234 -> '1,234'; 2.5 -> '2.5'."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def format_percent(value: float | None) -> str:
    """0.125 -> '12.5 %'; None (no views, so no rate) -> an en dash."""
    return "\u2013" if value is None else f"{value * 100:.1f} %"


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    x_labels: Callable[[int], str] = str,
    y_format: NumberFormat = format_number,
    element_id: str | None = None,
) -> str:
    """One line per series on a shared x axis (days as unix ms, or positions 1..N).

    The y axis starts at 0. A None value breaks its line; points left alone are still drawn.
    """
    marks = {
        name: [(x, y) for x, y in points if y is not None and math.isfinite(y)]
        for name, points in series.items()
    }
    xs = sorted({x for points in series.values() for x, _ in points})
    ys = [y for points in marks.values() for _, y in points]
    if not ys:
        return _empty(title, LINE_HEIGHT, element_id)

    left, right, top = 64, 16, 16 + (22 if len(series) > 1 else 0)
    bottom = LINE_HEIGHT - 32
    x_low, x_high = xs[0], xs[-1]
    y_ticks = _nice_ticks(max(ys), whole=all(isinstance(y, int) for y in ys))

    def px(x: int) -> float:
        if x_high == x_low:
            return (left + WIDTH - right) / 2
        return left + (x - x_low) / (x_high - x_low) * (WIDTH - right - left)

    def py(y: float) -> float:
        return bottom - y / y_ticks[-1] * (bottom - top)

    parts = [_open(title, LINE_HEIGHT, element_id, "chart chart-line")]
    for tick in y_ticks:
        parts.append(_line(left, py(tick), WIDTH - right, py(tick), GRID if tick else AXIS))
        parts.append(_label(left - 6, py(tick) + 4, y_format(tick), "end", "tick"))
    label_chars = max(len(x_labels(x)) for x in xs)
    room = max(2, int((WIDTH - left - right) // (label_chars * CHAR_WIDTH + 12)))
    for x in _spread(xs, min(room, MAX_X_TICKS)):
        parts.append(_line(px(x), bottom, px(x), bottom + 4, AXIS))
        # Keep the first and last labels inside the box rather than centred on their tick.
        half = len(x_labels(x)) * CHAR_WIDTH / 2
        centre = min(max(px(x), half), WIDTH - half)
        parts.append(_label(centre, bottom + 18, x_labels(x), "middle", "tick"))

    for index, (name, points) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        for run in _runs(points):
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
            parts.append(
                f'<polyline class="series-{index}" points="{path}" fill="none"'
                f' stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>'
            )
        for x, y in marks[name]:
            tooltip = f"{name} {x_labels(x)}: {y_format(y)}"
            parts.append(
                f'<circle class="series-{index}" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5"'
                f' fill="{colour}" data-series="{_attr(name)}" data-x="{x}"'
                f' data-value="{_number(y)}"><title>{_text(tooltip)}</title></circle>'
            )
    if len(series) > 1:
        parts.append(_legend(list(series), left))
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    value_format: NumberFormat = format_number,
    element_id: str | None = None,
) -> str:
    """Horizontal bars, one row each, in the order given; the axis starts at 0."""
    if not bars:
        return _empty(title, 3 * BAR_ROW, element_id)

    # Room on the left for the longest label shown, at a wide glyph's width: capitals,
    # symbols and a phone's larger text must not run off the edge.
    longest = min(BAR_LABEL_CHARS, max(len(label) for label, _ in bars))
    left, right, top = 12 + longest * WIDE_CHAR, 56, 24
    height = top + len(bars) * BAR_ROW + 8
    values = [value for _, value in bars]
    ticks = _nice_ticks(max(map(_drawable, values)), whole=all(isinstance(v, int) for v in values))

    def px(value: float) -> float:
        return left + _drawable(value) / ticks[-1] * (WIDTH - right - left)

    parts = [_open(title, height, element_id, "chart chart-bar")]
    for tick in ticks:
        parts.append(_line(px(tick), top - 4, px(tick), height - 8, AXIS if tick == 0 else GRID))
        parts.append(_label(px(tick), top - 8, value_format(tick), "middle", "tick"))
    for row, (label, value) in enumerate(bars):
        y = top + row * BAR_ROW
        shown = label if len(label) <= BAR_LABEL_CHARS else label[: BAR_LABEL_CHARS - 1] + "…"
        tooltip = f"{label}: {value_format(value)}"
        parts.append(_label(left - 6, y + 17, shown, "end", "bar-label"))
        parts.append(
            f'<rect class="bar" x="{left}" y="{y + 4}" width="{px(value) - left:.1f}"'
            f' height="{BAR_ROW - 8}" fill="{PALETTE[0]}" data-label="{_attr(label)}"'
            f' data-value="{_number(value)}"><title>{_text(tooltip)}</title></rect>'
        )
        parts.append(_label(px(value) + 4, y + 17, value_format(value), "start", "bar-value"))
    parts.append("</svg>")
    return "\n".join(parts)


def _open(title: str, height: int, element_id: str | None, classes: str) -> str:
    id_attribute = f' id="{_attr(element_id)}"' if element_id else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg"{id_attribute} class="{classes}"'
        f' viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="{_attr(title)}"'
        f' font-family="system-ui, sans-serif" font-size="{FONT_SIZE}">'
    )


def _empty(title: str, height: int, element_id: str | None) -> str:
    """The 'no data' state: same box, same accessible name, one message, no marks."""
    return "\n".join(
        [
            _open(title, height, element_id, "chart chart-empty"),
            f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{height - 1}" fill="none"'
            f' stroke="{GRID}" stroke-dasharray="4 4"/>',
            _label(WIDTH / 2, height / 2 + 4, "No data for this range", "middle", "no-data"),
            "</svg>",
        ]
    )


def _legend(names: list[str], left: int) -> str:
    parts, x = ['<g class="legend">'], float(left)
    for index, name in enumerate(names):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="6" width="12" height="12" fill="{colour}"/>')
        parts.append(_label(x + 17, 16, name, "start", "legend-label"))
        x += 17 + len(name) * CHAR_WIDTH + 16
    parts.append("</g>")
    return "".join(parts)


def _line(x1: float, y1: float, x2: float, y2: float, colour: str) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}"'
        ' shape-rendering="crispEdges"/>'
    )


def _label(x: float, y: float, text: str, anchor: str, css_class: str) -> str:
    return (
        f'<text class="{css_class}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"'
        f' fill="{INK}">{_text(text)}</text>'
    )


def _nice_ticks(highest: float, whole: bool) -> list[float]:
    """0 up to a round number at or above ``highest``, in about Y_TICKS round steps.

    ``whole`` (all values are counts) keeps every step a whole number: no tick at 2.5 clicks.
    """
    if highest <= 0:
        return [0.0, 1.0]
    rough = highest / Y_TICKS
    magnitude = 10 ** math.floor(math.log10(rough))
    multiples = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in multiples if m * magnitude >= rough)
    if whole:
        step = max(step, 1)
    count = math.ceil(highest / step - 1e-9)
    # Rounding keeps 0.30000000000000004 out of tick labels.
    return [round(i * step, 12) for i in range(count + 1)]


def _spread(values: list[int], most: int) -> list[int]:
    """At most ``most`` (2 or more) of ``values``, evenly spaced from the first; the last
    too when the spacing allows it."""
    return values[:: max(1, math.ceil((len(values) - 1) / (most - 1)))]


def _runs(points: Sequence[Point]) -> list[list[tuple[int, float]]]:
    """The unbroken stretches of a series (two points or more) between gaps."""
    runs: list[list[tuple[int, float]]] = [[]]
    for x, y in sorted(points, key=lambda point: point[0]):
        if y is None or not math.isfinite(y):
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if len(run) > 1]


def _drawable(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


def _number(value: float) -> str:
    """Exactly the value given: ints stay ints, floats print their shortest round trip."""
    return str(value) if isinstance(value, int) else repr(float(value))


def _text(text: str) -> str:
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=False)


def _attr(text: str) -> str:
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)
