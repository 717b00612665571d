"""The dashboard in a real Chromium: sign in through the form, read the overview and the
position curve off the rendered page, and keep screenshots under ``test-artifacts/``.

The collector here is this module's own, fed a known set of events over HTTP, so every
number on the page is known exactly. Item ids and destination URLs carry HTML/JS payloads:
they must reach the reader as text, with no dialog, no injected element and no CSP report.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
)

from clickthru.backend import open_store
from tests.chromium import chromium
from tests.conftest import OTHER_ORIGIN, SHOP_ORIGIN, Collector, make_collector

PASSWORD = "correct horse battery"
# A person's browser: the default httpx user agent counts as a bot, and bots are left out.
PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
BOT = "Googlebot/2.1 (+http://www.google.com/bot.html)"
PLACEMENT = "product-page-bottom"
DAY_MS = 86_400_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOT_MIN_BYTES = 10_000
TIMEOUT_MS = 10_000

# position -> (views, clicks); each view its own (list, item), clicks on the first viewed
# ones, so unique counts equal raw counts and the CTR is clicks / views.
PLAN = {1: (10, 4), 2: (10, 2), 3: (8, 1), 4: (5, 0)}
CURVE = {1: 0.4, 2: 0.2, 3: 0.125, 4: 0.0}
VIEWS = sum(views for views, _ in PLAN.values())  # 33
CLICKS = sum(clicks for _, clicks in PLAN.values())  # 7
ITEM_PAYLOADS = ("<img src=x onerror=alert(1)>", '"><script>alert(2)</script>')
DEST_PAYLOADS = (
    f"{SHOP_ORIGIN}/?q=<img/src=x/onerror=alert(3)>",
    f'{SHOP_ORIGIN}/book/"><svg/onload=alert(4)>',
)
LIVE_PAYLOAD = "<b>live</b><img src=x onerror=alert(5)>"
OTHER_ITEM = "other-site-book"  # clicked on the site "other": never on shop's pages


@dataclass
class Known:
    """The collector holding exactly the events of PLAN (plus a bot's and another site's)."""

    collector: Collector
    today_ms: int  # the UTC day every event landed in


@dataclass
class Watch:
    """What a page did that a reader should never see: dialogs, errors, CSP reports."""

    problems: list[str] = field(default_factory=list)

    def page(self, context: BrowserContext) -> Page:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)

        def on_dialog(dialog: Dialog) -> None:
            self.problems.append(f"dialog: {dialog.type} {dialog.message!r}")
            dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":  # CSP violations and failed loads land here too
                self.problems.append(f"console: {message.text}")

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"pageerror: {error}"))
        return page


def shop_events() -> list[dict[str, Any]]:
    """Views and clicks per PLAN; the first pair at positions 1 and 2 carries the payloads."""
    planned: list[dict[str, Any]] = []
    for position, (views, clicks) in PLAN.items():
        for n in range(views):
            pair = {"list_id": f"list-{position}-{n}", "item": f"book-{position}-{n}"}
            dest = f"{SHOP_ORIGIN}/book/{position}-{n}"
            if n == 0 and position <= len(ITEM_PAYLOADS):
                pair["item"] = ITEM_PAYLOADS[position - 1]
                dest = DEST_PAYLOADS[position - 1]
            claims = {**pair, "position": position, "placement": PLACEMENT}
            planned.append({"kind": "view", "dest": None, **claims})
            if n < clicks:
                planned.append({"kind": "click", "dest": dest, **claims})
    return planned


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Known]:
    collector = make_collector(tmp_path_factory.mktemp("browser"))
    store = open_store(str(collector.db))
    store.access.add_user("ops", PASSWORD, operator=True, sites=[])
    store.access.add_user("shopkeeper", PASSWORD, operator=False, sites=["shop"])
    store.close()
    collector.start()
    try:
        events = [collector.event(**fields) for fields in shop_events()]
        post(collector, events)
        # Neither a bot's click nor another site's may reach shop's numbers.
        post(collector, [collector.event(item="bot-book", position=4)], user_agent=BOT)
        post(collector, [collector.event("other", item=OTHER_ITEM)], origin=OTHER_ORIGIN)
        collector.counted()
        yield Known(collector, int(time.time() * 1000) // DAY_MS * DAY_MS)
    finally:
        collector.stop()


def post(
    collector: Collector,
    events: list[dict[str, Any]],
    origin: str = SHOP_ORIGIN,
    user_agent: str = PERSON,
) -> None:
    answer = collector.post(events, origin=origin, headers={"user-agent": user_agent})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": len(events), "duplicates": 0, "rejected": []}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def sign_in(browser: Browser, known: Known, name: str, watch: Watch, **options: Any) -> Page:
    """A new context signed in through the real form; its page is left on the landing page."""
    context = browser.new_context(base_url=known.collector.url, **options)
    page = watch.page(context)
    page.goto("/dashboard/")
    page.wait_for_url(re.compile(r"/dashboard/sign-in\?next="))  # strangers are sent here
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{known.collector.url}/dashboard/")
    assert page.locator("h1").inner_text() == "Overview"
    return page


@pytest.fixture(scope="module")
def desktop(browser: Browser, known: Known) -> Iterator[tuple[BrowserContext, Watch]]:
    """The shopkeeper (site "shop" only), signed in on a laptop-sized window."""
    watch = Watch()
    page = sign_in(browser, known, "shopkeeper", watch, viewport={"width": 1280, "height": 900})
    page.close()
    assert watch.problems == []
    yield page.context, watch
    page.context.close()


@pytest.fixture
def watched(desktop: tuple[BrowserContext, Watch]) -> Iterator[Page]:
    """A fresh page in the signed-in context; nothing may go wrong on it."""
    context, watch = desktop
    watch.problems.clear()
    page = watch.page(context)
    yield page
    page.close()
    assert watch.problems == []


def marks(page: Page, selector: str) -> list[dict[str, Any]]:
    """Each matching chart mark: its data-* attributes and where it was drawn on screen."""
    found: list[dict[str, Any]] = page.eval_on_selector_all(
        selector,
        """marks => marks.map(mark => {
            const box = mark.getBoundingClientRect();
            return {...mark.dataset, x_px: box.x + box.width / 2, y_px: box.y + box.height / 2,
                    width_px: box.width, height_px: box.height};
        })""",
    )
    return found


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > SCREENSHOT_MIN_BYTES, path
    return path


def assert_no_injection(page: Page) -> None:
    """No payload became markup: no stray image, script, handler or javascript: link."""
    assert page.locator('img[src="x"], svg[onload], [onerror], [onload]').count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0
    scripts = page.eval_on_selector_all("script", "all => all.map(s => s.getAttribute('src'))")
    assert scripts in ([], ["static/live.js"])


def test_the_overview_shows_the_known_numbers_and_payloads_as_text(
    watched: Page, known: Known
) -> None:
    page = watched
    page.goto("/dashboard/")
    assert page.locator("h1").inner_text() == "Overview"
    cards = page.eval_on_selector_all(
        ".cards .card",
        "all => Object.fromEntries(all.map(c => [c.querySelector('dt').textContent.trim(),"
        " c.querySelector('dd').textContent.trim()]))",
    )
    assert cards == {
        "Clicks": str(CLICKS),
        "Views": str(VIEWS),
        "CTR": f"{CLICKS / VIEWS * 100:.1f} %",  # 21.2 %
        "Unique clicks": str(CLICKS),
        "Unique views": str(VIEWS),
    }

    today = str(known.today_ms)
    volume = marks(page, 'svg[aria-label="Views and clicks per day"] circle')
    assert [(m["series"], m["x"], m["value"]) for m in volume] == [
        ("Views", today, str(VIEWS)),
        ("Clicks", today, str(CLICKS)),
    ]
    assert all(m["width_px"] > 0 for m in volume)  # drawn, not merely present
    assert volume[0]["y_px"] < volume[1]["y_px"]  # more views than clicks: drawn higher
    ctr = marks(page, 'svg[aria-label="Click-through rate per day"] circle')
    assert [(m["series"], m["x"]) for m in ctr] == [("CTR", today)]
    assert float(ctr[0]["value"]) == pytest.approx(CLICKS / VIEWS)

    latest = page.locator("#latest tbody")
    assert latest.locator("tr").count() == CLICKS
    text = latest.inner_text()
    for payload in (*ITEM_PAYLOADS, *DEST_PAYLOADS):
        assert payload in text
    assert OTHER_ITEM not in text and "bot-book" not in text
    items = latest.locator("td.key").all_inner_texts()
    assert set(ITEM_PAYLOADS) <= set(items)
    assert_no_injection(page)
    screenshot(page, "dashboard-overview.png")


def test_the_position_curve_shows_ctr_per_position(watched: Page) -> None:
    page = watched
    page.goto("/dashboard/")
    page.get_by_role("navigation", name="Reports").get_by_role("link", name="Positions").click()
    page.wait_for_url(re.compile(r"/dashboard/positions\?"))
    assert page.locator("h1").inner_text() == "Positions"

    curve = marks(page, "#position-curve circle")
    assert [int(m["x"]) for m in curve] == list(CURVE)
    assert [float(m["value"]) for m in curve] == list(CURVE.values())
    # Left to right, and each lower CTR drawn lower on the screen.
    assert [m["x_px"] for m in curve] == sorted(m["x_px"] for m in curve)
    assert [m["y_px"] for m in curve] == sorted(m["y_px"] for m in curve)
    assert len({m["y_px"] for m in curve}) == len(curve)

    bars = marks(page, 'svg[aria-label="Clicks per position"] rect.bar')
    assert [(m["label"], int(m["value"])) for m in bars] == [
        (str(position), clicks) for position, (_, clicks) in PLAN.items()
    ]
    assert_no_injection(page)
    screenshot(page, "dashboard-positions.png")


def test_the_items_page_shows_payload_ids_as_text(watched: Page) -> None:
    page = watched
    page.goto("/dashboard/items")
    bars = {m["label"]: m["value"] for m in marks(page, "rect.bar")}
    assert all(bars.get(payload) == "1" for payload in ITEM_PAYLOADS), bars
    keys = page.locator("table.counts tbody th.key").all_inner_texts()
    assert set(ITEM_PAYLOADS) <= set(keys)
    # The chart cuts long ids but keeps them text; the table shows them whole.
    labels = page.locator("svg text.bar-label").all_text_contents()  # SVG: no innerText
    assert any(label.startswith("<img src=x") for label in labels), labels
    assert_no_injection(page)
    screenshot(page, "dashboard-items.png")


def test_the_overview_fits_a_phone(
    desktop: tuple[BrowserContext, Watch], browser: Browser, known: Known
) -> None:
    context, _ = desktop
    watch = Watch()
    phone = browser.new_context(
        base_url=known.collector.url,
        storage_state=context.storage_state(),  # the same signed-in session
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = watch.page(phone)
        page.goto("/dashboard/")
        assert page.locator("h1").inner_text() == "Overview"
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1] + 1, width
        # Both charts take (nearly) the phone's width rather than a thumbnail of it.
        boxes = marks(page, "svg.chart")
        assert len(boxes) == 2 and all(box["width_px"] > 300 for box in boxes), boxes
        screenshot(page, "dashboard-phone.png")
    finally:
        phone.close()
    assert watch.problems == []


def test_a_live_click_arrives_in_the_latest_table_as_text(browser: Browser, known: Known) -> None:
    # The operator on site "other": this click leaves the shop's numbers above untouched.
    watch = Watch()
    page = sign_in(browser, known, "ops", watch, viewport={"width": 1280, "height": 900})
    try:
        page.goto("/dashboard/?site=other")
        rows = page.locator("#latest tbody tr")
        assert rows.count() == 1 and OTHER_ITEM in rows.inner_text()
        collector = known.collector
        post(collector, [collector.event("other", item=LIVE_PAYLOAD)], origin=OTHER_ORIGIN)
        fresh = page.locator("#latest tbody tr.fresh")
        fresh.wait_for(timeout=TIMEOUT_MS)  # live.js asks every 5 s
        assert fresh.locator("td.key").inner_text() == LIVE_PAYLOAD
        assert rows.count() == 2
        assert_no_injection(page)
        assert page.locator("#latest b").count() == 0
    finally:
        page.context.close()
    assert watch.problems == []
