"""The conversion reader in Chromium, for what needs Playwright's hooks: Global Privacy
Control. (Attribution, reloads, outages and merging run in all three engines:
test_conversion_engines.py.)"""

from __future__ import annotations

import uuid

from playwright.sync_api import BrowserContext

from tests.snippet.conftest import World
from tests.snippet.test_conversion_engines import order_of
from tests.snippet.test_delivery import wait_for
from tests.snippet.visitor import Visitor

OUTBOX = "JSON.parse(localStorage.getItem('clickthru') || '{\"q\":[]}').q"


def test_global_privacy_control_is_honoured_where_the_site_asks(
    world: World, context: BrowserContext
) -> None:
    context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
    )
    visitor = Visitor(context)
    world.watch(visitor.page)
    asks, ignores = (f"gpc-{uuid.uuid4().hex[:6]}" for _ in range(2))
    visitor.open(world.site.order_url(world.a.url, asks, ["emma"], gpc=True))
    visitor.open(world.site.order_url(world.a.url, ignores, ["emma"]))
    assert wait_for(lambda: order_of(world, ignores) is not None, timeout=30)
    assert order_of(world, asks) is None
    kinds = visitor.page.evaluate(f"{OUTBOX}.map((event) => event.kind)")
    assert "conversion" not in kinds  # nothing kept for later either
