"""The intake endpoints of the collector's app, on a real SQLite file."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from clickthru import tokens
from tests.conftest import OTHER_ORIGIN, SHOP_ORIGIN, new_id
from tests.conftest import AppCollector as Collector


def stored(collector: Collector, event_id: str) -> list[tuple[object, ...]]:
    return collector.query(
        "SELECT kind, site, list_id, item, position, placement, via, origin"
        " FROM events WHERE id = ?",
        event_id,
    )


def rejects_for(collector: Collector, event_id: str) -> list[tuple[str, str]]:
    return collector.query("SELECT reason, input FROM rejects WHERE input LIKE ?", f"%{event_id}%")


def test_a_single_event_is_stored_with_what_its_token_says(collector: Collector) -> None:
    event = collector.event(list_id="L7", item="moby-dick", position=3, placement="home-popular")
    response = collector.post(event)
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert stored(collector, event["id"]) == [
        ("click", "shop", "L7", "moby-dick", 3, "home-popular", "beacon", SHOP_ORIGIN)
    ]


def test_one_bad_event_never_costs_its_batch_mates(collector: Collector) -> None:
    good = [collector.event(item=f"good-{i}") for i in range(3)]
    bad = collector.event(kind="purchase")
    response = collector.post([good[0], good[1], bad, good[2]])
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 3 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == [2]
    assert body["rejected"][0]["reason"] == "invalid_event"
    assert "kind" in body["rejected"][0]["detail"]
    for event in good:
        assert len(stored(collector, event["id"])) == 1
    assert stored(collector, bad["id"]) == []
    [(reason, kept)] = rejects_for(collector, bad["id"])
    assert reason == "invalid_event" and '"purchase"' in kept


def test_the_same_event_by_beacon_image_and_batch_is_stored_once(collector: Collector) -> None:
    event = collector.event()
    first = collector.post(event)
    image = collector.http.get(
        f"{collector.url}/p.gif?{urlencode(event)}", headers={"referer": f"{SHOP_ORIGIN}/book/a"}
    )
    batch = collector.post([collector.event(), event])
    assert first.json()["accepted"] == 1
    assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
    assert image.headers["cache-control"] == "no-store"
    assert batch.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert collector.query("SELECT count(*) FROM events WHERE id = ?", event["id"]) == [(1,)]


def test_duplicates_inside_one_batch_count_once(collector: Collector) -> None:
    event = collector.event()
    response = collector.post([event, event, event])
    assert response.json() == {"accepted": 1, "duplicates": 2, "rejected": []}


def test_forged_expired_and_foreign_tokens_are_refused_with_their_reasons(
    collector: Collector,
) -> None:
    shop_key = collector.sites["shop"].site.signing_key
    forged = tokens.mint(
        site="shop", key_id=shop_key.key_id, secret=b"not the secret", list_id="L",
        item="i", position=1, placement="p",
    )  # fmt: skip
    claiming_other = tokens.mint(
        site="other", key_id=shop_key.key_id, secret=shop_key.secret, list_id="L",
        item="i", position=1, placement="p",
    )  # fmt: skip
    expired = tokens.mint(
        site="shop", key_id=shop_key.key_id, secret=shop_key.secret, list_id="L", item="i",
        position=1, placement="p", ttl=60, now=time.time() - 3600,
    )  # fmt: skip
    unknown_key = tokens.mint(
        site="shop", key_id="k99", secret=shop_key.secret, list_id="L", item="i",
        position=1, placement="p",
    )  # fmt: skip
    cases = {
        "token_bad_signature": [forged, claiming_other],
        "token_expired": [expired],
        "token_unknown_key": [unknown_key],
        "token_malformed": ["v1.bm90IGEgdG9rZW4.AAAA", "hello"],
    }
    sent = [(reason, collector.event(token=t)) for reason, ts in cases.items() for t in ts]
    # A valid token of another site, clicked on this shop's page.
    sent.append(("origin_not_allowed", collector.event(site="other")))
    response = collector.post([event for _, event in sent], origin=SHOP_ORIGIN)
    body = response.json()
    assert body["accepted"] == 0
    assert [r["reason"] for r in body["rejected"]] == [reason for reason, _ in sent]
    for reason, event in sent:
        assert stored(collector, event["id"]) == []
        assert [r for r, _ in rejects_for(collector, event["id"])] == [reason]


def test_the_token_of_another_site_is_accepted_on_its_own_origin(collector: Collector) -> None:
    event = collector.event(site="other")
    assert collector.post(event, origin=OTHER_ORIGIN).json()["accepted"] == 1
    assert stored(collector, event["id"])[0][1] == "other"


def test_an_oversized_body_gets_413_and_the_server_keeps_serving(collector: Collector) -> None:
    filler = collector.event(page="x" * 2000)
    too_big = [dict(filler, id=new_id()) for _ in range(40)]  # about 100 KiB
    response = collector.post(too_big)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert collector.post(collector.event()).json()["accepted"] == 1
    assert (
        collector.query("SELECT count(*) FROM rejects WHERE reason = 'body_too_large'")[0][0] >= 1
    )


def test_unreadable_requests_get_clear_errors_and_are_recorded(collector: Collector) -> None:
    url = f"{collector.url}/e"
    marker = new_id()
    bad_json = collector.http.post(
        url, content=f'{{"id": "{marker}", oops', headers={"origin": SHOP_ORIGIN}
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "invalid_json"
    wrong_type = collector.http.post(
        url, content=b"a=1", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert wrong_type.status_code == 415 and wrong_type.json()["error"] == "unsupported_media_type"
    not_event = collector.post(42)
    assert not_event.status_code == 400 and not_event.json()["error"] == "not_an_event"
    too_many = collector.post([{"id": new_id()}] * 501)
    assert too_many.status_code == 413 and too_many.json()["error"] == "too_many_events"
    [(reason, kept)] = rejects_for(collector, marker)
    assert reason == "invalid_json" and marker in kept
    assert (
        collector.query("SELECT count(*) FROM rejects WHERE reason = 'unsupported_media_type'")[0][
            0
        ]
        >= 1
    )


def test_cors_allows_simple_and_preflighted_posts_without_credentials(collector: Collector) -> None:
    response = collector.post(collector.event())
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    preflight = collector.http.options(
        f"{collector.url}/e",
        headers={"origin": SHOP_ORIGIN, "access-control-request-method": "POST",
                 "access-control-request-headers": "content-type"},
    )  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert preflight.headers["access-control-allow-headers"] == "content-type"


def test_a_ping_is_stored_as_a_click_with_its_pages(collector: Collector) -> None:
    token = collector.token(item="ping-book", position=2)
    response = collector.http.post(
        f"{collector.url}/ping?t={token}",
        content=b"PING",
        headers={
            "content-type": "text/ping",
            "origin": SHOP_ORIGIN,
            "ping-from": f"{SHOP_ORIGIN}/book/a",
            "ping-to": f"{SHOP_ORIGIN}/book/ping-book",
        },
    )
    assert response.status_code == 204
    rows = collector.query(
        "SELECT kind, via, page, dest, position FROM events WHERE item = 'ping-book'"
    )
    assert rows == [("click", "ping", f"{SHOP_ORIGIN}/book/a", f"{SHOP_ORIGIN}/book/ping-book", 2)]
    forged = collector.http.post(f"{collector.url}/ping?t=v1.x.y", content=b"PING")
    assert forged.status_code == 400 and forged.json()["error"] == "token_malformed"


def test_a_refused_image_event_gets_a_json_reason(collector: Collector) -> None:
    event = collector.event(token="v1.forged.token")
    response = collector.http.get(f"{collector.url}/p.gif?{urlencode(event)}")
    assert response.status_code == 400
    assert response.json()["error"] == "token_malformed"
    assert [r for r, _ in rejects_for(collector, event["id"])] == ["token_malformed"]


def test_serve_events_need_the_sites_api_key(collector: Collector) -> None:
    no_key = collector.event(kind="serve", via="server")
    refused = collector.post(no_key, origin=None)
    assert refused.json()["rejected"][0]["reason"] == "serve_needs_api_key"
    wrong_site_key = collector.post(
        collector.event(kind="serve"),
        origin=None,
        headers={"authorization": f"Bearer {collector.sites['other'].api_key}"},
    )
    assert wrong_site_key.json()["rejected"][0]["reason"] == "serve_needs_api_key"
    served = collector.event(kind="serve", via="server")
    accepted = collector.post(
        served, origin=None, headers={"authorization": f"Bearer {collector.sites['shop'].api_key}"}
    )
    assert accepted.json()["accepted"] == 1
    assert collector.query("SELECT kind, visitor, bot FROM events WHERE id = ?", served["id"]) == [
        ("serve", None, 0)
    ]


def test_visitors_are_keyed_without_storing_their_ip_and_bots_are_flagged(
    collector: Collector,
) -> None:
    person = collector.event()
    crawler = collector.event()
    collector.post(person, headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"})
    collector.post(
        crawler, headers={"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}
    )
    rows = dict(
        (row[0], row[1:])
        for row in collector.query(
            "SELECT id, bot, visitor FROM events WHERE id IN (?, ?)", person["id"], crawler["id"]
        )
    )
    assert rows[person["id"]][0] == 0 and rows[crawler["id"]][0] == 1
    assert all(len(visitor) == 16 for _, visitor in rows.values())
    everything = collector.query("SELECT * FROM events")
    assert not any("127.0.0.1" in str(value) for row in everything for value in row)


def test_the_snippet_is_served_with_etag_gzip_and_caching(collector: Collector) -> None:
    plain = collector.http.get(f"{collector.url}/ct.js", headers={"accept-encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/javascript")
    assert "max-age" in plain.headers["cache-control"]
    assert "sendBeacon" in plain.text
    zipped = collector.http.get(f"{collector.url}/ct.js", headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text == plain.text  # httpx decompresses
    again = collector.http.get(
        f"{collector.url}/ct.js", headers={"if-none-match": plain.headers["etag"]}
    )
    assert again.status_code == 304


def test_health_and_metrics(collector: Collector) -> None:
    assert collector.http.get(f"{collector.url}/healthz").json()["ok"] is True
    collector.post(collector.event(token="v1.bad.bad"))
    text = collector.http.get(f"{collector.url}/metrics").text
    assert "clickthru_events_accepted_total" in text
    assert 'clickthru_events_rejected_total{reason="token_malformed"}' in text
    assert "clickthru_commit_seconds_bucket" in text


def test_wrong_methods_are_refused(collector: Collector) -> None:
    response = collector.http.put(f"{collector.url}/e")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


def test_a_long_url_is_cut_not_refused(collector: Collector) -> None:
    long_page = f"{SHOP_ORIGIN}/search?q=" + "x" * 5000
    event = collector.event(page=long_page)
    assert collector.post(event).json()["accepted"] == 1
    [(page,)] = collector.query("SELECT page FROM events WHERE id = ?", event["id"])
    assert page == long_page[:2048]


def test_the_transport_is_read_from_the_browsers_fetch_mode_when_the_event_says_none(
    collector: Collector,
) -> None:
    sent = {}
    for mode, claimed in (("cors", None), ("no-cors", None), ("cors", "beacon"), (None, None)):
        event = collector.event()
        del event["via"]
        if claimed:
            event["via"] = claimed
        headers = {"sec-fetch-mode": mode} if mode else {}
        assert collector.post(event, headers=headers).status_code == 200
        sent[(mode, claimed)] = event["id"]
    via = {key: stored(collector, event_id)[0][6] for key, event_id in sent.items()}
    assert via == {
        ("cors", None): "fetch",
        ("no-cors", None): "beacon",
        ("cors", "beacon"): "beacon",  # what the event says comes first
        (None, None): None,
    }
