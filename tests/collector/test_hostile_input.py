"""Hostile and malformed input: each is answered with a 4xx and a JSON reason (and kept in
``rejects`` where it was an event), never a 5xx, never a 503 while the store is healthy.
The whole app in this process, on a real SQLite file."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from clickthru.collector.asgi import Message, Receive, Scope, Send, respond
from clickthru.collector.guard import guarded
from clickthru.params import MAX_QUERY_BYTES, MAX_QUERY_FIELDS
from tests.conftest import SHOP_ORIGIN
from tests.inprocess import App, Client, running_app

BEACON = {"origin": SHOP_ORIGIN, "content-type": "text/plain"}
# Values of a number or a time that broke the API and the dashboard.
ODD_NUMBERS = ["1e+308", "9223372036854775808", "99999999999999999999999", "²",
               "\u0661\u0662", "+5", " 5", "5_000", "-1", "NaN", "0x10", "\x00"]  # fmt: skip
ODD_TIMES = ["0000-01-01", "0001-01-01", "9999-12-31", "1969-12-31", "2024-13-01",
             "²²²²-01-01", "1e+308", "99999999999d", "2147483648", "\u0661d",
             "2999-12-31T23:59-14:00", "x" * 5000]  # fmt: skip
# The numbers and times each API endpoint reads.
API_READS = {
    "report": {"since", "until", "limit"},
    "health": {"since", "until"},
    "latest": {"since", "until", "limit", "after"},
    "export": {"since", "until"},
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("hostile")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(app: App) -> Client:
    return app.client()


@pytest.fixture(scope="module")
def operator(app: App) -> Client:
    client = app.client()
    assert client.sign_in("ops").status_code == 303
    return client


def rejects_with(app: App, marker: str) -> list[tuple[str, str]]:
    return app.query("SELECT reason, detail FROM rejects WHERE input LIKE ?", f"%{marker}%")


def test_deeply_nested_json_is_refused_and_recorded(app: App, browser: Client) -> None:
    for body in (
        '{"marker": "deep-object", "a": ' + '{"a": ' * 5000 + "1" + "}" * 5001,
        '["deep-array", ' + "[" * 5000 + "]" * 5001,
        '[{"id": "deep-in-event", "x": ' + "[" * 900 + "]" * 900 + "}]",
    ):
        answer = browser.post("/e", content=body, headers=BEACON)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_json"
        assert "nested deeper than 32" in answer.json()["detail"]
    for marker in ("deep-object", "deep-array", "deep-in-event"):
        assert [reason for reason, _ in rejects_with(app, marker)] == ["invalid_json"]


def test_an_array_where_an_event_belongs_is_a_reject(app: App, browser: Client) -> None:
    inner, good = app.event(), app.event()
    answer = browser.post("/e", json=[[inner], good], headers=BEACON)
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 1
    [rejected] = answer.json()["rejected"]
    assert rejected["index"] == 0 and rejected["reason"] == "invalid_event"
    assert "got `array`" in rejected["detail"]
    assert [reason for reason, _ in rejects_with(app, inner["id"])] == ["invalid_event"]


@pytest.mark.parametrize("ts", [10**30, 2**63, 2**64 + 1, -(2**63) - 1, -1, 32_503_680_000_000])
def test_a_client_time_outside_any_real_time_is_a_reject_not_a_503(
    app: App, browser: Client, ts: int
) -> None:
    """A 503 would make the snippet keep the event and send it again, forever."""
    beacon = app.event(ts=ts)
    answer = browser.post("/e", json=[beacon, app.event()], headers=BEACON)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    assert [r["reason"] for r in answer.json()["rejected"]] == ["invalid_event"]
    image = app.event(ts=ts)
    gif = browser.get(f"/p.gif?{urlencode(image)}", headers={"referer": f"{SHOP_ORIGIN}/x"})
    assert gif.status_code == 400 and gif.json()["error"] == "invalid_event"
    for event in (beacon, image):
        assert [reason for reason, _ in rejects_with(app, event["id"])] == ["invalid_event"]
    assert browser.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "field, value",
    [("page", "=cmd|' /C calc'!A0"), ("dest", "javascript:alert(1)"), ("page", "/relative"),
     ("dest", "http://shop.test/a b"), ("page", "http://shop.test/\x00"),
     ("dest", "http://shop.test/\n"), ("page", "https://shop.test/" + "x" * 20_000)],
)  # fmt: skip
def test_page_and_dest_must_be_http_urls(app: App, browser: Client, field: str, value: str) -> None:
    event = app.event(**{field: value})
    answer = browser.post("/e", json=event, headers=BEACON)
    [rejected] = answer.json()["rejected"]
    assert rejected["reason"] == "invalid_event" and f"$.{field}" in rejected["detail"]
    assert "regex" not in rejected["detail"]  # said in words
    assert app.query("SELECT count(*) FROM events WHERE id = ?", event["id"]) == [(0,)]
    assert [reason for reason, _ in rejects_with(app, event["id"])] == ["invalid_event"]


def test_urls_as_browsers_send_them_are_kept(app: App, browser: Client) -> None:
    event = app.event(page="HTTPS://shop.test/b%C3%BCcher?q=a+b#x", dest="http://shop.test/é")
    assert browser.post("/e", json=event, headers=BEACON).json()["accepted"] == 1


def test_a_body_declared_too_large_is_refused_unread(app: App, browser: Client) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"x" * 1_048_576

    headers = {**BEACON, "content-length": str(100 * 1_048_576)}
    answer = browser.post("/e", content=endless(), headers=headers)
    assert answer.status_code == 413 and answer.json()["error"] == "body_too_large"
    assert pulled <= 1  # what the transport reads ahead, not the 100 MiB
    form = browser.post("/dashboard/sign-in", content=endless(), headers=headers)
    assert form.status_code == 413 and form.json()["error"] == "body_too_large"


def test_a_form_streamed_past_its_limit_is_not_read_on(browser: Client) -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b"name=a&" * 200

    answer = browser.post("/dashboard/sign-in", content=chunks())  # no Content-Length
    assert answer.status_code == 400 and "expired" in answer.text
    assert pulled <= 5


def test_query_strings_are_bounded_on_every_route(app: App, operator: Client) -> None:
    long = "a=" + "x" * MAX_QUERY_BYTES
    many = "&".join(f"f{n}=1" for n in range(MAX_QUERY_FIELDS + 1))
    # Every route that reads its query string (/e and /ct.js do not).
    routes = ["/p.gif", "/ping", "/healthz", "/metrics", "/api/v1/report", "/dashboard/",
              "/dashboard/sign-in"]  # fmt: skip
    for path in routes:
        for query, status, reason in (
            (long, 414, "query_too_long"),
            (many, 400, "too_many_parameters"),
        ):
            method = "POST" if path == "/ping" else "GET"
            answer = operator.request(method, f"{path}?{query}")
            assert answer.status_code == status, (path, answer.text)
            assert answer.json()["error"] == reason
    recorded = app.query(
        "SELECT reason, count(*) FROM rejects WHERE reason IN (?, ?) GROUP BY reason",
        "query_too_long",
        "too_many_parameters",
    )
    assert dict(recorded) == {"query_too_long": 2, "too_many_parameters": 2}  # image, ping


@pytest.mark.parametrize("endpoint", sorted(API_READS))
def test_the_api_refuses_odd_numbers_and_times_with_400(app: App, endpoint: str) -> None:
    client = app.client(headers={"authorization": f"Bearer {app.keys['ops']}"})
    for name in sorted(API_READS[endpoint]):
        values = ODD_TIMES + ODD_NUMBERS if name in ("since", "until") else ODD_NUMBERS
        for value in values:
            answer = client.get(f"/api/v1/{endpoint}?site=shop&{name}={quote(value)}")
            assert answer.status_code == 400, (name, value, answer.text)
            assert answer.json()["error"] == "bad_parameter"


@pytest.mark.parametrize("page", ["", "placements", "items", "positions", "health"])
def test_dashboard_pages_refuse_odd_ranges_and_sites_with_4xx(operator: Client, page: str) -> None:
    for name in ("since", "until"):
        for value in ODD_TIMES + ODD_NUMBERS:
            answer = operator.get(f"/dashboard/{page}?{name}={quote(value)}")
            assert answer.status_code == 400, (name, value, answer.text)
            assert "Bad request" in answer.text
    for site in ("2147483648", "1e+308", "\x00", "²", "<script>", "x" * 3000):
        answer = operator.get(f"/dashboard/{page}?site={quote(site)}")
        assert answer.status_code == 404, (site, answer.text)


def test_starlettes_own_refusals_are_json_too(browser: Client) -> None:
    missing = browser.get("/no/such/path")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = browser.request("PUT", "/dashboard/sign-out")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


def test_an_unexpected_error_is_logged_with_its_traceback_and_answered_500_once(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """A real fault: a report table gone from under the running app."""
    client = app.client(headers={"authorization": f"Bearer {app.keys['ops']}"})
    assert client.get("/api/v1/report").status_code == 200
    with _table_renamed(app, "rollup_hourly"), caplog.at_level(logging.ERROR):
        answer = client.get("/api/v1/report")
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "internal_error",
        "detail": "the collector failed; it is logged",
    }
    assert "rollup_hourly" not in answer.text  # nothing of the inside leaks
    [record] = [r for r in caplog.records if r.name == "clickthru.collector.guard"]
    assert record.exc_info is not None and "no such table" in str(record.exc_info[1])
    assert client.get("/api/v1/report").status_code == 200


@contextlib.contextmanager
def _table_renamed(app: App, table: str) -> Iterator[None]:
    with contextlib.closing(sqlite3.connect(app.db)) as conn:
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
        try:
            yield
        finally:
            conn.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


def test_a_failure_after_the_answer_has_started_sends_no_second_start(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """``guarded`` around a route whose answer fails midway (the client gone after the
    head was sent): it logs the error and starts no second answer."""
    sent: list[Message] = []

    async def failing_after_start(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b"x", [])

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            raise ConnectionResetError("the client went away mid-answer")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/ct.js", "headers": []}
    with caplog.at_level(logging.ERROR):
        app.run(guarded, failing_after_start, scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert any(r.exc_info for r in caplog.records if r.name == "clickthru.collector.guard")


def test_every_refusal_of_the_intake_is_json_with_a_reason(browser: Client) -> None:
    for method, path, body in (
        ("GET", "/e", None),
        ("POST", "/p.gif", None),
        ("GET", "/ping", None),
        ("POST", "/e", "not json at all"),
        ("POST", "/e", json.dumps("a string")),
        ("POST", "/e", "[]"),
        ("POST", "/e", b'["\\ud800"]'),
    ):
        answer = browser.request(method, path, content=body, headers=BEACON)
        assert 400 <= answer.status_code < 500, (method, path, body)
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"]


def test_the_store_was_healthy_throughout(browser: Client) -> None:
    health = browser.get("/healthz").json()
    assert health["ok"] is True and health["write_failures"] == {}
