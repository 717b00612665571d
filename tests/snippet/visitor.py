"""A visitor clicking recommended links in every way a person can, and what it measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from playwright.sync_api import BrowserContext, Page

Kind = Literal["same", "blank", "middle", "ctrl", "enter"]
KINDS: tuple[Kind, ...] = ("same", "blank", "middle", "ctrl", "enter")
NEW_TAB: frozenset[Kind] = frozenset({"blank", "middle", "ctrl"})

LOADED = """() => location.pathname.startsWith('/landing/') && document.readyState === 'complete'
  && performance.getEntriesByType('navigation')[0].loadEventEnd > 0"""
NAVIGATION_TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return [performance.timeOrigin, n.requestStart, n.loadEventStart];
}"""


@dataclass
class Visit:
    """One click and where it led; times in ms on the browser's clock."""

    kind: Kind
    destination: Page  # the shop's tab for same-tab clicks, else the new tab
    clicked_at: float
    navigation_start: float
    request_start: float
    loaded: float

    @property
    def delay(self) -> float:
        """From the click to the destination's request leaving the browser."""
        return self.request_start - self.clicked_at


class Visitor:
    """Clicks on one tab of the shop; the test's click clock is read through a binding."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.page = context.new_page()
        self.clicks: list[float] = []
        self.page.expose_function("clickedAt", lambda at: self.clicks.append(at))

    def open(self, url: str) -> Page:
        self.page.goto(url, wait_until="load")
        return self.page

    def click(self, kind: Kind, position: int) -> Visit:
        page = self.page
        same, blank = f"#same-{position}", f"#blank-{position}"
        self.clicks.clear()
        if kind in NEW_TAB:
            with self.context.expect_page(timeout=10_000) as opened:
                if kind == "blank":
                    page.click(blank)
                elif kind == "middle":
                    page.click(same, button="middle")
                else:
                    page.click(same, modifiers=["ControlOrMeta"])
            destination = opened.value
        else:
            with page.expect_navigation(url="**/landing/**", timeout=10_000):
                if kind == "same":
                    page.click(same)
                else:
                    page.focus(same)
                    page.keyboard.press("Enter")
            destination = page
        # Asked of the page itself: Playwright's own "load" event for a tab opened in the
        # background was seen to go missing on a busy machine, though the page had loaded.
        destination.wait_for_function(LOADED, polling=50, timeout=30_000)
        origin, request, loaded = destination.evaluate(NAVIGATION_TIMING)
        return Visit(kind, destination, min(self.clicks), origin, origin + request, origin + loaded)

    def done_with(self, visit: Visit) -> None:
        if visit.destination is not self.page:
            visit.destination.close()
