"""The snippet under ad blockers, in real Chromium: each list runs as an MV3 extension of
declarativeNetRequest rules (``tests/blockers``), in a persistent context with the new
headless mode, as extensions need. For each list, a click on the shop's page is sent each
way the snippet can send it (keepalive fetch; sendBeacon where fetch is missing; the image
fallback where both are), and through ``<a ping>`` on a page without the snippet:

- first-party mode (the collector at ``/_ct/`` of the shop, through its nginx running
  ``deploy/nginx/clickthru-first-party.conf``): every way arrives, under every list;
- third-party mode (the collector on a host of its own): the fetch arrives, under every list.

Run with ``-s`` to see the table of what arrived (the README shows it)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from tests.blockers import CANARY_PATH, Blocklist, blocklists
from tests.chromium import CHROMIUM
from tests.deploy.conftest import until
from tests.shop_proxy import FirstPartyWorld, first_party_world
from tests.snippet.conftest import CHROMIUM_ARGS
from tests.snippet.site import Page

COLLECTOR_HOST = "ct-collector.test"  # the third party's own host name, resolved to 127.0.0.1
WAYS = {
    "fetch": "",
    "beacon": "window.fetch = undefined;",
    "image": "window.fetch = undefined; navigator.sendBeacon = () => false;",
    "ping": None,  # no snippet on the page: the browser's <a ping>
}
# How each arrives, as the collector records it. It tells a fetch from a beacon by the
# browser's Sec-Fetch-Mode, which is not sent to a host on plain http: then unknown (None).
VIA = {"fetch": "fetch", "beacon": "beacon", "image": "img", "ping": "ping"}
MODES = ("first-party", "third-party")
MUST_ARRIVE = {(mode, way) for mode in MODES for way in WAYS if mode == "first-party"} | {
    ("third-party", "fetch")
}
# What is not blocked arrives within a second; what is blocked never does.
ARRIVAL_WINDOW = 4.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstPartyWorld]:
    with first_party_world(tmp_path_factory.mktemp("blockers"), ("nginx",)) as running:
        yield running


@pytest.fixture(scope="module")
def table() -> Iterator[dict[str, dict[tuple[str, str], bool]]]:
    rows: dict[str, dict[tuple[str, str], bool]] = {}
    yield rows
    columns = [(mode, way) for mode in MODES for way in WAYS]
    print("\n| list | " + " | ".join(f"{mode}: {way}" for mode, way in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, arrived in rows.items():
        cells = ("arrives" if arrived[column] else "**blocked**" for column in columns)
        print(f"| {name} | " + " | ".join(cells) + " |")


@contextlib.contextmanager
def with_blocker(blocklist: Blocklist, directory: Path) -> Iterator[BrowserContext]:
    extension = blocklist.extension(directory / "extension")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(directory / "profile"),
            executable_path=CHROMIUM,
            headless=False,  # --headless=new below: the old headless mode runs no extensions
            args=[
                *CHROMIUM_ARGS,
                "--headless=new",
                f"--host-resolver-rules=MAP {COLLECTOR_HOST} 127.0.0.1",
                f"--disable-extensions-except={extension}",
                f"--load-extension={extension}",
            ],
        )
        try:
            yield context
        finally:
            context.close()


def page_for(world: FirstPartyWorld, mode: str, way: str, list_id: str) -> str:
    collector = "/_ct" if mode == "first-party" else f"http://{COLLECTOR_HOST}:{world.direct.port}"
    page = Page(list_id=list_id, links=1, forget=True)
    if way == "ping":
        page.ping = f"{collector}/ping"
    else:
        page.endpoints = f"{collector}/"
    return world.url("nginx", page)


def sends(
    world: FirstPartyWorld, context: BrowserContext, mode: str, way: str, list_id: str
) -> bool:
    """Whether a click on the shop's page, sent this way, arrives. The page stays until its
    click is stored or the window has passed, and is closed before the next: another page of
    the shop would otherwise take what its outbox holds along with its own click."""
    page = context.new_page()
    script = WAYS[way]
    if script:
        page.add_init_script(script)
    page.goto(page_for(world, mode, way, list_id), wait_until="load")
    with context.expect_page() as opened:
        page.click("#blank-1")  # the shop's page stays: the image can load
    opened.value.close()
    deadline = time.monotonic() + ARRIVAL_WINDOW
    while not (rows := world.stored(list_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    page.close()
    vias = [via for _, via in rows]
    assert vias in ([], [VIA[way]], [None]), (mode, way, rows)
    return bool(rows)


@pytest.mark.parametrize("blocklist", blocklists(), ids=lambda blocklist: blocklist.slug)
def test_first_party_clicks_arrive_under_every_list(
    world: FirstPartyWorld,
    blocklist: Blocklist,
    tmp_path: Path,
    table: dict[str, dict[tuple[str, str], bool]],
) -> None:
    with with_blocker(blocklist, tmp_path) as context:
        rules_in_force = context.new_page()
        rules_in_force.goto(world.url("nginx", Page(links=1)))
        until(
            lambda: rules_in_force.evaluate(
                f"fetch('{CANARY_PATH}').then(() => false, () => true)"
            ),
            30,
            "the blocker's rules in force",
        )
        rules_in_force.close()
        arrived = {
            (mode, way): sends(world, context, mode, way, f"{blocklist.slug}-{mode}-{way}")
            for mode in MODES
            for way in WAYS
        }
    table[blocklist.name] = arrived
    missing = [column for column in MUST_ARRIVE if not arrived[column]]
    assert not missing, f"{blocklist.name} blocked {missing}"
