"""Views: a recommended link half visible for a second is one view, once per page view."""

from __future__ import annotations

from playwright.sync_api import BrowserContext

from tests.snippet.conftest import World
from tests.snippet.site import Page
from tests.snippet.test_delivery import wait_for
from tests.snippet.visitor import Visitor


def test_a_second_in_view_is_one_view_and_half_a_second_is_none(
    world: World, context: BrowserContext
) -> None:
    visitor = Visitor(context)
    world.watch(visitor.page)
    tab = visitor.page
    # Each link a screen and more below the last: only one is ever in view.
    page = Page(endpoints=world.a.url, list_id="views", links=3, gap=2000, blank=False)
    visitor.open(world.site.url(page))
    for position, seconds in ((1, 1.2), (2, 0.5), (1, 1.2), (3, 0)):
        tab.locator(f"#same-{position}").scroll_into_view_if_needed()
        tab.wait_for_timeout(seconds * 1000)
    tab.evaluate("window.scrollTo(0, 0)")
    tab.wait_for_timeout(1200)  # link 3 left too soon; its timer must not fire meanwhile
    visitor.open(world.site.url(Page(list_id="elsewhere")))  # hidden: the views leave

    assert wait_for(lambda: len(world.stored("view", list_id="views")) >= 1)
    tab.wait_for_timeout(500)
    assert [item for _, item, *_ in world.stored("view", list_id="views")] == ["views-book-1"]


def test_views_leave_in_batches_while_the_page_stays(world: World, context: BrowserContext) -> None:
    visitor = Visitor(context)
    world.watch(visitor.page)
    visitor.page.set_viewport_size({"width": 800, "height": 1600})
    page = Page(endpoints=world.a.url, list_id="many-views", links=20, blank=False)
    visitor.open(world.site.url(page))  # twenty links in view at once: a full batch
    assert wait_for(lambda: len(world.stored("view", list_id="many-views")) == 20)
