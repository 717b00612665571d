"""Hostile requests, as hypothesis strategies: for every route of the collector, the API
and the dashboard, inputs that are good, nearly good, malformed and malicious, mixed. Used
by the fuzz test in the suite (in-process) and by ``bench/hostile.py`` (a real server).

A drawn request knows which of its events are good ones (valid, with a fresh id, from
their site's page), so a run can check that every one of them was stored once.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

from clickthru import tokens
from clickthru.store.rows import NewSite

SHOP_ORIGIN = "http://shop.test"
OTHER_ORIGIN = "http://other.test"
PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
MAX_BATCH = 500  # the collector's default max_batch_events

# Values that broke or nearly broke something once, or are known to break parsers.
NASTY_TEXT = [
    "", " ", "\x00", "\t", "\r\n", "\u2028", "²", "\u0661\u0662", "\u0661d", "\uff21\uff22",
    "😀", "\ufeff",
    "1e+308", "-1e+308", "NaN", "Infinity", "-0", "+5", " 5", "5_000", "0x10", "1" * 40,
    "9223372036854775808", "-9223372036854775809", "2147483648", "0000-01-01", "0001-01-01",
    "9999-12-31", "1969-12-31T23:59:59Z", "2024-02-30", "2024-11-28T25:00", "30m", "0d",
    "99999999d", "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>',
    "=cmd|' /C calc'!A0", "+1+1", "-1+1", "@SUM(1)", "'; DROP TABLE events; --", "%00",
    "%ff%fe", "../../etc/passwd", "\\\\evil.test", "//evil.test", "javascript:alert(1)",
    "x" * 3000, "[" * 50, "{" * 50, "null", "true", "[]", "{}",
]  # fmt: skip
NASTY_NUMBERS: list[Any] = [
    0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30),
    0.5, -0.0, 1e308, 1.7976931348623157e308, 32_503_680_000_000, 32_503_679_999_999,
]  # fmt: skip

text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=40))
number = st.one_of(st.sampled_from(NASTY_NUMBERS), st.integers(), st.floats())
scalar = st.one_of(st.none(), st.booleans(), number, text)
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60
) | st.sampled_from(["", "null", "http://evil.test", "=1+1", "<script>", "x" * 2000])


@dataclass(frozen=True)
class Tokens:
    """Tokens of every kind, minted once for a run."""

    shop: list[str]  # valid, for events from shop's pages
    hostile: list[str]  # forged, expired, other sites', mangled

    @classmethod
    def of(cls, shop: NewSite, other: NewSite) -> Tokens:
        key, other_key = shop.site.signing_key, other.site.signing_key

        def mint(site: str, key_id: str, secret: bytes, **changes: Any) -> str:
            claims: dict[str, Any] = {
                "list_id": "L1", "item": "book-1", "position": 1, "placement": "home", **changes,
            }  # fmt: skip
            return tokens.mint(site=site, key_id=key_id, secret=secret, **claims)

        valid = [
            mint("shop", key.key_id, key.secret, item=item, position=position, placement=where)
            for item, position, where in [
                ("book-1", 1, "home"), ("<script>alert(1)</script>", 2, "=cmd"),
                ("book-3", 200, "product-page"), ("ü" * 200, 3, "-2+3"),
            ]
        ]  # fmt: skip
        mangled = [valid[0][:-2] + "AA", valid[0][:20], valid[0] + ".x", "v1.." + "A" * 30]
        hostile = [
            mint("shop", key.key_id, b"guessed"),
            mint("other", key.key_id, key.secret),
            mint("other", other_key.key_id, other_key.secret),  # valid, wrong origin
            mint("shop", key.key_id, key.secret, now=time.time() - 30 * 86400),  # expired
            mint("shop", "k404", key.secret),
            *mangled,
        ]
        return cls(valid, hostile)


@dataclass
class Request:
    """One request to send, and what it promises."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    good: dict[int, str] = field(default_factory=dict)  # index in the batch -> event id
    intake: bool = False  # to /e, /p.gif or /ping: refusals are recorded as rejects

    def __repr__(self) -> str:  # short enough to read in a failing example
        body = repr(self.content[:200]) if self.content else ""
        return f"Request({self.method} {self.url[:300]!r} {self.headers!r} {body})"

    @property
    def route(self) -> str:
        return self.url.split("?", 1)[0]


# Every good event's id: drawn fresh (never by hypothesis), so nothing else carries one.
GOOD_IDS: set[str] = set()


def _good_id() -> str:
    made = uuid.uuid4().hex
    GOOD_IDS.add(made)
    return made


def good_event(pool: Tokens) -> st.SearchStrategy[dict[str, Any]]:
    """A valid event from shop's page, with an id never sent before."""
    return st.builds(
        lambda token, kind, ts, page, dest: {
            "id": _good_id(),
            "kind": kind,
            "token": token,
            **({"ts": ts} if ts is not None else {}),
            "page": page,
            "dest": dest,
        },
        st.sampled_from(pool.shop),
        st.sampled_from(["click", "view"]),
        st.none() | st.integers(0, 32_503_679_999_999),
        st.sampled_from(
            [f"{SHOP_ORIGIN}/", f"{SHOP_ORIGIN}/book/a?q=%3Cb%3E", "HTTPS://Shop.test/ü"]
        ),
        st.sampled_from([f"{SHOP_ORIGIN}/book/b", f"{SHOP_ORIGIN}/=1+1", None]),
    ).map(lambda event: {k: v for k, v in event.items() if v is not None})


def maybe_event(pool: Tokens) -> st.SearchStrategy[Any]:
    """Anything where an event belongs: nearly right, wrong in one field, or not an event."""
    field_values = {
        "id": st.one_of(
            st.uuids().map(lambda u: u.hex),
            st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True),
            scalar,
        ),
        "kind": st.one_of(st.sampled_from(["click", "view", "serve", "purchase", "CLICK"]), scalar),
        "token": st.one_of(st.sampled_from(pool.shop + pool.hostile), scalar),
        "ts": st.one_of(st.integers(-(2**70), 2**70), number, st.sampled_from(NASTY_NUMBERS), text),
        "page": st.one_of(
            st.sampled_from([f"{SHOP_ORIGIN}/a", "javascript:alert(1)", "=1+1"]), text, number
        ),
        "dest": st.one_of(st.sampled_from([f"{SHOP_ORIGIN}/b", f"{SHOP_ORIGIN}/a b", "/b"]), text),
        "via": st.one_of(
            st.sampled_from(["beacon", "fetch", "img", "ping", "server", "x"]), scalar
        ),
        "extra": json_value,
    }
    partial = st.fixed_dictionaries({}, optional=field_values)
    return st.one_of(partial, partial, json_value, good_event(pool))


@st.composite
def beacon(draw: st.DrawFn, pool: Tokens) -> Request:
    """``POST /e``."""
    origin = draw(st.sampled_from([SHOP_ORIGIN, SHOP_ORIGIN, None, OTHER_ORIGIN, "null", "=1"]))
    headers = {"user-agent": draw(st.sampled_from([PERSON, "Googlebot/2.1", ""]) | header_text)}
    if origin is not None:
        headers["origin"] = origin
    headers["content-type"] = draw(
        st.sampled_from(["text/plain;charset=UTF-8", "application/json", "text/plain"])
        | st.sampled_from(["application/x-www-form-urlencoded", "TEXT/PLAIN", ""])
        | header_text
    )
    if draw(st.integers(0, 9)) == 0:
        headers["authorization"] = "Bearer " + draw(header_text)
    shape = draw(st.sampled_from(["one", "batch", "batch", "raw", "deep", "huge", "scalar"]))
    good: dict[int, str] = {}
    page_may_send = origin in (SHOP_ORIGIN, None)
    if shape in ("one", "batch"):
        kinds = good_event(pool) if page_may_send else maybe_event(pool)
        most = 1 if shape == "one" else 20
        items = draw(st.lists(st.one_of(kinds, maybe_event(pool)), min_size=1, max_size=most))
        for index, item in enumerate(items):
            if page_may_send and _is_good(item):
                good[index] = item["id"]
        payload: Any = items[0] if shape == "one" and len(items) == 1 else items
        content = _json(payload)
    elif shape == "raw":
        content = draw(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
    elif shape == "deep":
        depth = draw(st.integers(30, 20_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"a":', "}]")]))
        content = (opener * depth + "1" + closer * depth).encode()
    elif shape == "huge":
        content = _json([{"id": "x" * 8}] * draw(st.integers(MAX_BATCH + 1, 2000)))
    else:
        content = _json(draw(scalar))
    return Request("POST", "/e", headers, content, good, intake=True)


@st.composite
def image(draw: st.DrawFn, pool: Tokens) -> Request:
    """``GET /p.gif``: an event in the query string."""
    event = draw(st.one_of(good_event(pool), maybe_event(pool)))
    headers = {"referer": draw(st.sampled_from([f"{SHOP_ORIGIN}/x", f"{OTHER_ORIGIN}/", ""]))}
    good: dict[int, str] = {}
    if draw(st.integers(0, 9)) == 0:
        query = draw(_raw_query)
    elif isinstance(event, dict):
        fields = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in event.items()}
        query = urlencode(fields)
        if _is_good(event) and headers["referer"] != f"{OTHER_ORIGIN}/":
            good[0] = event["id"]
    else:
        query = quote(json.dumps(event))
    return Request("GET", f"/p.gif?{query}", headers, good=good, intake=True)


@st.composite
def ping(draw: st.DrawFn, pool: Tokens) -> Request:
    """``POST /ping?t=TOKEN``, with the browser's Ping-From and Ping-To."""
    token = draw(st.sampled_from(pool.shop + pool.hostile) | text)
    headers = {
        "origin": draw(st.sampled_from([SHOP_ORIGIN, OTHER_ORIGIN]) | header_text),
        "ping-from": draw(st.sampled_from([f"{SHOP_ORIGIN}/a"]) | header_text),
        "ping-to": draw(st.sampled_from([f"{SHOP_ORIGIN}/b"]) | header_text),
    }
    query = draw(st.just(urlencode({"t": token})) | _raw_query)
    body = draw(st.sampled_from([b"PING", b"", b"x" * 2000]))
    return Request("POST", f"/ping?{query}", headers, body, intake=True)


_raw_query = st.one_of(
    st.text(max_size=200).map(quote),
    st.lists(st.tuples(text, text), max_size=80).map(urlencode),
    st.sampled_from(["a=" + "x" * 20_000, "&" * 100, "%", "%zz", "t=%00", "=&=&="]),
)

API_ENDPOINTS = ["sites", "report", "health", "latest", "export", "nope", "../sites"]
API_PARAMS = ["site", "since", "until", "by", "bots", "limit", "after", "format"]
API_VALUES: dict[str, list[str]] = {
    "site": ["shop", "other", "nowhere", ""],
    "since": ["7d", "30m", "2024-11-28", "2024-11-28T10:00Z", "1970-01-01"],
    "until": ["2999-12-31", "2100-01-01T00:00+14:00", "1h"],
    "by": ["placement", "item", "position", "day", "hour", "colour"],
    "bots": ["0", "1", "true", "false", "2"],
    "limit": ["1", "1000", "1001", "0"],
    "after": ["0", "9223372036854775807", "9223372036854775808"],
    "format": ["json", "csv", "ndjson", "xml"],
}


def _query_pairs() -> st.SearchStrategy[list[tuple[str, str]]]:
    name = st.sampled_from(API_PARAMS) | text
    value = st.sampled_from([v for values in API_VALUES.values() for v in values]) | text
    return st.lists(st.tuples(name, value), max_size=8)


@st.composite
def api(draw: st.DrawFn, keys: dict[str, str]) -> Request:
    """``GET /api/v1/...`` with parameters good and hostile, as the operator, a customer,
    a stranger or someone with a made-up key."""
    endpoint = draw(st.sampled_from(API_ENDPOINTS) | text.map(lambda t: quote(t, safe="")))
    who = draw(st.sampled_from([*keys.values(), "", "ctr_made-up"]) | header_text)
    headers = {"authorization": f"Bearer {who}"} if who else {}
    method = draw(st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "DELETE"]))
    return Request(method, f"/api/v1/{endpoint}?{urlencode(draw(_query_pairs()))}", headers)


@st.composite
def dashboard(draw: st.DrawFn) -> Request:
    """The dashboard's pages (sent by a signed-in client), its forms, its static files."""
    kind = draw(st.sampled_from(["page", "page", "page", "sign-in", "sign-out", "static", "other"]))
    if kind == "page":
        page = draw(st.sampled_from(["", "placements", "items", "positions", "health", "x"]))
        return Request("GET", f"/dashboard/{page}?{urlencode(draw(_query_pairs()))}")
    if kind in ("sign-in", "sign-out"):
        form = draw(
            st.dictionaries(
                st.sampled_from(["name", "password", "csrf", "next"]) | text, text, max_size=5
            )
        )
        headers = {"content-type": "application/x-www-form-urlencoded"}
        return Request("POST", f"/dashboard/{kind}", headers, urlencode(form).encode())
    if kind == "static":
        name = draw(
            st.sampled_from(["dashboard.css", "live.js", "../app.py", "%2e%2e/x", "%00"])
            | text.map(lambda t: quote(t, safe=""))
        )
        return Request("GET", f"/dashboard/static/{name}")
    path = draw(st.sampled_from(["/dashboard", "/healthz", "/metrics", "/ct.js", "/", "/x"]))
    method = draw(st.sampled_from(["GET", "HEAD", "OPTIONS", "PUT", "POST"]))
    return Request(method, f"{path}?{urlencode(draw(_query_pairs()))}")


def any_request(pool: Tokens, keys: dict[str, str]) -> st.SearchStrategy[Request]:
    return st.one_of(beacon(pool), beacon(pool), image(pool), ping(pool), api(keys), dashboard())


def _is_good(item: Any) -> bool:
    """Made by good_event (and so valid, with an id of its own)."""
    return isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"] in GOOD_IDS


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")
