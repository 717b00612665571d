"""The dashboard pages: each renders from realistic data, with its charts, untrusted text
escaped, no inline script or style (the CSP forbids both), and only relative URLs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from clickthru.dashboard import pages
from clickthru.reports import Click, Counts, Health, Row

DAY = 86_400_000
MONDAY = 1_732_492_800_000  # 2024-11-25 00:00 UTC
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
STATIC = Path(pages.__file__).parent / "static"
PAGE_PATHS = ["./", "placements", "items", "positions", "experiments", "health"]
CHOICE = {"site": ["shop"], "since": ["2024-11-25"], "until": ["2024-12-02"]}  # as parsed


class Page(HTMLParser):
    """What a browser would see: elements with their attributes, text, script bodies."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.script_bodies: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))
        self._in_script = tag == "script"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.script_bodies if self._in_script else self.text).append(data)

    def all(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        return [
            attrs
            for name, attrs in self.elements
            if name == tag
            and all(attrs.get(key.replace("_", "-")) == v for key, v in wanted.items())
        ]

    def one(self, tag: str, **wanted: str) -> dict[str, str]:
        found = self.all(tag, **wanted)
        assert len(found) == 1, (tag, wanted, found)
        return found[0]

    @property
    def all_text(self) -> str:
        return " ".join(self.text)  # a space between elements, as a reader sees them


def counts(clicks: int, views: int) -> Counts:
    return Counts(clicks, views, views // 2, max(clicks - 1, 0), max(views - 10, 0))


def sample(page: str) -> dict[str, Any]:
    """Data shaped like the reports' answers, with untrusted text wherever users supply it."""
    if page == "overview":
        days = [0, 1, 2, 4, 5, 6]  # day 3 had no events at all
        return {
            "totals": counts(120, 4000),
            "series": [Row(MONDAY + d * DAY, counts(10 + d, 400 + 20 * d)) for d in days],
            "latest": [
                Click(
                    seq=907 - i,
                    received_at=MONDAY + 6 * DAY + 3_600_000 - i * 1000,
                    site="shop",
                    placement=("also-bought", BREAKOUT, "similar")[i],
                    item=(SCRIPT, "b-2", "b-3")[i],
                    position=i + 1,
                    list_id=f"list-{i}",
                    page="https://shop.test/",
                    dest=(f"https://shop.test/x?a=1&b={BREAKOUT}", None, "https://shop.test/b-3")[
                        i
                    ],
                    bot=False,
                )
                for i in range(3)
            ],
        }
    if page == "placements":
        names = ["also-bought", "similar", BREAKOUT, SCRIPT]
        return {"rows": [Row(name, counts(50 - 10 * i, 2000)) for i, name in enumerate(names)]}
    if page == "items":
        ids = [SCRIPT, BREAKOUT, *(f"book-{n}" for n in range(30))]
        return {"rows": [Row(item, counts(90 - 2 * i, 900)) for i, item in enumerate(ids)]}
    if page == "positions":
        return {"rows": [Row(p, counts(100 // p, 1000)) for p in (3, 1, 2, 4, 5, 6, 7, 8)]}
    if page == "health":
        reasons = (("invalid_event", 25), ("bad_token", 10), (SCRIPT, 3), (BREAKOUT, 2))
        return {"health": Health(5000, 300, 12, 40, reasons)}
    if page == "experiments":
        from tests.dashboard.test_verdict import experiment, variant

        return {"experiment": experiment(variant("A", 1000, 40), variant(SCRIPT, 900, 60))}
    raise AssertionError(page)


def render(page: str, data: dict[str, Any] | None = None, **choice: Any) -> str:
    options: dict[str, Any] = {
        "user": "ana",
        "is_operator": False,
        "sites": ["shop", "books"],
        "site": "shop",
        "since": "2024-11-25",
        "until": "2024-12-02",
        "bots": False,
        "csrf_token": "csrf-123",
    }
    options.update(choice)
    return pages.render_page(page, data=sample(page) if data is None else data, **options)


def svgs(html: str) -> list[ET.Element]:
    """Every chart in the page, parsed as XML: proof each one is well-formed."""
    return [ET.fromstring(svg) for svg in re.findall(r"<svg\b.*?</svg>", html, re.DOTALL)]


def chart_marks(chart: ET.Element, tag: str) -> list[ET.Element]:
    ns = "{http://www.w3.org/2000/svg}"
    return [e for e in chart.iter(f"{ns}{tag}") if "data-value" in e.attrib]


def assert_safe_and_relative(page: Page) -> None:
    # No markup smuggled in through data, no inline script or style (the CSP blocks them).
    assert not page.all("img")
    assert all(not body.strip() for body in page.script_bodies)
    assert not page.all("style")
    for tag, attrs in page.elements:
        assert not [name for name in attrs if name.startswith("on") or name == "style"], tag
    # Every URL relative to the page, so the dashboard works wherever it is mounted.
    for tag, attrs in page.elements:
        for name in ("href", "src", "action"):
            if name in attrs:
                url = urlsplit(attrs[name])
                if tag == "link" and attrs.get("rel") == "icon":
                    assert attrs[name] == "data:,"
                    continue
                assert not url.scheme and not url.netloc, (tag, attrs)
                assert not url.path.startswith("/"), (tag, attrs)


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.mark.parametrize("page", list(pages.PAGES))
def test_every_page_renders_safely_with_its_charts(page: str) -> None:
    html = render(page)
    parsed = Page(html)
    assert_safe_and_relative(parsed)
    assert SCRIPT not in html and BREAKOUT not in html
    if page != "positions":  # positions are numbers: nothing untrusted to show
        assert SCRIPT in parsed.all_text or BREAKOUT in parsed.all_text  # shown, as text
    assert svgs(html), "every page draws at least one chart"
    parsed.one("meta", name="viewport")
    parsed.one("link", rel="stylesheet", href="static/dashboard.css")
    assert "clickthru" in parsed.all_text and "ana" in parsed.all_text


@pytest.mark.parametrize("page", list(pages.PAGES))
def test_the_nav_links_every_page_and_keeps_the_choice(page: str) -> None:
    parsed = Page(render(page))
    links = [a["href"] for a in parsed.all("a")]
    nav = [href for href in links if "?" in href and urlsplit(href).path in PAGE_PATHS]
    assert [urlsplit(href).path for href in nav] == PAGE_PATHS
    assert all(query_of(href) == CHOICE for href in nav)
    current = parsed.one("a", aria_current="page")
    assert urlsplit(current["href"]).path == pages.PAGES[page][1]


def test_the_filter_and_sign_out_forms() -> None:
    parsed = Page(render("items"))
    form = parsed.one("form", method="get")
    assert "action" not in form  # submits to the page itself
    assert parsed.one("select", name="site")
    # The sites as given; "All sites" appears only when the page shows all (site "").
    assert [o.get("value") for o in parsed.all("option")] == [None, None]
    assert parsed.one("option", selected="")  # exactly one chosen
    assert parsed.one("input", name="since", type="date")["value"] == "2024-11-25"
    assert parsed.one("input", name="until", type="date")["value"] == "2024-12-02"
    assert "checked" not in parsed.one("input", name="bots", type="checkbox", value="1")

    parsed.one("form", method="post", action="sign-out")
    assert parsed.one("input", type="hidden", name="csrf")["value"] == "csrf-123"


def test_export_links_carry_the_choice() -> None:
    parsed = Page(render("placements"))
    exports = [a["href"] for a in parsed.all("a") if a["href"].startswith("../api/v1/")]
    reports = {query_of(h)["by"][0]: query_of(h) for h in exports if "/report?" in h}
    assert set(reports) == {"day", "placement", "item", "position"}
    assert reports["item"] == {**CHOICE, "by": ["item"], "format": ["csv"]}
    raw = [query_of(h) for h in exports if h.startswith("../api/v1/export?")]
    assert raw == [{**CHOICE, "format": ["csv"]}, {**CHOICE, "format": ["ndjson"]}]


def test_overview_cards_charts_and_latest_clicks() -> None:
    html = render("overview")
    page = Page(html)

    text = " ".join(page.all_text.split())
    assert "Clicks 120" in text and "Views 4,000" in text
    assert "CTR 3.0 %" in text  # 119 unique clicks / 3990 unique views
    assert "Unique clicks 119" in text and "Unique views 3,990" in text

    volume, ctr = svgs(html)
    views = [p for p in chart_marks(volume, "circle") if p.get("data-series") == "Views"]
    # Seven days: the day without events is drawn at zero, not skipped.
    assert [int(p.get("data-x", "")) for p in views] == [MONDAY + d * DAY for d in range(7)]
    assert [p.get("data-value") for p in views] == ["400", "420", "440", "0", "480", "500", "520"]
    ctr_days = [int(p.get("data-x", "")) for p in chart_marks(ctr, "circle")]
    assert MONDAY + 3 * DAY not in ctr_days  # no views, no rate: a gap rather than 0 %
    first_ctr = chart_marks(ctr, "circle")[0]
    assert float(first_ctr.get("data-value", "")) == counts(10, 400).ctr

    table = page.one("table", id="latest")
    source = urlsplit(table["data-source"])
    assert source.path == "../api/v1/latest" and query_of(table["data-source"]) == {
        "site": ["shop"]
    }
    assert int(table["data-limit"]) > 0
    assert [row["data-seq"] for row in page.all("tr") if "data-seq" in row] == ["907", "906", "905"]
    assert "2024-12-01 01:00:00" in page.all_text  # UTC
    assert f"https://shop.test/x?a=1&b={BREAKOUT}" in page.all_text

    script = page.one("script")
    assert script == {"src": "static/live.js", "defer": ""}


def test_only_the_overview_loads_a_script() -> None:
    for page in ("placements", "items", "positions", "health"):
        assert not Page(render(page)).all("script")


def test_placements_bars_and_table() -> None:
    html = render("placements")
    (chart,) = svgs(html)
    bars = [(r.get("data-label"), r.get("data-value")) for r in chart_marks(chart, "rect")]
    assert bars == [("also-bought", "50"), ("similar", "40"), (BREAKOUT, "30"), (SCRIPT, "20")]
    text = Page(html).all_text
    for heading in ("Placement", "Views", "Clicks", "Unique views", "Unique clicks", "CTR"):
        assert heading in text


def test_items_chart_shows_the_top_twenty_in_order_and_the_table_lists_all() -> None:
    html = render("items")
    (chart,) = svgs(html)
    labels = [r.get("data-label") for r in chart_marks(chart, "rect")]
    assert labels[:2] == [SCRIPT, BREAKOUT] and len(labels) == pages.MAX_BARS
    assert "book-29" in Page(html).all_text


def test_positions_curve_in_position_order() -> None:
    html = render("positions")
    curve, bars = svgs(html)
    assert curve.get("id") == "position-curve"
    points = chart_marks(curve, "circle")
    assert [int(p.get("data-x", "")) for p in points] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert float(points[0].get("data-value", "")) == counts(100, 1000).ctr
    assert [r.get("data-value") for r in chart_marks(bars, "rect")][:3] == ["100", "50", "33"]


def test_health_rejects_and_shares() -> None:
    html = render("health")
    (chart,) = svgs(html)
    bars = [(r.get("data-label"), r.get("data-value")) for r in chart_marks(chart, "rect")]
    assert bars[0] == ("invalid_event", "25") and (SCRIPT, "3") in bars
    text = " ".join(Page(html).all_text.split())
    assert "Bot share 6.0 %" in text and "Duplicates 12" in text and "Events stored 5,000" in text
    assert "62.5 %" in text  # invalid_event: 25 of 40 rejects
    csv = [a["href"] for a in Page(html).all("a") if a["href"].startswith("../api/v1/health?")]
    assert query_of(csv[0])["format"] == ["csv"]


def sample_experiment() -> dict[str, Any]:
    from tests.dashboard.test_verdict import experiment

    return {"experiment": experiment()}


@pytest.mark.parametrize("page", list(pages.PAGES))
def test_pages_without_data_say_so(page: str) -> None:
    nothing: dict[str, dict[str, Any]] = {
        "overview": {"totals": Counts(), "series": [], "latest": []},
        "health": {"health": Health(0, 0, 0, 0, ())},
        "experiments": sample_experiment(),
    }
    empty = nothing.get(page, {"rows": []})
    html = render(page, data=empty)
    assert_safe_and_relative(Page(html))
    assert all("chart-empty" in chart.get("class", "") for chart in svgs(html))
    assert "No data for this range" in html


def test_bots_and_all_sites_carry_into_every_link() -> None:
    page = Page(render("items", site="", bots=True, is_operator=True))
    assert "checked" in page.one("input", name="bots")
    assert page.one("option", selected="")["value"] == ""  # "All sites"
    for link in page.all("a"):
        if "?" in link["href"]:
            assert query_of(link["href"])["bots"] == ["1"]
            assert "site" not in query_of(link["href"])
    assert "operator" in page.all_text


def test_untrusted_user_and_site_names_are_escaped() -> None:
    html = render(
        "overview", user=SCRIPT, sites=[BREAKOUT, "shop"], site=BREAKOUT, csrf_token=BREAKOUT
    )
    page = Page(html)
    assert_safe_and_relative(page)
    assert SCRIPT not in html and BREAKOUT not in html
    assert page.one("input", type="hidden", name="csrf")["value"] == BREAKOUT
    assert query_of(page.one("table", id="latest")["data-source"])["site"] == [BREAKOUT]


def test_an_unknown_page_is_an_error() -> None:
    with pytest.raises(ValueError, match="no dashboard page"):
        render("settings", data={})


def test_sign_in_form() -> None:
    html = pages.render_sign_in(SCRIPT, "token-1", "/dashboard/items?site=shop")
    page = Page(html)
    assert_safe_and_relative(page)
    assert SCRIPT not in html and SCRIPT in page.all_text
    assert page.one("form", method="post", action="sign-in")
    assert page.one("input", name="csrf", type="hidden")["value"] == "token-1"
    assert page.one("input", name="next", type="hidden")["value"] == "/dashboard/items?site=shop"
    assert page.one("input", name="name")
    assert page.one("input", name="password", type="password")
    assert page.one("p", role="alert")
    assert not Page(pages.render_sign_in(None, "t", "/dashboard/")).all("p", role="alert")


@pytest.mark.parametrize(("status", "title"), [(403, "Not allowed"), (404, "Not found")])
def test_error_pages(status: int, title: str) -> None:
    html = pages.render_error(status, f"No site named {BREAKOUT}")
    page = Page(html)
    assert_safe_and_relative(page)
    assert title in page.all_text and f"No site named {BREAKOUT}" in page.all_text

    deeper = Page(pages.render_error(status, "gone", root="../"))
    assert deeper.one("link", rel="stylesheet")["href"] == "../static/dashboard.css"


def test_the_static_files_are_there_and_the_script_builds_rows_without_html() -> None:
    assert (STATIC / "dashboard.css").stat().st_size > 0
    script = (STATIC / "live.js").read_text()
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert risky not in script
    assert "textContent" in script and "after" in script
