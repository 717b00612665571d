"""The one Chromium every browser test and benchmark launches: Debian's, headless."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Quiet and alike on every machine: no sandbox (CI runs as root), no GPU, no QUIC, nothing
# in the background that would add requests of its own. Tabs opened in the background keep
# their priority: Chromium would lower their renderer's, and on a busy machine a new tab's
# page then waits for the CPU for tens of seconds before it loads.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """A launched Chromium, closed on the way out."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
