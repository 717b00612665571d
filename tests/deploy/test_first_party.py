"""First-party mode through the shop's own real nginx (HTTP/1.1, and HTTP/2 over TLS) and
Caddy, each running the configuration shipped in ``deploy/``: only the collector's public
paths are forwarded, a hanging collector is given up within the configured seconds and never
holds the shop's own navigations, and every click arrives once it is back."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from tests.chromium import CHROMIUM
from tests.deploy.conftest import until
from tests.shop_proxy import (
    CADDY_CONF,
    GIVES_UP_WITHIN,
    KINDS,
    NGINX_CONF,
    FirstPartyWorld,
    Kind,
    first_party_world,
)
from tests.snippet.conftest import CHROMIUM_ARGS
from tests.snippet.site import Page
from tests.snippet.visitor import Visitor

PAGES = 10
# A navigation that waited for one of the browser's connections to the shop would wait for
# the proxy to give up on the collector: seconds. Bounds far below that, and far above what a
# busy machine adds to a navigation, tell the two apart without flaking.
MEDIAN_ADDED_MS = 150.0
MOST_MS = 1000.0
PRIVATE = ("/healthz", "/metrics", "/dashboard/", "/dashboard/sign-in", "/api/v1/sites",
           "/api/v1/openapi.json", "/", "/e/", "/ct.js/x")  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstPartyWorld]:
    with first_party_world(tmp_path_factory.mktemp("first-party")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        yield launch(playwright)


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-back-forward-cache"],
    )


@pytest.fixture
def context(browser: Browser, world: FirstPartyWorld) -> Iterator[BrowserContext]:
    world.endpoint.set_mode("up")
    world.direct.set_mode("up")
    created = browser.new_context(ignore_https_errors=True)  # the test's own certificate
    yield created
    created.close()


def shop_page(world: FirstPartyWorld, kind: Kind, list_id: str, **options: object) -> str:
    page = Page(endpoints="/_ct/", list_id=list_id, links=1, landing=world.proxies[kind].origin)
    page.blank = False
    for name, value in options.items():
        setattr(page, name, value)
    return world.url(kind, page)


@pytest.mark.parametrize("kind", KINDS)
def test_only_the_collectors_public_paths_are_forwarded(world: FirstPartyWorld, kind: Kind) -> None:
    origin = world.proxies[kind].origin
    event = {"id": f"fp-{kind}-0001", "kind": "click", "token": world.site.mint("fp-book-1", 1)}
    with httpx.Client(base_url=origin, verify=False, timeout=10) as shop:
        snippet = shop.get("/_ct/ct.js")
        assert snippet.status_code == 200 and "javascript" in snippet.headers["content-type"]
        stored = shop.post("/_ct/e", json=event, headers={"origin": origin})
        assert stored.json()["accepted"] == 1
        image = shop.get(f"/_ct/e?{urlencode({**event, 'id': f'fp-{kind}-0002'})}",
                         headers={"referer": f"{origin}/book"})  # fmt: skip
        assert image.headers["content-type"] == "image/gif"
        old_image = shop.get(f"/_ct/p.gif?{urlencode({**event, 'id': f'fp-{kind}-0003'})}",
                             headers={"referer": f"{origin}/book"})  # fmt: skip
        assert old_image.headers["content-type"] == "image/gif"
        for private in PRIVATE:
            assert shop.get(f"/_ct{private}").status_code == 404, private
    assert world.collector.query("SELECT count(*) FROM events WHERE id LIKE ?", f"fp-{kind}-%") == [
        (3,)
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_a_hanging_collector_is_given_up_within_seconds(world: FirstPartyWorld, kind: Kind) -> None:
    world.endpoint.set_mode("hang")
    try:
        with httpx.Client(verify=False, timeout=30) as shop:
            started = time.monotonic()
            answer = shop.post(f"{world.proxies[kind].origin}/_ct/e", content=b"[]")
            waited = time.monotonic() - started
    finally:
        world.endpoint.set_mode("up")
    assert answer.status_code in (502, 504)
    assert waited < GIVES_UP_WITHIN + 1.0


# The shop's own request from its page (an API call, an image): ms until it is answered.
OWN_REQUEST = """async () => {
  const started = performance.now();
  await fetch('/landing/own-request', {cache: 'no-store'});
  return performance.now() - started;
}"""


def clicks_through(
    world: FirstPartyWorld, visitor: Visitor, kind: Kind, list_id: str
) -> list[float]:
    """Ten shop pages. On each, a click opens another of the shop's pages in a new tab, the
    page makes a request of the shop's own, and a click leaves it for the shop's host. The ms
    from each click to its destination's request leaving the browser, and of each request."""
    times = []
    for _ in range(PAGES):
        visitor.open(shop_page(world, kind, list_id, blank=True))
        blank = visitor.click("blank", 1)
        visitor.done_with(blank)
        times += [blank.delay, visitor.page.evaluate(OWN_REQUEST), visitor.click("same", 1).delay]
    return times


@pytest.mark.parametrize("kind", KINDS)
def test_a_hanging_collector_never_holds_the_shops_navigations(
    browser: Browser, world: FirstPartyWorld, kind: Kind
) -> None:
    runs = {}
    visitors = {}
    for state in ("up", "hang"):
        world.endpoint.set_mode(state)
        context = browser.new_context(ignore_https_errors=True)
        visitors[state] = Visitor(context)
        runs[state] = clicks_through(world, visitors[state], kind, f"{kind}-{state}")
    world.endpoint.set_mode("up")
    try:
        added = statistics.median(runs["hang"]) - statistics.median(runs["up"])
        assert added < MEDIAN_ADDED_MS, runs
        assert max(runs["hang"]) < MOST_MS, runs
        # The collector is back: the next page sends what waits, and every click is stored once.
        visitors["hang"].open(shop_page(world, kind, f"{kind}-after"))
        clicks = 2 * PAGES
        until(lambda: len(world.stored(f"{kind}-hang")) == clicks, 30, "every click stored")
        assert len(world.stored(f"{kind}-up")) == clicks
    finally:
        for visitor in visitors.values():
            visitor.context.close()
    medians = {state: round(statistics.median(times)) for state, times in runs.items()}
    print(f"\n{kind}: median ms, click to request / own request: {medians}")


@pytest.mark.parametrize("state", ["refuse", "hang"])
def test_the_shops_502_or_504_fails_over_to_the_next_endpoint(
    context: BrowserContext, world: FirstPartyWorld, state: str
) -> None:
    """The shop's proxy answers 502 (refused) or 504 (hanging): the page, still in view (the
    link opened a new tab), sends the click to the collector's own address next."""
    list_id = f"failover-{state}"
    visitor = Visitor(context)
    world.endpoint.set_mode(state)  # type: ignore[arg-type]
    visitor.open(shop_page(world, "nginx", list_id, endpoints=f"/_ct/,{world.direct.url}",
                           blank=True))  # fmt: skip
    visitor.done_with(visitor.click("blank", 1))
    until(
        lambda: world.stored(list_id),
        GIVES_UP_WITHIN + 10,
        "the click stored through the next endpoint",
    )
    assert any(list_id in request.body.decode("latin-1") for request in world.direct.requests)


# One click at a time, each after the last one's request has left (clicks in one task
# share one request).
CLICKS_IN_NEW_TABS = """async () => {
  for (const link of document.querySelectorAll('a[target]')) {
    link.click();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}"""


def own_request_after_clicks(world: FirstPartyWorld, visitor: Visitor, kind: Kind) -> float:
    """Twelve links of one shop page opened in new tabs within a second, each click's
    request held by the hanging collector behind the shop's path: twice the browser's six
    HTTP/1.1 connections to the shop's host. Then the ms the page's own request to its host
    takes. (Sent with credentials, the snippet's requests held it 2.7 s here.)"""
    world.endpoint.set_mode("hang")
    held = len(world.endpoint.requests)
    visitor.open(shop_page(world, kind, f"{kind}-twelve", links=12, blank=True))
    visitor.page.evaluate(CLICKS_IN_NEW_TABS)
    until(lambda: len(world.endpoint.requests) >= held + 6, 10, "six requests held")
    return float(visitor.page.evaluate(OWN_REQUEST))


@pytest.mark.parametrize("kind", KINDS)
def test_clicks_held_by_a_hanging_collector_leave_the_shops_connections_free(
    context: BrowserContext, world: FirstPartyWorld, kind: Kind
) -> None:
    waited = own_request_after_clicks(world, Visitor(context), kind)
    assert waited < MOST_MS


def test_the_readme_shows_the_configurations_these_tests_run() -> None:
    readme = (NGINX_CONF.parents[2] / "README.md").read_text()
    for shipped in (NGINX_CONF, CADDY_CONF):
        assert shipped.read_text().rstrip() in readme, f"README: update {shipped.name}"
