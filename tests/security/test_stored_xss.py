"""Stored XSS: script payloads in a site's name, placements, list ids, items, pages,
destinations, user agents and refused input, stored through the collector, render inert on
every dashboard page: as text in the HTML, and in a real Chromium with no dialog, no
injected element and no CSP report. A real ``clickthru serve`` process on a real file."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

from clickthru.backend import Store, open_store
from clickthru.store.rows import NewSite
from tests.chromium import chromium
from tests.conftest import SHOP_ORIGIN, Collector, make_collector

PASSWORD = "correct horse battery"
EVIL_SITE = '<svg/onload=alert("site")>'
EVIL_ORIGIN = "http://evil-site.test"
PAYLOADS = {
    "placement": '"><img src=x onerror=alert("placement")>',
    "list_id": "<iframe src=javascript:alert('list')>",
    "item": "<script>alert('item')</script>",
    "page": f'{SHOP_ORIGIN}/"><img/src=x/onerror=alert("page")>',
    "dest": f"{SHOP_ORIGIN}/<script>alert('dest')</script>",
}
USER_AGENT = "<script>alert('ua')</script> Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
PAGES = ["", "placements", "items", "positions", "health"]


def site_named_before_names_were_checked(db: Path, store: Store) -> NewSite:
    """Site administration refuses such a name now; a store kept from before may hold one."""
    made = store.admin.add_site("evil", [EVIL_ORIGIN])
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("UPDATE sites SET name = ? WHERE name = 'evil'", (EVIL_SITE,))
        conn.execute("UPDATE site_keys SET site = ? WHERE site = 'evil'", (EVIL_SITE,))
    return NewSite(replace(made.site, name=EVIL_SITE), made.api_key)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    running = make_collector(tmp_path_factory.mktemp("xss"))
    store = open_store(str(running.db))
    running.sites[EVIL_SITE] = site_named_before_names_were_checked(running.db, store)
    store.access.add_user("ops", PASSWORD, operator=True, sites=[])
    store.access.add_user("shopkeeper", PASSWORD, operator=False, sites=["shop"])
    store.close()
    running.start()
    try:
        claims = {k: PAYLOADS[k] for k in ("placement", "list_id", "item")}
        urls = {k: PAYLOADS[k] for k in ("page", "dest")}
        ua = {"user-agent": USER_AGENT}
        for kind in ("view", "click"):
            shop = running.event(kind=kind, **claims, **urls)
            assert running.post(shop, headers=ua).json()["accepted"] == 1
            evil = running.event(EVIL_SITE, kind=kind, **claims, page=f"{EVIL_ORIGIN}/", dest=None)
            assert running.post(evil, origin=EVIL_ORIGIN, headers=ua).json()["accepted"] == 1
        # Refused input is kept too: an id that is a payload, an origin that is one.
        bad = running.event(id="<script>alert('id')</script>")
        assert running.post(bad).json()["rejected"][0]["reason"] == "invalid_event"
        foreign = running.post(running.event(), origin="http://x.test/<script>alert(1)</script>")
        assert foreign.json()["rejected"][0]["reason"] == "origin_not_allowed"
        yield running
    finally:
        running.stop()


def signed_in(collector: Collector, name: str) -> httpx.Client:
    client = httpx.Client(base_url=collector.url, timeout=10)
    form = client.get("/dashboard/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    answer = client.post(
        "/dashboard/sign-in", data={"name": name, "password": PASSWORD, "csrf": csrf[1]}
    )
    assert answer.status_code == 303
    return client


class Markup(HTMLParser):
    """Elements with attributes, and the text, as a browser would parse them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert_html(html: str, where: str) -> None:
    markup = Markup(html)
    for tag, attrs in markup.elements:
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, (where, tag, attrs)
        assert tag not in ("iframe", "img", "object", "embed"), (where, tag, attrs)
        if tag == "script":
            assert attrs.get("src") == "static/live.js", (where, attrs)  # the one script
        for name in ("href", "src", "action", "formaction"):
            assert not attrs.get(name, "").lower().startswith("javascript:"), (where, attrs)


def page_urls(site: str) -> list[str]:
    return [f"/dashboard/{page}?site={quote(site)}&since=1d" for page in PAGES]


def test_every_page_renders_the_payloads_as_text(collector: Collector) -> None:
    operator = signed_in(collector, "ops")
    shown = ""
    for site in ("shop", EVIL_SITE):
        for url in page_urls(site):
            answer = operator.get(url)
            assert answer.status_code == 200, (url, answer.text)
            assert_inert_html(answer.text, url)
            shown += " ".join(Markup(answer.text).text)
    for payload in (EVIL_SITE, PAYLOADS["placement"], PAYLOADS["item"], PAYLOADS["dest"]):
        assert payload in shown  # shown to the reader, as the text it is


def test_error_pages_echo_a_payload_as_text(collector: Collector) -> None:
    customer = signed_in(collector, "shopkeeper")
    for url in [*page_urls(EVIL_SITE), "/dashboard/" + quote("<script>alert(1)</script>")]:
        answer = customer.get(url)
        assert answer.status_code in (403, 404)
        assert_inert_html(answer.text, url)


def test_a_browser_runs_none_of_it(collector: Collector) -> None:
    problems: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        problems.append(f"dialog {dialog.message!r}")
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":  # CSP violations land here
            problems.append(f"console {message.text}")

    with chromium() as browser:
        page = signed_in_page(browser, collector)
        page.on("dialog", on_dialog)
        page.on("console", on_console)
        for site in ("shop", EVIL_SITE):
            for url in page_urls(site):
                page.goto(url)
                page.wait_for_load_state("load")
                assert page.locator("h1").count() == 1, url
                injected = 'img[src="x"], iframe, svg[onload], [onerror], [onload]'
                assert page.locator(injected).count() == 0, url
                assert page.locator('a[href^="javascript:"]').count() == 0, url
        assert page.locator("select[name=site]").inner_text().count(EVIL_SITE) == 1
    assert problems == []


def signed_in_page(browser: Browser, collector: Collector) -> Page:
    page = browser.new_context(base_url=collector.url).new_page()
    page.set_default_timeout(10_000)
    page.goto("/dashboard/sign-in")
    page.get_by_label("Name").fill("ops")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{collector.url}/dashboard/")
    return page
