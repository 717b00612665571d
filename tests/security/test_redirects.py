"""No open redirect: whatever a link or form says, the dashboard sends a browser only to
its own pages. Every redirect's Location is resolved the way a browser does (a backslash
is a slash in http URLs) and must stay on the collector's origin. The real app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote, urljoin, urlsplit

import httpx
import pytest

from tests.inprocess import BASE_URL, PASSWORD, App, running_app

TARGETS = [
    "https://evil.test/", "//evil.test/", "/\\evil.test/", "\\\\evil.test/", "\\/evil.test/",
    "http:evil.test", "javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
    "/dashboard/../..//evil.test/", "/dashboard/\\..\\..\\\\evil.test", "/dashboard//evil.test",
    "/dashboard/\r\nLocation: https://evil.test/", "/dashboard/%0d%0aLocation:%20https://evil.test",
    " //evil.test/", "\t//evil.test/", "/%2F%2Fevil.test/", "https://collector.test@evil.test/",
    "/dashboard/@evil.test", "/dashboard/%2e%2e/%2e%2e//evil.test/", "x" * 3000,
]  # fmt: skip


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("redirects")) as running:
        yield running


def assert_stays(answer: httpx.Response, target: str) -> None:
    location = answer.headers.get("location")
    if location is None:
        return
    assert "\r" not in location and "\n" not in location, target
    resolved = urlsplit(urljoin(BASE_URL + "/dashboard/sign-in", location.replace("\\", "/")))
    assert (resolved.scheme, resolved.netloc) == ("http", "collector.test"), (target, location)
    assert resolved.path.startswith("/dashboard"), (target, location)


@pytest.mark.parametrize("target", TARGETS)
def test_sign_in_sends_the_browser_only_to_the_dashboard(app: App, target: str) -> None:
    client = app.client()
    form = client.get(f"/dashboard/sign-in?next={quote(target)}")
    assert form.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    kept = re.search(r'name="next" value="([^"]*)"', form.text)
    assert csrf and kept and kept[1].startswith("/dashboard/")
    answer = client.post(
        "/dashboard/sign-in",
        data={"name": "ops", "password": PASSWORD, "csrf": csrf[1], "next": target},
    )
    assert answer.status_code == 303
    assert_stays(answer, target)


@pytest.mark.parametrize("target", TARGETS)
def test_no_other_route_redirects_elsewhere(app: App, target: str) -> None:
    stranger = app.client()
    member = app.client()
    assert member.sign_in("ops").status_code == 303
    for client in (stranger, member):
        for path in (f"/dashboard/{quote(target, safe='')}", "/dashboard", "/dashboard/"):
            answer = client.get(path, params={"next": target, "site": target})
            assert answer.status_code < 500
            assert_stays(answer, target)


def test_no_redirect_names_the_host_a_client_sent(app: App) -> None:
    """A Location built from the Host header would poison a cache in front."""
    member = app.client()
    assert member.sign_in("ops").status_code == 303
    for path in ("/dashboard", "/dashboard/items/", "/api/v1/report/", "/dashboard/static",
                 "/healthz/", "/dashboard/sign-in/"):  # fmt: skip
        answer = member.get(path, headers={"host": "evil.test"})
        assert answer.status_code < 500
        assert "evil.test" not in answer.headers.get("location", ""), path
