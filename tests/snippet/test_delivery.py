"""Collector up: clicks arrive with their own request, whichever way the visitor clicks;
pings never count a click twice; the snippet keeps its manners."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import BrowserContext

from tests.snippet.conftest import World
from tests.snippet.site import Page
from tests.snippet.visitor import NEW_TAB, Kind, Visitor

SAME_TAB_CLICKS = 100


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def click_without_replay(world: World, context: BrowserContext, kind: Kind, clicks: int) -> int:
    """Clicks, each from a page whose outbox starts empty: only the click's own request
    can bring it home. Returns how many of the clicks were stored."""
    visitor = Visitor(context)
    world.watch(visitor.page)
    page = Page(endpoints=world.a.url, list_id=f"first-{kind}", links=1, forget=True)
    for _ in range(clicks):
        visitor.open(world.site.url(page))
        visit = visitor.click(kind, 1)
        assert visit.destination.url.startswith(world.site.destination)
        visitor.done_with(visit)
    visitor.open(world.site.url(page))  # forgets the outbox once more
    # Generous: a busy machine may take seconds to store; the wait ends as soon as all are in.
    wait_for(lambda: len(world.stored(list_id=page.list_id)) >= clicks, timeout=30)
    return len(world.stored(list_id=page.list_id))


def test_same_tab_clicks_to_another_origin_arrive_without_replay(
    world: World, context: BrowserContext
) -> None:
    stored = click_without_replay(world, context, "same", SAME_TAB_CLICKS)
    assert stored >= 0.99 * SAME_TAB_CLICKS


def test_new_tab_middle_ctrl_and_enter_clicks_all_arrive(
    world: World, context: BrowserContext
) -> None:
    for kind in (*sorted(NEW_TAB), "enter"):
        assert click_without_replay(world, context, kind, 20) == 20, kind


def test_a_ping_never_counts_a_click_the_snippet_reports(
    world: World, context: BrowserContext
) -> None:
    since = len(world.a.requests)
    visitor = Visitor(context)
    world.watch(visitor.page)
    with_snippet = Page(endpoints=world.a.url, list_id="ping-snippet", ping=f"{world.a.url}/ping")
    visitor.open(world.site.url(with_snippet))
    for position in (1, 2):
        visitor.done_with(visitor.click("blank", position))
    without = Page(list_id="ping-only", ping=f"{world.a.url}/ping")  # no JavaScript of ours
    visitor.open(world.site.url(without))
    visitor.done_with(visitor.click("blank", 1))

    assert wait_for(lambda: len(world.stored(list_id="ping-only")) == 1)
    assert [via for *_, via in world.stored(list_id="ping-only")] == ["ping"]
    assert wait_for(lambda: len(world.stored(list_id="ping-snippet")) == 2)
    # The browser sends pings in click order: any from the first two came before this one.
    assert len([r for r in world.a.requests[since:] if r.path.startswith("/ping")]) == 1
    stored = world.stored(list_id="ping-snippet")
    assert "ping" not in [via for *_, via in stored]


def test_global_privacy_control_is_honoured_where_the_site_asks(
    world: World, context: BrowserContext
) -> None:
    context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
    )
    visitor = Visitor(context)
    world.watch(visitor.page)
    asks = Page(endpoints=world.a.url, list_id="gpc-asks", gpc=True, ping=f"{world.a.url}/ping")
    visitor.open(world.site.url(asks))
    visitor.done_with(visitor.click("blank", 1))
    visitor.page.wait_for_timeout(1500)  # long enough for a view, too
    visitor.open(world.site.url(Page(endpoints=world.a.url, list_id="gpc-ignored")))
    visitor.done_with(visitor.click("blank", 1))

    assert wait_for(lambda: len(world.stored(list_id="gpc-ignored")) == 1)
    assert world.stored(list_id="gpc-asks") == []
    assert world.stored("view", list_id="gpc-asks") == []


def test_it_is_silent_leaves_no_global_and_keeps_the_back_forward_cache(
    world: World, context: BrowserContext
) -> None:
    context.add_init_script(
        """
        window.listened = [];
        const add = EventTarget.prototype.addEventListener;
        EventTarget.prototype.addEventListener = function (type, ...rest) {
          listened.push(type);
          return add.call(this, type, ...rest);
        };
        addEventListener('DOMContentLoaded', () => { window.before = Object.keys(window); });
        """
    )
    visitor = Visitor(context)
    world.watch(visitor.page)
    console: list[str] = []
    visitor.page.on("console", lambda message: console.append(message.text))
    page = Page(endpoints=world.a.url, list_id="manners")
    visitor.open(world.site.url(page))
    visitor.page.wait_for_function("listened.includes('visibilitychange')")  # it has run
    added = visitor.page.evaluate(
        "Object.keys(window).filter((k) => !before.includes(k) && k !== 'before')"
    )
    listened = visitor.page.evaluate("listened")
    visitor.page.evaluate("window.marker = 1")
    visit = visitor.click("same", 1)
    visit.destination.go_back(wait_until="commit")  # a page restored fires no load
    restored = visitor.page.wait_for_function("window.marker === 1", timeout=5000)

    assert added == []
    assert "unload" not in listened and "beforeunload" not in listened
    assert {"click", "auxclick", "visibilitychange"} <= set(listened)
    assert restored, "the page did not come back from the back-forward cache"
    assert [text for text in console if "clickthru" in text] == []


def test_links_added_after_load_are_reported(world: World, context: BrowserContext) -> None:
    visitor = Visitor(context)
    world.watch(visitor.page)
    visitor.open(world.site.url(Page(endpoints=world.a.url, list_id="late", links=1)))
    token = world.site.mint("late-book-9", 9)
    visitor.page.evaluate(
        """([token, href]) => {
          const link = Object.assign(document.createElement('a'), {id: 'blank-9', href});
          link.dataset.ct = token;
          link.target = '_blank';
          link.textContent = 'a late recommendation';
          document.body.append(link);
        }""",
        [token, f"{world.site.destination}/landing/late-book-9"],
    )
    visitor.done_with(visitor.click("blank", 9))
    visitor.page.wait_for_function(  # in view long enough: its view waits in the outbox
        "JSON.parse(localStorage.clickthru).q.some((e) => e.kind == 'view' && e.dest.includes("
        "'late-book-9'))"
    )
    visitor.open(world.site.url(Page(list_id="elsewhere")))  # hidden: the views leave
    assert wait_for(lambda: len(world.stored(list_id="late")) == 1)
    assert wait_for(lambda: ("late-book-9",) in {row[1:2] for row in world.stored("view")})


def test_a_broken_local_storage_costs_no_click(world: World, context: BrowserContext) -> None:
    context.add_init_script(
        "Storage.prototype.setItem = () => { throw new DOMException('full', 'QuotaExceededError') }"
    )
    visitor = Visitor(context)
    world.watch(visitor.page)
    visitor.open(world.site.url(Page(endpoints=world.a.url, list_id="no-storage")))
    for position in (1, 2, 3):
        visitor.done_with(visitor.click("blank", position))
    assert wait_for(lambda: len(world.stored(list_id="no-storage")) == 3)
