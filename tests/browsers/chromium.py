"""Chromium through Playwright, as tests/chromium.py launches it (Debian's, headless)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import BrowserContext, Playwright, sync_playwright

from tests.browsers import LOADED, NAVIGATION_TIMING, NEW_TAB, Engine, Kind, Tab
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

# Plain http origins; a name that never resolves (the "unresolvable" state).
ARGS = [
    *CHROMIUM_ARGS,
    "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
    "--host-resolver-rules=MAP ct-gone.test ~NOTFOUND",
]


class ChromiumTab(Tab):
    def __init__(self, context: BrowserContext) -> None:
        super().__init__()
        self.context = context
        self.page = context.new_page()

    def evaluate(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def resize(self, width: int, height: int) -> None:
        self.page.set_viewport_size({"width": width, "height": height})

    def close(self) -> None:
        self.context.close()

    def _goto(self, url: str) -> None:
        self.page.goto(url, wait_until="load")

    def _click(self, kind: Kind, position: int) -> list[Any]:
        page = self.page
        same, blank = f"#same-{position}", f"#blank-{position}"
        if kind in NEW_TAB:
            with self.context.expect_page(timeout=10_000) as opened:
                if kind == "blank":
                    page.click(blank)
                elif kind == "middle":
                    page.click(same, button="middle")
                else:
                    page.click(same, modifiers=["ControlOrMeta"])
            destination = opened.value
            destination.wait_for_function(LOADED, timeout=10_000)
            timing: list[Any] = destination.evaluate(NAVIGATION_TIMING)
            destination.close()
            return timing
        with page.expect_navigation(url="**/landing/**", timeout=10_000, wait_until="load"):
            if kind == "same":
                page.click(same)
            else:
                page.focus(same)
                page.keyboard.press("Enter")
        timing = page.evaluate(NAVIGATION_TIMING)
        return timing


class Chromium(Engine):
    name = "chromium"
    kinds = ("same", "blank", "middle", "ctrl", "enter")

    def __init__(self, headless: bool = True) -> None:
        self.playwright: Playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=ARGS,
            ignore_default_args=["--disable-back-forward-cache"],  # a real browser has one
            headless=headless,
        )
        self.version = self.browser.version

    def visitor(self) -> Tab:
        return ChromiumTab(self.browser.new_context())

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self.playwright.stop()


def launch(headless: bool = True) -> Engine:
    return Chromium(headless)
