"""The Experiments page in a real Chromium: two variants with known figures, the verdict in
words, the table, and a screenshot under ``test-artifacts/``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from clickthru.backend import open_store
from tests.chromium import chromium
from tests.conftest import make_collector
from tests.dashboard.test_browser import PASSWORD, Known, Watch, post, screenshot, sign_in

PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
# variant -> (views, clicks, orders of 20.00 GBP)
PLAN = {"A": (400, 16, 2), "B": (400, 40, 6)}


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Known]:
    collector = make_collector(tmp_path_factory.mktemp("experiments"))
    store = open_store(str(collector.db))
    store.access.add_user("shopkeeper", PASSWORD, operator=False, sites=["shop"])
    store.close()
    collector.start()
    try:
        for name, (views, clicks, orders) in PLAN.items():
            events, conversions = [], []
            for n in range(views):
                shown = {"list_id": f"{name}-{n}", "item": f"book-{n % 7}", "variant": name}
                events.append(collector.event(kind="view", dest=None, **shown))
                if n < clicks:
                    click = collector.event(kind="click", **shown)
                    events.append(click)
                    if n < orders:
                        at = int(time.time() * 1000)
                        followed = {"id": click["id"], "token": click["token"], "ts": at}
                        conversions.append({
                            "id": uuid.uuid4().hex, "kind": "conversion", "site": "shop",
                            "order": f"{name}-{n}", "value": 20, "currency": "GBP",
                            "items": [shown["item"]], "clicks": [followed], "ts": at,
                        })  # fmt: skip
            for at in range(0, len(events), 100):
                post(collector, events[at : at + 100])
            post(collector, conversions)
        collector.counted()
        yield Known(collector, 0)
    finally:
        collector.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_the_experiments_page_says_which_variant_is_ahead(browser: Browser, known: Known) -> None:
    watch = Watch()
    page = sign_in(browser, known, "shopkeeper", watch, viewport={"width": 1280, "height": 900})
    page.goto("/dashboard/experiments")
    assert page.locator("h1").inner_text() == "Experiments"
    said = page.locator("section.verdict").inner_text()
    assert "Click-through rate: variant B is ahead, 10.00% against 4.00%" in said
    assert "the data is enough to tell" in said
    assert "Conversion rate: variant B is ahead, 1.50% against 0.50%" in said
    rows = page.locator("table.variants tbody tr").all_inner_texts()
    assert rows[0].startswith("A (control)") and "400" in rows[0]
    assert "300.00 GBP" in rows[1]  # 6 orders of 20.00 in 400 views, per 1,000
    screenshot(page, "dashboard-experiments.png")
    assert watch.problems == []
