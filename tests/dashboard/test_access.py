"""Nobody sees data without signing in; a customer sees only its own sites."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import AppCollector as Collector
from tests.dashboard.conftest import PASSWORD, Users

PAGES = ["/dashboard/", "/dashboard/placements", "/dashboard/items", "/dashboard/positions",
         "/dashboard/health"]  # fmt: skip
REPORTS = ["/api/v1/report", "/api/v1/health", "/api/v1/latest", "/api/v1/export",
           "/api/v1/sites"]  # fmt: skip


def sign_in(collector: Collector, name: str, password: str = PASSWORD) -> httpx.Client:
    client = collector.client(timeout=10)
    form = client.get("/dashboard/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    answer = client.post(
        "/dashboard/sign-in", data={"name": name, "password": password, "csrf": csrf[1]}
    )
    assert answer.status_code == 303, answer.text
    return client


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_strangers_to_sign_in(served: tuple[Collector, Users], path: str) -> None:
    collector, _ = served
    answer = collector.http.get(f"{collector.url}{path}?site=shop")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/dashboard/sign-in?next=")


@pytest.mark.parametrize("path", REPORTS)
def test_the_api_answers_strangers_401(served: tuple[Collector, Users], path: str) -> None:
    collector, _ = served
    for headers in ({}, {"authorization": "Bearer ctr_not-a-key"}):
        answer = collector.http.get(f"{collector.url}{path}", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthenticated"
        assert "shop" not in answer.text


def test_a_customer_asking_for_another_customers_site_gets_403(
    served: tuple[Collector, Users],
) -> None:
    collector, users = served
    bearer = {"authorization": f"Bearer {users.customer_key}"}
    for path in REPORTS:
        answer = collector.http.get(f"{collector.url}{path}?site=other", headers=bearer)
        assert answer.status_code == 403, path
        assert answer.json()["error"] == "forbidden"
    own = collector.http.get(f"{collector.url}/api/v1/report?site=shop", headers=bearer)
    assert own.status_code == 200
    assert collector.http.get(f"{collector.url}/api/v1/sites", headers=bearer).json() == {
        "sites": ["shop"]
    }
    client = sign_in(collector, "shopkeeper")
    assert client.get("/dashboard/?site=other").status_code == 403
    assert client.get("/dashboard/?site=shop").status_code == 200


def test_an_operator_sees_every_site(served: tuple[Collector, Users]) -> None:
    collector, users = served
    bearer = {"authorization": f"Bearer {users.operator_key}"}
    sites = collector.http.get(f"{collector.url}/api/v1/sites", headers=bearer).json()["sites"]
    assert sites == ["other", "shop"]
    client = sign_in(collector, "ops")
    assert client.get("/dashboard/?site=other").status_code == 200


def test_the_session_cookie_is_http_only_and_same_site(served: tuple[Collector, Users]) -> None:
    collector, _ = served
    client = collector.client()
    form = client.get("/dashboard/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    answer = client.post(
        "/dashboard/sign-in", data={"name": "ops", "password": PASSWORD, "csrf": csrf[1]}
    )
    cookie = answer.headers["set-cookie"]
    assert "ct_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")


def test_sign_in_needs_the_forms_csrf_token_and_the_right_password(
    served: tuple[Collector, Users],
) -> None:
    collector, _ = served
    client = collector.client()
    client.get("/dashboard/sign-in")
    forged = client.post(
        "/dashboard/sign-in", data={"name": "ops", "password": PASSWORD, "csrf": "guessed"}
    )
    assert forged.status_code == 400 and "ct_session" not in forged.headers.get("set-cookie", "")
    form = client.get("/dashboard/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    wrong = client.post(
        "/dashboard/sign-in", data={"name": "ops", "password": "not it at all", "csrf": csrf[1]}
    )
    assert wrong.status_code == 400 and "Wrong name or password" in wrong.text


def test_sign_in_never_redirects_to_another_site(served: tuple[Collector, Users]) -> None:
    collector, _ = served
    client = collector.client()
    form = client.get("/dashboard/sign-in?next=https://evil.example/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    answer = client.post(
        "/dashboard/sign-in",
        data={"name": "ops", "password": PASSWORD, "csrf": csrf[1], "next": "//evil.example/"},
    )
    assert answer.headers["location"] == "/dashboard/"


def test_sign_out_needs_the_sessions_csrf_token_and_ends_the_session(
    served: tuple[Collector, Users],
) -> None:
    collector, _ = served
    client = sign_in(collector, "ops")
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert client.post("/dashboard/sign-out", data={"csrf": "forged"}).status_code == 403
    assert client.get("/dashboard/").status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    assert client.post("/dashboard/sign-out", data={"csrf": csrf[1]}).status_code == 303
    assert client.get("/dashboard/").status_code == 303


def test_collector_endpoints_stay_public(served: tuple[Collector, Users]) -> None:
    collector, _ = served
    assert collector.post(collector.event()).status_code == 200
    assert collector.http.get(f"{collector.url}/ct.js").status_code == 200
    assert collector.http.get(f"{collector.url}/healthz").status_code == 200
