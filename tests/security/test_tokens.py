"""Forged, expired and other sites' tokens get nowhere, whichever way they arrive (beacon,
image, ping), and each refusal is recorded with its reason. The real app, a real store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from clickthru import tokens
from tests.conftest import OTHER_ORIGIN, SHOP_ORIGIN
from tests.inprocess import App, running_app

CLAIMS = {"list_id": "L", "item": "i", "position": 1, "placement": "p"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("tokens")) as running:
        yield running


def hostile_tokens(app: App) -> dict[str, tuple[str, str]]:
    """name -> (token, the reason it must be refused with), all sent from shop's pages."""
    shop = app.sites["shop"].site.signing_key
    other = app.sites["other"].site.signing_key
    payload, mac = app.token(item="i").rsplit(".", 1)
    changed = app.token(item="a-more-profitable-item")
    return {
        "forged with a guessed secret": (
            tokens.mint(site="shop", key_id=shop.key_id, secret=b"guess", **CLAIMS),
            "token_bad_signature",
        ),
        "a valid signature on changed claims": (
            f"{changed.rsplit('.', 1)[0]}.{mac}",
            "token_bad_signature",
        ),
        "a valid token with its signature changed": (
            f"{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
            "token_bad_signature",
        ),
        "claiming another site, signed with this one's key": (
            tokens.mint(site="other", key_id=shop.key_id, secret=shop.secret, **CLAIMS),
            "token_bad_signature",
        ),
        "another site's own valid token": (
            tokens.mint(site="other", key_id=other.key_id, secret=other.secret, **CLAIMS),
            "origin_not_allowed",
        ),
        "expired": (
            tokens.mint(
                site="shop",
                key_id=shop.key_id,
                secret=shop.secret,
                ttl=60,
                now=time.time() - 3600,
                **CLAIMS,
            ),
            "token_expired",
        ),
        "an unknown key": (
            tokens.mint(site="shop", key_id="k404", secret=shop.secret, **CLAIMS),
            "token_unknown_key",
        ),
        "an unknown site": (
            tokens.mint(site="nowhere", key_id="k1", secret=shop.secret, **CLAIMS),
            "token_unknown_key",
        ),
        "not base64": ("v1.!!!.AAAA", "token_malformed"),
        "another version": (f"v2.{payload.split('.', 1)[1]}.{mac}", "token_malformed"),
        # Past the schema's bounds: no event at all.
        "too long": ("v1." + "A" * 2000 + ".AAAA", "invalid_event"),
        "empty": ("", "invalid_event"),
    }


def recorded(app: App, marker: str) -> list[str]:
    rows = app.query("SELECT reason FROM rejects WHERE input LIKE ?", f"%{marker}%")
    return [reason for (reason,) in rows]


def test_every_bad_token_is_refused_and_recorded_on_every_way_in(app: App) -> None:
    browser = app.client(headers={"origin": SHOP_ORIGIN, "referer": f"{SHOP_ORIGIN}/a"})
    before = app.query("SELECT count(*) FROM events")
    for name, (token, reason) in hostile_tokens(app).items():
        beacon = app.event(token=token)
        answer = browser.post("/e", json=beacon, headers={"content-type": "text/plain"})
        assert answer.status_code == 200 and answer.json()["accepted"] == 0, name
        assert answer.json()["rejected"][0]["reason"] == reason, name
        assert recorded(app, beacon["id"]) == [reason], name

        image = app.event(token=token)
        gif = browser.get(f"/p.gif?{urlencode(image)}")
        assert gif.status_code == 400 and gif.json()["error"] == reason, name
        assert recorded(app, image["id"]) == [reason], name

        ping = browser.post(f"/ping?{urlencode({'t': token})}", content=b"PING")
        assert ping.status_code == 400 and ping.json()["error"] == reason, name
    assert app.query("SELECT count(*) FROM events") == before


def test_another_sites_token_counts_only_on_that_sites_own_pages(app: App) -> None:
    token = app.token("other")
    elsewhere = app.client(headers={"origin": OTHER_ORIGIN})
    event = app.event("other", token=token)
    assert elsewhere.post("/e", json=event).json()["accepted"] == 1
    assert app.query("SELECT site FROM events WHERE id = ?", event["id"]) == [("other",)]
