"""CSRF: every state-changing form refuses a request without its token. Which routes change
state is read from the app's router, so a new form cannot slip by. The real app."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.routing import Route

from tests.inprocess import PASSWORD, App, Client, running_app

# Every route that takes more than GET and HEAD, and the test below that covers it.
STATE_CHANGING = {
    "/dashboard/sign-in": "sign-in",
    "/dashboard/sign-out": "sign-out",
    "/dashboard/erase-site": "erase-site",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("csrf")) as running:
        yield running


def signed_in(client: Client) -> bool:
    return client.get("/dashboard/").status_code == 200


def test_the_state_changing_routes_are_these(app: App) -> None:
    found = {
        route.path
        for route in app.app.rest.routes
        if isinstance(route, Route) and (route.methods or set()) - {"GET", "HEAD"}
    }
    assert found == set(STATE_CHANGING)


def test_sign_in_refuses_a_form_without_its_token(app: App) -> None:
    """Login CSRF: another site must not sign a visitor in to an account of its choosing."""
    visitor = app.client()
    form = visitor.get("/dashboard/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token
    fields = {"name": "ops", "password": PASSWORD}
    for sent in ({}, {"csrf": ""}, {"csrf": "guessed"}, {"csrf": token[1] + "x"}, {"csrf": "é"}):
        answer = visitor.post("/dashboard/sign-in", data={**fields, **sent})
        assert answer.status_code == 400 and "form expired" in answer.text
        assert "ct_session" not in answer.headers.get("set-cookie", "")
    # A cross-site form has the token only if it could read the page: it lacks the cookie.
    elsewhere = app.client()
    answer = elsewhere.post("/dashboard/sign-in", data={**fields, "csrf": token[1]})
    assert answer.status_code == 400 and not signed_in(elsewhere)
    assert visitor.post("/dashboard/sign-in", data={**fields, "csrf": token[1]}).status_code == 303


def test_sign_out_refuses_a_form_without_its_token(app: App) -> None:
    member = app.client()
    assert member.sign_in("ops").status_code == 303
    page = member.get("/dashboard/")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    for sent in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": "é"}):  # é: once a 500
        answer = member.post("/dashboard/sign-out", data=sent)
        assert answer.status_code == 403 and signed_in(member)
    other = app.client()
    assert other.sign_in("ops").status_code == 303
    other_token = re.search(r'name="csrf" value="([^"]+)"', other.get("/dashboard/").text)
    assert other_token and other_token[1] != token[1]
    assert member.post("/dashboard/sign-out", data={"csrf": other_token[1]}).status_code == 403
    assert member.post("/dashboard/sign-out", data={"csrf": token[1]}).status_code == 303
    assert not signed_in(member) and signed_in(other)


def test_erasing_a_site_refuses_a_form_without_its_token(app: App) -> None:
    member = app.client()
    assert member.sign_in("ops").status_code == 303
    fields = {"site": "other", "confirm": "other"}
    for sent in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": "é"}):
        answer = member.post("/dashboard/erase-site", data={**fields, **sent})
        assert answer.status_code == 403
    assert member.get("/dashboard/?site=other").status_code == 200  # still there


def test_the_session_cookies_are_not_sent_by_other_sites_forms(app: App) -> None:
    member = app.client()
    answer = member.sign_in("ops")
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    form = app.client().get("/dashboard/sign-in")
    assert "SameSite=strict" in form.headers["set-cookie"]


def test_the_api_changes_nothing(app: App) -> None:
    reader = app.client(headers={"authorization": f"Bearer {app.keys['ops']}"})
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = reader.request(method, "/api/v1/report")
        assert answer.status_code == 405, method
