"""Erasing a site from the dashboard: an operator only, with the form's token, having typed
the site's name again. The real app in-process, on a real SQLite file."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.inprocess import App, Client, running_app

GONE = "erase-me"


@pytest.fixture
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("erase"), {GONE: ["http://gone.test"]}) as running:
        yield running


def health_form(client: Client, site: str) -> str:
    page = client.get(f"/dashboard/health?site={site}")
    assert page.status_code == 200
    token = re.search(
        r'action="erase-site">\s*<input type="hidden" name="csrf" value="([^"]+)"', page.text
    )
    assert token, "an operator's health page has the erase form"
    return token[1]


def test_an_operator_erases_a_site_after_typing_its_name(app: App) -> None:
    sender = app.client()
    events = [app.event(GONE) for _ in range(3)]
    answer = sender.post("/e", json=events, headers={"origin": "http://gone.test"})
    assert answer.json()["accepted"] == 3, answer.text
    app.counted()
    ops = app.client()
    assert ops.sign_in("ops").status_code == 303
    csrf = health_form(ops, GONE)

    typo = ops.post("/dashboard/erase-site", data={"csrf": csrf, "site": GONE, "confirm": "erase"})
    assert typo.status_code == 400 and "nothing was erased" in typo.text
    forged = ops.post("/dashboard/erase-site", data={"csrf": "x", "site": GONE, "confirm": GONE})
    assert forged.status_code == 403
    assert app.query("SELECT count(*) FROM events WHERE site = ?", GONE) == [(3,)]

    done = ops.post("/dashboard/erase-site", data={"csrf": csrf, "site": GONE, "confirm": GONE})
    assert done.status_code == 200 and f"{GONE} erased" in done.text
    assert re.search(r"events</th><td class=\"num\">3<", done.text)
    assert app.query("SELECT count(*) FROM events WHERE site = ?", GONE) == [(0,)]
    assert app.query("SELECT count(*) FROM sites WHERE name = ?", GONE) == [(0,)]


def test_a_customer_cannot_erase_a_site(app: App) -> None:
    customer = app.client()
    assert customer.sign_in("shopkeeper").status_code == 303
    page = customer.get("/dashboard/health?site=shop")
    assert "erase-site" not in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    answer = customer.post(
        "/dashboard/erase-site", data={"csrf": csrf[1], "site": "shop", "confirm": "shop"}
    )
    assert answer.status_code == 403
    assert app.query("SELECT count(*) FROM sites WHERE name = 'shop'") == [(1,)]
