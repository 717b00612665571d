"""`clickthru demo` end to end: a real Chromium clicks recommendations in the demo shops,
and the clicks land in the SQLite store."""

from __future__ import annotations

import base64
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page

from clickthru.tokens import Claims
from tests.chromium import chromium
from tests.conftest import wait_until_answering

BOOK = "frankenstein"
CONSOLE_ERRORS: list[str] = []  # filled by every page, checked by the last test


@dataclass
class Demo:
    db: Path
    collector_port: int
    shop_port: int

    @property
    def ink(self) -> str:
        return f"http://127.0.0.1:{self.shop_port}"

    @property
    def second(self) -> str:
        return f"http://127.0.0.1:{self.shop_port + 1}"

    def clicks(self, placement: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return conn.execute(
                "SELECT site, list_id, item, position, placement, via, origin, page, dest"
                " FROM events WHERE kind = 'click' AND placement = ?",
                (placement,),
            ).fetchall()


def _port_pair() -> tuple[int, int]:
    """A free port whose successor is free too (the two shops)."""
    for _ in range(50):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port, port + 1
    raise RuntimeError("no two adjacent free ports")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    db = tmp_path_factory.mktemp("demo") / "clickthru.db"
    collector_port = _port_pair()[0]
    shop_port = _port_pair()[0]
    while collector_port in (shop_port, shop_port + 1):
        shop_port = _port_pair()[0]
    running = Demo(db, collector_port, shop_port)
    command = [sys.executable, "-m", "clickthru", "--store", str(db), "demo"]
    command += ["--port", str(collector_port), "--shop-port", str(shop_port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until_answering(
            process,
            f"http://127.0.0.1:{collector_port}/healthz",
            running.ink + "/",
            running.second + "/",
        )
        yield running
    finally:
        # Ctrl+C, as a user would stop it: every server should shut down cleanly.
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
    assert code == 0, f"the demo did not stop cleanly on SIGINT (exit {code})"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            CONSOLE_ERRORS.append(f"{opened.url}: {message.text}")

    def on_page_error(error: Error) -> None:
        CONSOLE_ERRORS.append(f"{opened.url}: uncaught {error}")

    opened.on("console", on_console)
    opened.on("pageerror", on_page_error)
    yield opened
    context.close()


def claims_of(token: str) -> Claims:
    """Read a token's claims without its secret (the test only compares them)."""
    payload = token.split(".")[1]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return msgspec.msgpack.decode(raw, type=Claims)


def wait_for_clicks(demo: Demo, placement: str, timeout: float = 10.0) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = demo.clicks(placement)
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def click_and_check(
    page: Page, demo: Demo, placement: str, position: int, destination: str
) -> None:
    page.goto(f"{demo.ink}/book/{BOOK}")  # waits for load, so the async ct.js has run
    link = page.locator(f'section[data-placement="{placement}"] a[data-ct]').nth(position - 1)
    href = link.get_attribute("href")
    token = link.get_attribute("data-ct")
    assert href and token
    item = href.rsplit("/", 1)[1]
    assert href == f"{destination}/book/{item}"
    claims = claims_of(token)
    assert (claims.item, claims.position, claims.placement) == (item, position, placement)

    link.click()
    page.wait_for_url(href, wait_until="load")

    rows = wait_for_clicks(demo, placement)
    assert len(rows) == 1, rows
    site, list_id, row_item, row_position, row_placement, via, origin, page_url, dest = rows[0]
    assert site == "ink-and-paper"
    assert list_id == claims.list_id
    assert (row_item, row_position, row_placement) == (item, position, placement)
    assert via == "fetch"  # a keepalive fetch, as Chromium says in Sec-Fetch-Mode
    assert origin == demo.ink
    assert page_url == f"{demo.ink}/book/{BOOK}"
    assert dest == href


def test_cross_origin_click_on_sister_shop_link_is_recorded(page: Page, demo: Demo) -> None:
    click_and_check(page, demo, "sister-shop", 1, demo.second)


def test_same_origin_click_on_readers_also_bought_is_recorded(page: Page, demo: Demo) -> None:
    click_and_check(page, demo, "product-page-bottom", 3, demo.ink)


def orders(demo: Demo) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{demo.db}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT site, item, variant, bought_clicked, reports, value, currency FROM orders"
        ).fetchall()


def test_a_book_bought_after_a_recommendation_is_a_conversion_of_its_variant(
    page: Page, demo: Demo
) -> None:
    page.goto(f"{demo.ink}/book/{BOOK}")
    link = page.locator('section[data-placement="product-page-bottom"] a[data-ct]').nth(0)
    claims = claims_of(link.get_attribute("data-ct") or "")
    assert claims.variant in ("A", "B")
    link.click()
    page.wait_for_url(f"{demo.ink}/book/{claims.item}", wait_until="load")
    page.get_by_role("link", name="Buy it").click()
    page.get_by_role("link", name="Place order").click()
    page.wait_for_url("**/order/**", wait_until="load")
    assert page.locator("script[data-ct-conversion]").count() == 1
    deadline = time.monotonic() + 15
    while not orders(demo) and time.monotonic() < deadline:
        time.sleep(0.05)
    [(site, item, variant, bought, reports, value, currency)] = orders(demo)
    assert (site, item, variant, bought, reports) == (
        "ink-and-paper",
        claims.item,
        claims.variant,
        1,
        1,
    )
    assert currency == "GBP" and value > 0
    page.reload(wait_until="load")  # counted once all the same
    deadline = time.monotonic() + 15
    while orders(demo)[0][4] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(orders(demo)) == 1 and orders(demo)[0][4] == 2


def test_unknown_book_is_a_404_page(demo: Demo) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{demo.second}/book/no-such-book", timeout=5)
    assert raised.value.code == 404
    assert b"could not find" in raised.value.read()


def test_no_console_errors(page: Page, demo: Demo) -> None:
    for url in (f"{demo.ink}/", f"{demo.second}/", f"{demo.second}/book/{BOOK}"):
        page.goto(url)
    assert CONSOLE_ERRORS == []
