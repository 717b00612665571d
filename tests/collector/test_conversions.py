"""Conversions through ``POST /e``: reported by the page with the clicks they follow,
confirmed by the shop with its API key; attributed, merged and counted once per order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.inprocess import App, running_app
from tests.sites import SHOP_ORIGIN, new_id

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    with running_app(tmp_path) as running:
        yield running


def now_ms() -> int:
    return int(time.time() * 1000)


def click(app: App, **claims: Any) -> dict[str, Any]:
    """A click stored through the page, and what the page remembers of it."""
    event = app.event(**claims)
    event.setdefault("ts", now_ms())
    answer = app.client().post("/e", json=event, headers={"origin": SHOP_ORIGIN})
    assert answer.json()["accepted"] == 1
    return {"id": event["id"], "token": event["token"], "ts": event["ts"]}


def conversion(order: str = "A-1042", **fields: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "kind": "conversion",
        "site": "shop",
        "order": order,
        "value": 23.5,
        "currency": "GBP",
        "items": ["emma", "dune"],
        "ts": now_ms(),
        **fields,
    }


def page(app: App, event: dict[str, Any]) -> dict[str, Any]:
    answer = app.client().post("/e", json=event, headers={"origin": SHOP_ORIGIN})
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def server(app: App, event: dict[str, Any], api_key: str | None = None) -> dict[str, Any]:
    key = api_key or app.sites["shop"].api_key
    answer = app.client().post("/e", json=event, headers={"authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def orders(app: App) -> list[tuple[Any, ...]]:
    app.counted()
    return app.query(
        "SELECT order_id, value, currency, page, server, reports, click_id, item, variant,"
        " bought_clicked FROM orders ORDER BY order_id"
    )


def test_a_conversion_goes_to_the_last_click_within_the_window(app: App) -> None:
    old = click(app, item="emma", ts=now_ms() - 8 * DAY_MS)  # outside the window
    first = click(app, item="emma", ts=now_ms() - 3600_000)
    last = click(app, item="rebecca", ts=now_ms() - 60_000, variant="B")
    assert page(app, conversion(clicks=[last, old, first]))["accepted"] == 1
    assert orders(app) == [("A-1042", 23_500_000, "GBP", 1, 0, 1, last["id"], "rebecca", "B", 0)]


def test_the_clicked_item_bought_is_told_apart_from_another(app: App) -> None:
    bought = click(app, item="dune")
    page(app, conversion(clicks=[bought]))
    assert orders(app)[0][-3:] == ("dune", "", 1)


def test_a_reloaded_confirmation_page_counts_once(app: App) -> None:
    followed = click(app, item="emma")
    for _ in range(3):  # each load makes an event of its own
        assert page(app, conversion(clicks=[followed]))["accepted"] == 1
    [order] = orders(app)
    assert order[5] == 3 and order[6] == followed["id"]


def test_an_order_with_no_click_is_kept_unattributed(app: App) -> None:
    page(app, conversion())
    assert orders(app) == [("A-1042", 23_500_000, "GBP", 1, 0, 1, None, None, None, None)]


def test_the_shops_confirmation_merges_with_the_page_and_its_value_wins(app: App) -> None:
    followed = click(app, item="emma")
    page(app, conversion(clicks=[followed], value=99.0))
    assert server(app, conversion(value=23.5))["accepted"] == 1
    assert orders(app) == [("A-1042", 23_500_000, "GBP", 1, 1, 2, followed["id"], "emma", "", 1)]


def test_a_confirmation_before_the_page_report_merges_too(app: App) -> None:
    followed = click(app, item="emma")
    server(app, conversion(value=10))
    page(app, conversion(clicks=[followed], value=99.0))
    assert orders(app) == [("A-1042", 10_000_000, "GBP", 1, 1, 2, followed["id"], "emma", "", 1)]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"currency": "gbp"}, "bad_currency"),
        ({"currency": "POUNDS"}, "bad_currency"),
        ({"currency": None}, "bad_currency"),
        ({"value": -1}, "negative_value"),
        ({"clicks": [{"id": "c" * 16, "token": "v1.forged.mac", "ts": 1_750_000_000_000}]},
         "unknown_click"),
        ({"site": "nowhere"}, "unknown_site"),
        ({"order": ""}, "invalid_event"),
    ],
)  # fmt: skip
def test_a_bad_conversion_is_refused_and_kept_with_its_reason(
    app: App, change: dict[str, Any], reason: str
) -> None:
    good, bad = conversion("A-1"), {**conversion("A-2"), **change}
    body = page(app, [good, bad])
    assert body["accepted"] == 1
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(1, reason)]
    assert app.query("SELECT reason FROM rejects WHERE input LIKE ?", f"%{bad['id']}%") == [
        (reason,)
    ]
    assert [row[0] for row in orders(app)] == ["A-1"]


def test_a_click_of_another_site_is_an_unknown_click(app: App) -> None:
    other = app.event("other")
    followed = {"id": other["id"], "token": other["token"], "ts": now_ms()}
    body = page(app, conversion(clicks=[followed]))
    assert body["rejected"][0]["reason"] == "unknown_click"


def test_a_confirmation_with_a_wrong_api_key_is_refused(app: App) -> None:
    body = server(app, conversion(), api_key=app.sites["other"].api_key)
    assert body["rejected"][0]["reason"] == "conversion_bad_api_key"
    assert orders(app) == []


def test_a_page_cannot_claim_to_be_the_shops_server(app: App) -> None:
    page(app, conversion(via="server"))
    assert orders(app)[0][3:5] == (1, 0)


def test_conversions_leave_the_click_counters_alone(app: App) -> None:
    followed = click(app, item="emma")
    page(app, conversion(clicks=[followed]))
    server(app, conversion("A-2", value=5))
    assert len(orders(app)) == 2
    counters = app.query("SELECT sum(clicks), sum(views), count(*) FROM rollup_hourly")
    assert counters == [(1, 0, 1)]


def test_a_page_need_not_name_its_site(app: App) -> None:
    event = conversion()
    del event["site"]
    assert page(app, event)["accepted"] == 1
    app.counted()
    assert app.query("SELECT site FROM orders") == [("shop",)]


def test_the_conversion_reader_is_served_beside_the_snippet(app: App) -> None:
    answer = app.client().get("/ctc.js")
    assert answer.status_code == 200 and b"data-ct-conversion" in answer.content


def test_the_attribution_window_is_a_setting(tmp_path: Path) -> None:
    with running_app(tmp_path, attribution_days=1) as short:
        day_old = click(short, item="emma", ts=now_ms() - 2 * DAY_MS)
        recent = click(short, item="dune", ts=now_ms() - 3600_000)
        page(short, conversion("A-1", clicks=[day_old]))
        page(short, conversion("A-2", clicks=[day_old, recent]))
        assert [(o[0], o[6]) for o in orders(short)] == [("A-1", None), ("A-2", recent["id"])]
