"""Conversions from the order confirmation page (ctc.js beside ct.js) in Chromium, Firefox
ESR and WebKitGTK: attributed to the recommended click before, once, also after a reload;
unattributed without one; kept while every collector is down and stored once after; merged
with the shop's confirmation of the same order."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browsers import ENGINES, Engine, Tab, launch
from tests.snippet.conftest import World
from tests.snippet.site import Page
from tests.snippet.test_delivery import wait_for


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    with launch(request.param) as launched:
        yield launched


@pytest.fixture
def tab(engine: Engine, world: World) -> Iterator[Tab]:
    world.a.set_mode("up")
    world.b.set_mode("up")
    visitor = engine.visitor()
    yield visitor
    visitor.close()


def query(world: World, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{world.collector.db}?mode=ro", uri=True) as conn:
        return conn.execute(sql, params).fetchall()


def order_of(world: World, order: str) -> tuple[Any, ...] | None:
    rows = query(
        world,
        "SELECT click_id, item, bought_clicked, page, server, reports, value FROM orders"
        " WHERE order_id = ?",
        order,
    )
    return rows[0] if rows else None


def reports_of(world: World, order: str) -> int:
    return len(query(world, "SELECT id FROM events WHERE order_id = ?", order))


def clicked(world: World, engine: Engine, tab: Tab, list_id: str) -> str:
    """Clicks the first recommended link of a shop page; returns the stored click's id."""
    page = Page(endpoints=world.a.url, list_id=list_id, links=2, blank=False)
    tab.open(world.site.url(page))
    tab.click("same", 1)
    assert wait_for(lambda: len(world.stored(list_id=list_id)) == 1, timeout=30)
    [(click_id, *_)] = world.stored(list_id=list_id)
    return str(click_id)


def test_a_purchase_after_a_click_is_attributed_to_it_once_also_after_a_reload(
    world: World, engine: Engine, tab: Tab
) -> None:
    run = f"{engine.name}-{uuid.uuid4().hex[:6]}"
    click_id = clicked(world, engine, tab, run)
    order = f"{run}-order"
    url = world.site.order_url(world.a.url, order, [f"{run}-book-1", "other-book"])
    tab.open(url)
    assert wait_for(lambda: order_of(world, order) is not None, timeout=30)
    assert order_of(world, order) == (click_id, f"{run}-book-1", 1, 1, 0, 1, 23_500_000)
    tab.open(url)  # the visitor reloads the confirmation page
    assert wait_for(lambda: reports_of(world, order) == 2, timeout=30)
    assert wait_for(lambda: (order_of(world, order) or ())[5:6] == (2,), timeout=10)
    assert order_of(world, order) == (click_id, f"{run}-book-1", 1, 1, 0, 2, 23_500_000)
    assert len(query(world, "SELECT * FROM orders WHERE order_id = ?", order)) == 1


def test_a_purchase_with_no_click_is_unattributed(world: World, engine: Engine, tab: Tab) -> None:
    order = f"{engine.name}-{uuid.uuid4().hex[:6]}-order"
    tab.open(world.site.order_url(world.a.url, order, ["emma"]))
    assert wait_for(lambda: order_of(world, order) is not None, timeout=30)
    assert order_of(world, order) == (None, None, None, 1, 0, 1, 23_500_000)


def test_a_purchase_while_every_collector_is_down_arrives_once_after(
    world: World, engine: Engine, tab: Tab
) -> None:
    run = f"{engine.name}-{uuid.uuid4().hex[:6]}"
    click_id = clicked(world, engine, tab, run)
    order = f"{run}-order"
    world.a.set_mode("refuse")
    world.b.set_mode("refuse")
    tab.open(world.site.order_url(world.a.url, order, [f"{run}-book-2"]))
    tried = (
        "JSON.parse(localStorage.getItem('clickthru')).q.some((e) => e.kind == 'conversion' && e.n)"
    )
    assert wait_for(lambda: tab.evaluate(tried))  # it was sent, and refused: it waits
    assert reports_of(world, order) == 0
    world.a.set_mode("up")
    world.b.set_mode("up")
    tab.open(world.site.url(Page(endpoints=world.a.url, list_id=f"{run}-back", links=1)))
    assert wait_for(lambda: order_of(world, order) is not None, timeout=30)
    assert reports_of(world, order) == 1
    assert order_of(world, order) == (click_id, f"{run}-book-1", 0, 1, 0, 1, 23_500_000)


def test_the_page_and_the_shops_confirmation_of_one_order_merge(
    world: World, engine: Engine, tab: Tab
) -> None:
    run = f"{engine.name}-{uuid.uuid4().hex[:6]}"
    click_id = clicked(world, engine, tab, run)
    order = f"{run}-order"
    tab.open(world.site.order_url(world.a.url, order, [f"{run}-book-1"], value=30))
    assert wait_for(lambda: order_of(world, order) is not None, timeout=30)
    confirmation = {
        "id": uuid.uuid4().hex, "kind": "conversion", "site": "shop", "order": order,
        "value": 29.5, "currency": "GBP", "items": [f"{run}-book-1"],
    }  # fmt: skip
    api_key = world.collector.sites["shop"].api_key
    answer = httpx.post(
        f"{world.collector.url}/e",
        json=confirmation,
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert answer.json()["accepted"] == 1
    assert wait_for(lambda: (order_of(world, order) or ())[4:5] == (1,), timeout=10)
    assert order_of(world, order) == (click_id, f"{run}-book-1", 1, 1, 1, 2, 29_500_000)
