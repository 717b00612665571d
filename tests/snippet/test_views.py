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
    # How long a link stays in view is timed by the page's own clock, the one the snippet's
    # timers run on, so a busy machine cannot stretch half a second into a whole one.
    show = """([position, ms]) => new Promise((done) => {
      const link = document.querySelector('#same-' + position);
      link ? link.scrollIntoView() : window.scrollTo(0, 0);
      setTimeout(() => { window.scrollTo(0, 0); done(); }, ms);
    })"""
    tab.locator("#same-1").scroll_into_view_if_needed()
    tab.wait_for_function(  # a second in view: its view waits in the outbox
        "JSON.parse(localStorage.clickthru || '{\"q\":[]}').q.some((e) => e.kind == 'view')"
    )
    tab.evaluate(show, [2, 500])
    tab.evaluate(show, [1, 1200])  # seen already: once per page view
    tab.evaluate(show, [3, 0])
    tab.evaluate(show, [0, 1200])  # link 3 left too soon; its timer must not fire meanwhile
    visitor.open(world.site.url(Page(list_id="elsewhere")))  # hidden: the views leave

    # They leave together, in the one batch the hidden page sends.
    assert wait_for(lambda: len(world.stored("view", list_id="views")) >= 1)
    assert [item for _, item, *_ in world.stored("view", list_id="views")] == ["views-book-1"]


def test_views_leave_in_batches_while_the_page_stays(world: World, context: BrowserContext) -> None:
    visitor = Visitor(context)
    world.watch(visitor.page)
    visitor.page.set_viewport_size({"width": 800, "height": 1600})
    page = Page(endpoints=world.a.url, list_id="many-views", links=20, blank=False)
    visitor.open(world.site.url(page))  # twenty links in view at once: a full batch
    assert wait_for(lambda: len(world.stored("view", list_id="many-views")) == 20)
