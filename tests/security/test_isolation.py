"""Tenant isolation: a customer's session and read key see their own site and nothing of
another's, on every route of the API and the dashboard, CSV and exports included. The real
app, a real store holding both sites' events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import Mount, Route

from tests.conftest import OTHER_ORIGIN, SHOP_ORIGIN
from tests.inprocess import App, Client, running_app

PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
SECRET = "other-secret"  # in every text of the site "other": its lists, items, placement
API = {  # endpoint -> the formats it answers in
    "sites": ["json"],
    "report": ["json", "csv"],
    "health": ["json", "csv"],
    "latest": ["json"],
    "export": ["csv", "ndjson"],
}
PAGES = ["", "placements", "items", "positions", "health"]
# Every route the app has, and where this module covers it.
ROUTES = {
    "/healthz": "public, no site data",
    "/metrics": "public, no site data",
    "/api/v1/openapi.json": "public, no site data",
    "/dashboard/sign-in": "before sign-in",
    "/dashboard/sign-out": "tests/security/test_csrf.py",
    "/dashboard/erase-site": "operators only: tests/dashboard/test_erase.py",
    "/dashboard/static": "static files",
    "/dashboard/": "PAGES",
    "/dashboard": "a redirect to /dashboard/",
    "/dashboard/{page}": "PAGES",
    "/api/v1/{name}": "API",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("isolation")) as running:
        seed(running)
        yield running


def seed(app: App) -> None:
    for site, origin in (("shop", SHOP_ORIGIN), ("other", OTHER_ORIGIN)):
        prefix = "shop" if site == "shop" else SECRET
        browser = app.client(headers={"origin": origin, "user-agent": PERSON})
        events = [
            app.event(
                site, kind=kind, list_id=f"{prefix}-list-{n}", item=f"{prefix}-item-{n}",
                placement=f"{prefix}-placement", position=n + 1,
            )
            for n in range(3)
            for kind in ("view", "click")
        ]  # fmt: skip
        assert browser.post("/e", json=events).json()["accepted"] == len(events)
    # A refusal only "other" has: its valid token, clicked on shop's page.
    stray = app.client(headers={"origin": SHOP_ORIGIN})
    refused = stray.post("/e", json=app.event("other", item=f"{SECRET}-stray"))
    assert refused.json()["rejected"][0]["reason"] == "origin_not_allowed"
    app.counted()  # the reports below read the counters


@pytest.fixture(scope="module", params=["session", "read key"])
def customer(app: App, request: pytest.FixtureRequest) -> Client:
    """The shopkeeper (site "shop" only), signed in or with a read key."""
    if request.param == "session":
        client = app.client()
        assert client.sign_in("shopkeeper").status_code == 303
        return client
    return app.client(headers={"authorization": f"Bearer {app.keys['shopkeeper']}"})


def api_calls() -> list[tuple[str, dict[str, Any]]]:
    return [
        (endpoint, {"format": fmt} if fmt != "json" else {})
        for endpoint, formats in API.items()
        for fmt in formats
    ]


def test_the_routes_covered_here_are_all_the_routes(app: App) -> None:
    paths = {r.path for r in app.app.rest.routes if isinstance(r, Route | Mount)}
    assert paths == set(ROUTES)


@pytest.mark.parametrize("endpoint, params", api_calls())
def test_the_api_refuses_another_customers_site(
    customer: Client, endpoint: str, params: dict[str, Any]
) -> None:
    for sites in (["other"], ["shop", "other"], ["other", "shop"]):
        answer = customer.get(f"/api/v1/{endpoint}", params={**params, "site": sites})
        assert answer.status_code == 403, (sites, answer.text)
        assert answer.json()["error"] == "forbidden"
        assert SECRET not in answer.text


@pytest.mark.parametrize("endpoint, params", api_calls())
def test_the_api_shows_a_customer_only_their_own_site(
    customer: Client, endpoint: str, params: dict[str, Any]
) -> None:
    for sites in ([], ["shop"]):
        answer = customer.get(
            f"/api/v1/{endpoint}", params={**params, "site": sites, "since": "1h"}
        )
        assert answer.status_code == 200, answer.text
        assert SECRET not in answer.text
        assert "other" not in answer.text  # not even the name of the other site
        assert "origin_not_allowed" not in answer.text  # other's refusal
        if endpoint in ("report", "export", "latest"):
            assert "shop-item" in answer.text or "shop-placement" in answer.text


@pytest.mark.parametrize("page", PAGES)
def test_dashboard_pages_show_a_customer_only_their_own_site(app: App, page: str) -> None:
    customer = app.client()
    assert customer.sign_in("shopkeeper").status_code == 303
    for site in ("other", "shop&site=other"):
        refused = customer.get(f"/dashboard/{page}?site={site}")
        assert refused.status_code in (403, 404) and SECRET not in refused.text
    own = customer.get(f"/dashboard/{page}")
    assert own.status_code == 200
    assert SECRET not in own.text and ">other<" not in own.text
    if page in ("", "items"):
        assert "shop-item" in own.text


@pytest.mark.parametrize("page", PAGES)
def test_an_operator_sees_both(app: App, page: str) -> None:
    operator = app.client()
    assert operator.sign_in("ops").status_code == 303
    assert operator.get(f"/dashboard/{page}?site=other").status_code == 200
    export = operator.get("/api/v1/export", params={"since": "1h"})
    assert SECRET in export.text and "shop-item" in export.text


def test_without_credentials_nothing_is_shown(app: App) -> None:
    stranger = app.client()
    for endpoint, params in api_calls():
        answer = stranger.get(f"/api/v1/{endpoint}", params=params)
        assert answer.status_code == 401 and SECRET not in answer.text
    for page in PAGES:
        answer = stranger.get(f"/dashboard/{page}")
        assert answer.status_code == 303 and SECRET not in answer.text
