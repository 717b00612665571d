"""The snippet in Chromium, Firefox ESR and WebKitGTK alike: every click stored exactly once in
every state a collector can be in, each click sent from its own page, only what a living page
saw changing where the next one goes. The rest of tests/snippet runs in Chromium only."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from typing import cast
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browsers import ENGINES, NEW_TAB, Engine, Tab, launch
from tests.faults import FaultyEndpoint, Mode
from tests.snippet.conftest import World
from tests.snippet.site import Page
from tests.snippet.test_delivery import wait_for

STATES: list[Mode] = ["up", "slow", "hang", "refuse", "error", "drop"]
TIMEOUT = 5.0  # s a living page waits on a collector (snippet/src/transport.js)
OUTBOX = "JSON.parse(localStorage.getItem('clickthru') || '{\"q\":[],\"d\":{}}')"


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    with launch(request.param) as launched:
        yield launched


@pytest.fixture
def tab(engine: Engine, world: World) -> Iterator[Tab]:
    """A fresh visitor; both endpoints up."""
    world.a.set_mode("up")
    world.b.set_mode("up")
    visitor = engine.visitor()
    yield visitor
    visitor.close()


def click_ids(endpoint: FaultyEndpoint, list_id: str, since: int = 0) -> dict[str, float]:
    """Each click of list_id that reached the endpoint: when its first request arrived after
    the click, in s (the event's own time is the click's)."""
    first: dict[str, float] = {}
    for request in endpoint.requests[since:]:
        for event in json.loads(request.body or b"[]"):
            listed = parse_qs(urlsplit(event.get("page", "")).query).get("list_id")
            if event.get("kind") == "click" and listed == [list_id]:
                first.setdefault(event["id"], request.at - event["ts"] / 1000)
    return first


def assert_each_click_stored_once(world: World, page: Page, timeout: float = 30) -> None:
    wanted = sorted(f"{page.list_id}-book-{n}" for n in range(1, page.links + 1))
    wait_for(lambda: len(world.stored(list_id=page.list_id)) >= len(wanted), timeout)
    assert sorted(item for _, item, *_ in world.stored(list_id=page.list_id)) == wanted


@pytest.mark.parametrize("state", STATES)
def test_every_click_is_stored_once_whatever_the_collector_did(
    world: World, engine: Engine, tab: Tab, state: Mode
) -> None:
    kinds = engine.kinds * 2
    page = Page(endpoints=world.a.url, list_id=f"{engine.name}-{state}", links=len(kinds))
    tab.open(world.site.url(page))
    world.a.set_mode(state)
    for number, kind in enumerate(kinds):
        visit = tab.click(kind, number + 1)
        expected = f"{world.site.destination}/landing/{page.list_id}-book-{number + 1}"
        assert visit.url == expected + ("-blank" if kind == "blank" else "")
        if kind not in NEW_TAB:
            tab.open(world.site.url(page))
    delays = [visit.delay for visit in tab.visits if visit.clicked_at is not None]
    assert len(delays) == len(kinds)
    # Not held back: a snippet that waited for its request would wait out a slow (3 s) or
    # hanging collector. The milliseconds are bench/snippet_navigation.py's to measure.
    assert statistics.median(delays) < 1000

    world.a.set_mode("up")
    tab.open(world.site.url(Page(endpoints=world.a.url, list_id="back", links=1)))
    back = time.time()
    # Dropped SYNs: within one page view of 30 s.
    assert_each_click_stored_once(world, page, timeout=30)
    if state == "refuse":
        # A living page saw each refusal: the first page back sends everything at once.
        last = max(at for (at,) in world.collector.query(
            "SELECT received_at FROM events WHERE list_id = ?", page.list_id
        ))  # fmt: skip
        assert last / 1000 - back < 1.0


def test_a_click_leaves_from_its_own_page_while_a_slow_send_is_out(
    world: World, engine: Engine, tab: Tab
) -> None:
    world.a.set_mode("slow")  # answers in 3 s
    # Twenty links in view at once: a batch of views leaves a second after each load.
    tab.resize(800, 1000)
    page = Page(endpoints=world.a.url, list_id=f"{engine.name}-busy", links=20, blank=False)
    left: list[float] = []  # when each clicked page was left for the next
    for position in (1, 2, 3):
        since = len(world.a.requests)
        tab.open(world.site.url(page))
        views_out = wait_for(
            lambda since=since: any(b'"view"' in r.body for r in world.a.requests[since:])
        )
        assert views_out, "no batch of views left the page"
        tab.click("same", position)
        left.append(time.time())
    tab.open(world.site.url(page))
    first = click_ids(world.a, page.list_id)
    assert len(first) == 3
    for after, leave in zip(sorted(first.values()), left, strict=True):
        assert after < 1.0
        assert after < leave  # before the next page: the clicked page sent it
    marked = tab.evaluate(f"Object.values({OUTBOX}.d).filter((health) => health[0]).length")
    assert marked == 0, "a collector was marked down though every request was answered"
    world.a.set_mode("up")
    assert_each_click_stored_once(world, Page(list_id=page.list_id, links=3))


def test_collector_up_costs_at_most_1_2_requests_a_click(
    world: World, engine: Engine, tab: Tab
) -> None:
    page = Page(endpoints=world.a.url, list_id=f"{engine.name}-cost", links=5)
    since = len(world.a.requests)
    tab.open(world.site.url(page))
    clicks = 10
    for number in range(clicks):
        tab.click("same", number % page.links + 1)
        tab.open(world.site.url(page))
    wait_for(lambda: len(world.stored(list_id=page.list_id)) == clicks, timeout=30)
    assert len(world.stored(list_id=page.list_id)) == clicks
    requests = len(world.a.requests) - since
    assert requests <= 1.2 * clicks


def test_the_next_page_after_a_hanging_collector_goes_to_the_second(
    world: World, engine: Engine, tab: Tab
) -> None:
    world.a.set_mode("hang")
    page = Page(endpoints=f"{world.a.url},{world.b.url}", list_id=f"{engine.name}-hung", links=2)
    tab.open(world.site.url(page))
    tab.click("same", 1)  # its request hangs; the page is gone before anything is known
    tab.open(world.site.url(page))
    visit = tab.click("blank", 2)  # this page lives on
    item = f"{page.list_id}-book-2"
    assert wait_for(lambda: item in [row[1] for row in world.stored(list_id=page.list_id)], 10)
    (stored_at,) = world.collector.query("SELECT received_at FROM events WHERE item = ?", item)[0]
    assert visit.clicked_at is not None
    assert stored_at - visit.clicked_at < (TIMEOUT + 1.5) * 1000
    assert list(click_ids(world.b, page.list_id)) != []  # through the second
    world.a.set_mode(cast(Mode, "up"))
    assert_each_click_stored_once(world, page)
