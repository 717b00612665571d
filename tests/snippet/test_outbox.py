"""The outbox: caps that drop the oldest first, replay in bounded batches, tabs that share it."""

from __future__ import annotations

import json
import time

from playwright.sync_api import BrowserContext

from tests.snippet.conftest import World
from tests.snippet.site import Page
from tests.snippet.test_delivery import wait_for
from tests.snippet.visitor import Visitor

DAY_MS = 86_400_000


def waiting_events(
    world: World, list_id: str, count: int, age_ms: int = 0
) -> list[dict[str, object]]:
    now = int(time.time() * 1000) - age_ms
    return [
        {
            "id": f"{list_id}-{n:04d}",
            "kind": "click",
            "token": world.site.mint(f"{list_id}-book-{n}", n),
            "ts": now - count + n,  # oldest first, as the snippet appends them
            "page": f"{world.site.origin}/shop",
            "dest": f"{world.site.destination}/landing/{list_id}-book-{n}",
        }
        for n in range(1, count + 1)
    ]


def test_a_full_outbox_drops_the_oldest_and_the_too_old_and_replays_the_rest(
    world: World, context: BrowserContext
) -> None:
    too_old = waiting_events(world, "aged", 5, age_ms=6 * DAY_MS)  # past the 5-day cap
    waiting = waiting_events(world, "capped", 260)
    outbox = json.dumps({"q": too_old + waiting, "d": {}})
    context.add_init_script(
        f"if (!sessionStorage.seeded) {{ localStorage.setItem('clickthru', {json.dumps(outbox)});"
        " sessionStorage.seeded = 1 }"
    )
    visitor = Visitor(context)
    world.watch(visitor.page)
    visitor.open(world.site.url(Page(endpoints=world.a.url, list_id="unrelated", links=1)))

    wait_for(lambda: visitor.page.evaluate("JSON.parse(localStorage.clickthru).q.length") == 0)
    stored = sorted(event_id for event_id, *_ in world.stored(list_id="capped"))
    kept = [str(event["id"]) for event in waiting][-len(stored) :]
    assert 150 <= len(stored) <= 200  # the count cap, or the size cap first
    assert stored == kept  # the newest, none skipped: every batch of the replay arrived
    assert world.stored(list_id="aged") == []


def test_tabs_share_one_outbox_and_do_not_send_the_same_event_together(
    world: World, context: BrowserContext
) -> None:
    world.a.set_mode("refuse")
    page = Page(endpoints=world.a.url, list_id="tabs", links=6, blank=False)
    first = Visitor(context)
    world.watch(first.page)
    first.open(world.site.url(page))
    first.page.evaluate("document.querySelectorAll('a').forEach((a) => (a.target = '_self'))")
    for position in (1, 2, 3):
        first.click("same", position)
        first.open(world.site.url(page))
    # Clicks only: under load a page may live the second it takes to record views too.
    waiting = first.page.evaluate(
        "JSON.parse(localStorage.clickthru).q.filter((e) => e.kind == 'click').length"
    )
    assert waiting == 3

    world.a.set_mode("up")
    others = [Visitor(context) for _ in range(3)]
    for tab in others:
        world.watch(tab.page)
        tab.open(world.site.url(page))
    assert wait_for(lambda: len(world.stored(list_id="tabs")) == 3)
    assert wait_for(lambda: first.page.evaluate("JSON.parse(localStorage.clickthru).q.length") == 0)
