"""The SVG charts: exact values on every mark, untrusted labels kept as text, empty states."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from clickthru.dashboard.charts import bar_chart, format_number, format_percent, line_chart

SVG = "{http://www.w3.org/2000/svg}"
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "https://shop.test/b?x=1&y=<2>",
    "]]><!-- -->",
]


def parse(svg: str) -> ET.Element:
    """Parsing as XML proves the SVG well-formed: a payload that broke out would not parse."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def marks(root: ET.Element, tag: str) -> list[ET.Element]:
    return [element for element in root.iter(f"{SVG}{tag}") if "data-value" in element.attrib]


def every_tag(root: ET.Element) -> set[str]:
    return {element.tag.removeprefix(SVG) for element in root.iter()}


def test_line_chart_points_carry_their_exact_values() -> None:
    series: dict[str, list[tuple[int, float | None]]] = {
        "CTR": [(1, 0.125), (2, 0.0625), (3, None), (4, 0.1 + 0.2), (5, 0.01)],
    }
    root = parse(line_chart(series, title="CTR by position", y_format=format_percent))

    points = marks(root, "circle")
    assert [(int(p.get("data-x", "")), float(p.get("data-value", ""))) for p in points] == [
        (1, 0.125),
        (2, 0.0625),
        (4, 0.1 + 0.2),  # the exact float, not a rounded label
        (5, 0.01),
    ]
    assert {p.get("data-series") for p in points} == {"CTR"}
    assert points[0].findtext(f"{SVG}title") == "CTR 1: 12.5 %"


def test_a_gap_breaks_the_line_and_a_lone_point_is_still_drawn() -> None:
    series: dict[str, list[tuple[int, float | None]]] = {
        "clicks": [(1, 4), (2, 5), (3, None), (4, 7), (5, None), (6, 9), (7, 3)],
    }
    root = parse(line_chart(series, title="Clicks"))

    assert len(list(root.iter(f"{SVG}polyline"))) == 2  # 1-2 and 6-7; 4 stands alone
    assert [p.get("data-value") for p in marks(root, "circle")] == ["4", "5", "7", "9", "3"]


def test_several_series_share_the_axes_and_get_a_legend() -> None:
    days = [1_732_752_000_000 + i * 86_400_000 for i in range(3)]
    series: dict[str, list[tuple[int, float | None]]] = {
        "Views": [(day, 400 + i) for i, day in enumerate(days)],
        "Clicks": [(day, 10 + i) for i, day in enumerate(days)],
    }
    root = parse(line_chart(series, title="Per day", x_labels=lambda ms: f"day {ms}"))

    circles = marks(root, "circle")
    by_series = {name: [c for c in circles if c.get("data-series") == name] for name in series}
    assert [int(p.get("data-x", "")) for p in by_series["Clicks"]] == days
    assert [p.get("data-value") for p in by_series["Views"]] == ["400", "401", "402"]
    legend = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "legend-label"]
    assert legend == ["Views", "Clicks"]


def test_bar_chart_bars_carry_label_and_value() -> None:
    bars: list[tuple[str, float]] = [("also-bought", 42), ("similar", 7), ("home", 0)]
    root = parse(bar_chart(bars, title="Clicks per placement"))

    rects = marks(root, "rect")
    assert [(r.get("data-label"), r.get("data-value")) for r in rects] == [
        ("also-bought", "42"),
        ("similar", "7"),
        ("home", "0"),
    ]
    widths = [float(r.get("width", "")) for r in rects]
    assert widths[0] > widths[1] > widths[2] == 0
    assert rects[0].findtext(f"{SVG}title") == "also-bought: 42"


def test_a_long_bar_label_is_cut_on_screen_but_whole_in_data_and_tooltip() -> None:
    label = "item-" + "x" * 60
    root = parse(bar_chart([(label, 3)], title="Items"))

    rect = marks(root, "rect")[0]
    assert rect.get("data-label") == label
    assert rect.findtext(f"{SVG}title") == f"{label}: 3"
    shown = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "bar-label"]
    assert shown[0].endswith("…") and len(shown[0]) < len(label)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_untrusted_labels_come_out_as_text(payload: str) -> None:
    bars = bar_chart([(payload, 5)], title=payload, element_id="bars")
    line = line_chart(
        {payload: [(1, 0.5), (2, 0.25)]}, title=payload, x_labels=lambda x: f"{payload}{x}"
    )
    for svg in (bars, line):
        root = parse(svg)
        assert every_tag(root) <= {
            "svg",
            "line",
            "text",
            "rect",
            "title",
            "polyline",
            "circle",
            "g",
        }
        assert not [name for e in root.iter() for name in e.attrib if name.startswith("on")]
        assert root.get("aria-label") == payload
        assert "<script" not in svg and "<img" not in svg

    rect = marks(parse(bars), "rect")[0]
    assert rect.get("data-label") == payload
    assert rect.findtext(f"{SVG}title") == f"{payload}: 5"
    circle = marks(parse(line), "circle")[0]
    assert circle.get("data-series") == payload
    assert circle.findtext(f"{SVG}title") == f"{payload} {payload}1: 0.5"


def test_characters_xml_forbids_do_not_break_the_svg() -> None:
    label = "item\x00\x07\x1b-end"
    root = parse(bar_chart([(label, 1)], title=label))
    assert marks(root, "rect")[0].get("data-label") == "item\ufffd\ufffd\ufffd-end"


@pytest.mark.parametrize(
    "svg",
    [
        bar_chart([], title="Clicks per item"),
        line_chart({}, title="Clicks per item"),
        line_chart({"CTR": []}, title="Clicks per item"),
        line_chart({"CTR": [(1, None), (2, None)]}, title="Clicks per item"),
        line_chart({"CTR": [(1, math.nan)]}, title="Clicks per item"),
    ],
)
def test_no_data_renders_an_empty_state(svg: str) -> None:
    root = parse(svg)
    assert "chart-empty" in root.get("class", "")
    assert root.get("aria-label") == "Clicks per item"
    assert "No data for this range" in [t.text for t in root.iter(f"{SVG}text")]
    assert not marks(root, "rect") and not marks(root, "circle")


def test_the_svg_is_accessible_and_scales_to_its_container() -> None:
    for svg in (
        bar_chart([("a", 1)], title="Bars", element_id="bars"),
        line_chart({"a": [(1, 1)]}, title="Line", element_id="position-curve"),
    ):
        root = parse(svg)
        assert root.get("role") == "img" and root.get("aria-label")
        assert root.get("width") == "100%" and root.get("height") is None
        assert len((root.get("viewBox") or "").split()) == 4
        assert "style" not in {name for e in root.iter() for name in e.attrib}  # CSP: no inline
    assert parse(line_chart({"a": [(1, 1)]}, title="t", element_id="curve")).get("id") == "curve"


def test_the_value_axis_starts_at_zero_and_reaches_past_the_largest_value() -> None:
    root = parse(bar_chart([("a", 37), ("b", 12)], title="Bars"))
    ticks = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks[0] == "0"
    assert float(ticks[-1].replace(",", "")) >= 37
    assert all(tick.isdigit() for tick in ticks)  # counts get whole-number ticks

    small = parse(bar_chart([("a", 3)], title="Bars"))
    small_ticks = [t.text for t in small.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert small_ticks == ["0", "1", "2", "3"]


def test_day_labels_are_thinned_to_fit() -> None:
    days = [(i, float(i)) for i in range(90)]
    root = parse(line_chart({"a": days}, title="t", x_labels=lambda x: f"2024-01-{x:02}"))
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    x_labels = [t.text for t in labels if (t.text or "").startswith("2024")]
    assert 2 <= len(x_labels) <= 5
    assert x_labels[0] == "2024-01-00"


def test_number_formats() -> None:
    assert format_number(1234) == "1,234"
    assert format_number(2.5) == "2.5"
    assert format_number(1234567.0) == "1,234,567"
    assert format_percent(0.125) == "12.5 %"
    assert format_percent(None) == "\u2013"  # an en dash: no views, no rate
