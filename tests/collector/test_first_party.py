"""The collector behind a shop's first-party path: the visitor's address from trusted
proxies only, nothing but the event paths through them, and the image fallback on ``GET /e``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.inprocess import App, running_app
from tests.sites import SHOP_ORIGIN

SHOP_PROXY = "10.20.0.5"  # a shop's first-party proxy
FRONT = "10.30.0.1"  # the operator's own TLS front
STRANGER = "203.0.113.9"  # anyone else
PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    directory: Path = tmp_path_factory.mktemp("first-party")
    with running_app(
        directory, trusted_proxies=[FRONT], first_party_proxies=["10.20.0.0/16"]
    ) as running:
        yield running


def visitor_of(app: App, peer: str, **headers: str) -> str:
    """The visitor key the collector stored for one click sent from `peer`."""
    event = app.event()
    client = app.client(peer, headers={"origin": SHOP_ORIGIN, "user-agent": PERSON})
    assert client.post("/e", json=event, headers=headers).json()["accepted"] == 1
    [(visitor,)] = app.query("SELECT visitor FROM events WHERE id = ?", event["id"])
    return str(visitor)


def test_the_visitor_key_follows_the_address_a_trusted_proxy_saw(app: App) -> None:
    through_proxy = visitor_of(app, SHOP_PROXY, **{"x-forwarded-for": "198.51.100.1"})
    assert through_proxy == visitor_of(app, "198.51.100.1")
    assert through_proxy == visitor_of(app, FRONT, **{"x-forwarded-for": "198.51.100.1"})
    via_front = {"x-forwarded-for": f"198.51.100.1, {SHOP_PROXY}"}
    assert through_proxy == visitor_of(app, FRONT, **via_front)
    assert through_proxy == visitor_of(app, "10.20.9.9", forwarded="for=198.51.100.1")
    # What the visitor wrote itself, before the proxy's own entry, changes nothing.
    spoofed = {"x-forwarded-for": "6.6.6.6, 198.51.100.1"}
    assert through_proxy == visitor_of(app, SHOP_PROXY, **spoofed)
    assert through_proxy != visitor_of(app, SHOP_PROXY, **{"x-forwarded-for": "198.51.100.2"})


def test_an_untrusted_peer_cannot_choose_its_address(app: App) -> None:
    claimed = {"x-forwarded-for": "198.51.100.1"}
    assert visitor_of(app, STRANGER, **claimed) == visitor_of(app, STRANGER)
    assert visitor_of(app, STRANGER, **claimed) != visitor_of(app, "198.51.100.1")


@pytest.mark.parametrize(
    "path", ["/healthz", "/metrics", "/dashboard/", "/dashboard/sign-in", "/api/v1/sites",
             "/api/v1/openapi.json"],
)  # fmt: skip
def test_operations_dashboard_and_api_are_not_served_through_a_shops_proxy(
    app: App, path: str
) -> None:
    forwarded = app.client(SHOP_PROXY, headers={"x-forwarded-for": "198.51.100.1"})
    refused = forwarded.get(path)
    assert refused.status_code == 404 and refused.json()["error"] == "not_public"
    assert forwarded.get(path, headers={"x-forwarded-for": ""}).status_code == 404
    assert app.client(SHOP_PROXY, headers={"forwarded": "for=1.2.3.4"}).get(path).status_code == 404
    assert app.client(SHOP_PROXY).get(path).status_code == 404
    # A shop's proxy behind the operator's own front: refused too.
    via_front = {"x-forwarded-for": f"198.51.100.1, {SHOP_PROXY}"}
    assert app.client(FRONT, headers=via_front).get(path).status_code == 404
    # Directly, through the operator's own front, or from elsewhere: as always.
    assert app.client(FRONT, headers={"x-forwarded-for": "1.2.3.4"}).get(path).status_code != 404
    assert app.client(STRANGER, headers={"x-forwarded-for": "1.2.3.4"}).get(path).status_code != 404


def test_the_event_paths_and_the_snippet_are_served_through_it(app: App) -> None:
    forwarded = app.client(SHOP_PROXY, headers={"x-forwarded-for": "198.51.100.1"})
    assert forwarded.get("/ct.js").status_code == 200
    assert forwarded.post("/e", json=app.event(), headers={"origin": SHOP_ORIGIN})
    assert forwarded.request("OPTIONS", "/e").status_code == 204


def test_the_image_fallback_is_a_get_on_the_event_path_and_the_old_gif_still_works(
    app: App,
) -> None:
    browser = app.client(headers={"referer": f"{SHOP_ORIGIN}/book/a"})
    new, old = app.event(), app.event()
    image = browser.get(f"/e?{urlencode(new)}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
    assert image.headers["cache-control"] == "no-store"
    assert browser.get(f"/p.gif?{urlencode(old)}").status_code == 200
    assert browser.get(f"/e?{urlencode(new)}").status_code == 200  # again: stored once
    rows = app.query(
        "SELECT id, via FROM events WHERE id IN (?, ?) ORDER BY id", new["id"], old["id"]
    )
    assert sorted(rows) == sorted([(new["id"], "img"), (old["id"], "img")])
    refused = browser.get("/e?kind=click")
    assert refused.status_code == 400 and refused.json()["error"]
    assert browser.request("DELETE", "/e").headers["allow"] == "POST, GET, OPTIONS"
