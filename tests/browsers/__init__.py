"""The three engines the snippet is tested and benchmarked in, behind one small interface:
Chromium (Playwright), Firefox ESR (puppeteer-core over WebDriver BiDi) and WebKitGTK
(WebKitWebDriver driving MiniBrowser under Xvfb). Debian's builds only; nothing is downloaded.

    with launch("firefox") as engine:
        tab = engine.visitor()          # a fresh visitor: empty storage, cold connections
        tab.open(shop_url)
        visit = tab.click("same", 1)    # returns once the destination has loaded
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["same", "blank", "middle", "ctrl", "enter"]
NEW_TAB: frozenset[Kind] = frozenset({"blank", "middle", "ctrl"})
ENGINES = ("chromium", "firefox", "webkit")

# Read in the destination: its navigation's times on the browser's clock (epoch ms).
NAVIGATION_TIMING = """(() => {
  const n = performance.getEntriesByType('navigation')[0];
  return [location.href, performance.timeOrigin, n.requestStart, n.loadEventStart];
})()"""
# Read in the shop page: the moment of the last click, which the page's own hook kept
# (tests/snippet/site.py), forgotten once read.
DRAIN_CLICK_CLOCK = """(() => {
  const at = localStorage.getItem('ct-test-clicked');
  localStorage.removeItem('ct-test-clicked');
  return at ? +at : null;
})()"""
LOADED = "document.readyState == 'complete'"


@dataclass
class Visit:
    """One click and where it led; times in ms on the browser's clock."""

    kind: Kind
    url: str  # where the click led
    navigation_start: float
    request_start: float
    loaded: float
    clicked_at: float | None = None  # known once the shop page is read again

    @property
    def delay(self) -> float:
        """From the click to the destination's navigation start."""
        assert self.clicked_at is not None
        return self.navigation_start - self.clicked_at


class Tab:
    """One visitor's tab on the shop. Engines implement _goto, _click and evaluate."""

    def __init__(self) -> None:
        self.visits: list[Visit] = []

    def open(self, url: str) -> None:
        """Loads url in this tab; returns once it has loaded."""
        self._goto(url)
        self._read_click_clock()

    def click(self, kind: Kind, position: int) -> Visit:
        """Clicks link `position` as `kind` says; returns once the destination has loaded. A
        new tab is closed again; a same-tab click leaves this tab on the destination."""
        url, origin, request, loaded = self._click(kind, position)
        visit = Visit(kind, url, origin, origin + request, origin + loaded)
        self.visits.append(visit)
        if kind in NEW_TAB:
            self._read_click_clock()
        return visit

    def evaluate(self, expression: str) -> Any:
        raise NotImplementedError

    def resize(self, width: int, height: int) -> None:
        """The size of the page's viewport (roughly, where only the window's can be set)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _goto(self, url: str) -> None:
        raise NotImplementedError

    def _click(self, kind: Kind, position: int) -> list[Any]:
        """Returns NAVIGATION_TIMING as read in the destination."""
        raise NotImplementedError

    def _read_click_clock(self) -> None:
        if not self.evaluate("location.pathname == '/shop'"):
            return
        at = self.evaluate(DRAIN_CLICK_CLOCK)
        unclocked = [visit for visit in self.visits if visit.clicked_at is None]
        if at is not None and unclocked:
            unclocked[-1].clicked_at = float(at)


class Engine:
    """A launched browser. Engines implement visitor() and close()."""

    name: str
    version: str
    kinds: tuple[Kind, ...]  # the clicks it can perform

    def visitor(self) -> Tab:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


@contextlib.contextmanager
def launch(name: str, **options: Any) -> Iterator[Engine]:
    """The engine `name` (one of ENGINES), launched; closed on the way out."""
    module = importlib.import_module(f"tests.browsers.{name}")
    engine: Engine = module.launch(**options)
    try:
        yield engine
    finally:
        engine.close()
