"""Fixtures for the snippet in a real Chromium: a customer's site, a real collector behind
endpoints whose network can be made to fail, and the browser."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    sync_playwright,
)

from clickthru.backend import open_store
from tests.chromium import CHROMIUM
from tests.chromium import CHROMIUM_ARGS as BASE_ARGS
from tests.conftest import Collector
from tests.faults import FaultyEndpoint
from tests.snippet.site import Site, minter

GONE_HOST = "ct-gone.test"  # the browser cannot resolve this name
# Plain http://*.test origins: no HTTPS upgrade attempts in the way.
CHROMIUM_ARGS = [*BASE_ARGS, "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable"]
RESOLVE_NOTHING = f"--host-resolver-rules=MAP {GONE_HOST} ~NOTFOUND"
# What Chromium itself writes to the console when a request fails; not the page's doing.
NETWORK_NOISE = ("Failed to load resource", "net::ERR_")


@dataclass
class World:
    """The site, the collector and two endpoints in front of it, as one test sees them."""

    site: Site
    collector: Collector
    a: FaultyEndpoint
    b: FaultyEndpoint
    errors: list[str] = field(default_factory=list)

    def stored(self, kind: str = "click", list_id: str | None = None) -> list[tuple[Any, ...]]:
        sql = "SELECT id, item, position, via FROM events WHERE kind = ?"
        params: list[Any] = [kind]
        if list_id is not None:
            sql += " AND list_id = ?"
            params.append(list_id)
        with sqlite3.connect(f"file:{self.collector.db}?mode=ro", uri=True) as conn:
            return conn.execute(sql, params).fetchall()

    def watch(self, page: Page) -> Page:
        """Collect what the page throws or logs as an error, Chromium's network noise aside."""

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not any(n in message.text for n in NETWORK_NOISE):
                self.errors.append(f"console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        return page


@contextlib.contextmanager
def running_world(directory: Path, slow_seconds: float = 3.0) -> Iterator[World]:
    """The shop, a collector storing into `directory`, and two endpoints in front of it;
    stopped on the way out. The browser tests' world, and bench/snippet_navigation.py's."""
    with contextlib.ExitStack() as stack:
        site = Site(mint=lambda item, position: "")
        site.start()
        stack.callback(site.stop)
        store = open_store(str(directory / "clickthru.db"))
        collector = Collector(directory / "clickthru.db")
        collector.sites["shop"] = store.admin.add_site("shop", [site.origin])
        store.close()
        site.mint = minter(collector.sites["shop"])
        stack.callback(collector.stop)
        collector.start()
        a = FaultyEndpoint(collector.port, slow_seconds=slow_seconds)
        b = FaultyEndpoint(collector.port, slow_seconds=slow_seconds)
        for endpoint in (a, b):
            stack.callback(endpoint.stop)
            endpoint.start()
        yield World(site, collector, a, b)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("snippet")) as running:
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, RESOLVE_NOTHING],
        ignore_default_args=["--disable-back-forward-cache"],  # a real browser has one
    )
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, world: World) -> Iterator[BrowserContext]:
    """A fresh visitor (empty localStorage); endpoints up again and no errors at the end."""
    world.a.set_mode("up")
    world.b.set_mode("up")
    world.errors.clear()
    created = browser.new_context()
    yield created
    created.close()
    assert world.errors == []
