"""Every way a collector can fail: navigation is never held back, the page never sees an
error, and every click made meanwhile is stored once a collector is back."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from playwright.sync_api import BrowserContext, Playwright

from tests.faults import Mode
from tests.snippet.conftest import CHROMIUM, CHROMIUM_ARGS, GONE_HOST, RESOLVE_NOTHING, World
from tests.snippet.site import Page
from tests.snippet.test_delivery import wait_for
from tests.snippet.visitor import KINDS, NEW_TAB, Kind, Visitor

STATES = ["up", "slow", "hang", "refuse", "unresolvable", "error", "drop"]
OUTAGES = ["hang", "refuse", "unresolvable", "error", "drop"]
CLICKS = 20


def endpoint(world: World, state: str) -> str:
    """The state in force on endpoint A; the URL a page names it by."""
    if state == "unresolvable":
        world.a.set_mode("up")  # reachable, were its name known
        return f"http://{GONE_HOST}:{world.a.port}"
    world.a.set_mode(cast(Mode, state))
    return world.a.url


def click_through(world: World, visitor: Visitor, page: Page, clicks: int) -> list[float]:
    """Clicks every way in turn; checks each lands where the visitor asked. Returns how long
    each navigation took to start after its click, in ms."""
    delays = []
    visitor.open(world.site.url(page))
    for number in range(clicks):
        kind: Kind = KINDS[number % len(KINDS)]
        position = number % page.links + 1
        visit = visitor.click(kind, position)
        expected = f"{world.site.destination}/landing/{page.list_id}-book-{position}"
        assert visit.destination.url == expected + ("-blank" if kind == "blank" else "")
        assert (visit.destination is visitor.page) == (kind not in NEW_TAB)
        delays.append(visit.navigation_start - visit.clicked_at)
        visitor.done_with(visit)
        if kind not in NEW_TAB:
            visitor.open(world.site.url(page))
    return delays


@pytest.mark.parametrize("state", STATES)
def test_navigation_is_never_held_back(world: World, context: BrowserContext, state: str) -> None:
    visitor = Visitor(context)
    world.watch(visitor.page)
    page = Page(endpoints=endpoint(world, state), list_id=f"navigate-{state}", links=5)
    delays = click_through(world, visitor, page, CLICKS)
    print(state, f"median {statistics.median(delays):.1f} ms, max {max(delays):.1f} ms")
    # A guard against a snippet that waits: it would wait out a slow (3 s) or hanging
    # collector. The milliseconds are bench/snippet_navigation.py's to measure.
    assert statistics.median(delays) < 1000


@pytest.mark.parametrize("outage", [o for o in OUTAGES if o != "unresolvable"])
def test_clicks_made_in_an_outage_arrive_once_it_is_over(
    world: World, context: BrowserContext, outage: str
) -> None:
    visitor = Visitor(context)
    world.watch(visitor.page)
    page = Page(endpoints=endpoint(world, outage), list_id=f"outage-{outage}", links=10)
    click_through(world, visitor, page, 10)
    assert world.stored(list_id=page.list_id) == []
    world.a.set_mode("up")
    visitor.open(world.site.url(Page(endpoints=world.a.url, list_id="another-page")))
    assert_each_click_stored_once(world, page)


def assert_each_click_stored_once(world: World, page: Page, timeout: float = 30) -> None:
    wanted = sorted(f"{page.list_id}-book-{n}" for n in range(1, page.links + 1))
    wait_for(lambda: len(world.stored(list_id=page.list_id)) >= len(wanted), timeout)
    assert sorted(item for _, item, *_ in world.stored(list_id=page.list_id)) == wanted


@pytest.fixture
def profile(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "profile"


def test_clicks_made_while_the_name_does_not_resolve_arrive_once_it_does(
    world: World, playwright: Playwright, profile: Path
) -> None:
    """The same visitor (one browser profile) before and after the name comes back."""
    world.a.set_mode("up")
    page = Page(endpoints=f"http://{GONE_HOST}:{world.a.port}", list_id="dns", links=10)
    resolves = f"--host-resolver-rules=MAP {GONE_HOST} 127.0.0.1"
    for rules in (RESOLVE_NOTHING, resolves):
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, rules]
        )
        visitor = Visitor(context)
        world.watch(visitor.page)
        if rules == RESOLVE_NOTHING:
            click_through(world, visitor, page, 10)
            assert world.stored(list_id=page.list_id) == []
        else:
            visitor.open(world.site.url(Page(endpoints=page.endpoints, list_id="next")))
            assert_each_click_stored_once(world, page)
        context.close()
    assert world.errors == []


@pytest.mark.parametrize("outage", ["refuse", "hang", "error", "drop", "unresolvable"])
def test_failover_to_the_second_endpoint(
    world: World, context: BrowserContext, outage: str
) -> None:
    first = endpoint(world, outage)
    world.b.set_mode("up")
    visitor = Visitor(context)
    world.watch(visitor.page)
    page = Page(endpoints=f"{first},{world.b.url}", list_id=f"failover-{outage}", links=10)
    click_through(world, visitor, page, 10)
    assert_each_click_stored_once(world, page)
