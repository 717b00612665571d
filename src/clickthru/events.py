"""What clients send: the schema of one incoming event.

Browsers send ``click`` and ``view``; the recommendation service sends ``serve``
("this list was shown") server to server, with its API key.  Everything about *what*
was recommended comes from the signed token, never from these fields.

A ``conversion`` (an order) has a schema of its own: the page of an order confirmation
reports it with the recent clicks it may follow; the shop's server confirms it with the
site's API key. Both name the order, so they merge into one.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Final, Literal

import msgspec

from clickthru.clock import EARLIEST_MS, LATEST_MS

BROWSER_KINDS: Final = frozenset({"click", "view"})
CONVERSION: Final = "conversion"
MAX_ORDER_ITEMS: Final = 100
MAX_CLICKS_FOLLOWED: Final = 20
MAX_VALUE: Final = 1_000_000_000  # of one order, in its currency's units
CURRENCY_PATTERN: Final = r"^[A-Z]{3}\Z"
MAX_URL: Final = 2048  # characters of a page or destination URL kept
MAX_URL_INPUT: Final = 16 * 1024  # characters of one read at all

# Written so that JSON Schema's dialect (ECMA-262) reads them as Python does, once the
# OpenAPI document spells Python's end of text, \Z, as ECMA's $ (``clickthru.openapi``).
ID_PATTERN: Final = r"^[A-Za-z0-9_-]+\Z"
URL_PATTERN: Final = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f-\x9f]+\Z"
EventId = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=64,
        pattern=ID_PATTERN,
        description="the event's own id, made once by the sender and kept for every retry:"
        " a retry is stored once",
    ),
]
# What a browser sends for location.href and a link's href: an absolute http(s) URL, with no
# space or control character in it (a browser percent-encodes them). Anything else is not
# a page, and could be a formula for a spreadsheet the export is opened in.
# Longer URLs are cut to MAX_URL when stored: a long query string must not cost a click.
Url = Annotated[
    str,
    msgspec.Meta(
        max_length=MAX_URL_INPUT,
        pattern=URL_PATTERN,
        description=f"an absolute http(s) URL; cut to {MAX_URL} characters when stored",
    ),
]
# The client's clock, unix ms: any real moment, never one the store cannot hold.
Moment = Annotated[
    int, msgspec.Meta(ge=EARLIEST_MS, le=LATEST_MS, description="the sender's clock, unix ms")
]
Via = Annotated[
    Literal["beacon", "fetch", "img", "ping", "server"],
    msgspec.Meta(description="how it was sent (default: read from Sec-Fetch-Mode)"),
]


class IncomingEvent(msgspec.Struct, frozen=True):
    """One event. Browsers send click and view; the recommendation service sends serve
    ("this list was shown") with the site's API key. What was recommended (site, list,
    item, position, placement) comes from the signed token; other fields are ignored."""

    id: EventId
    kind: Literal["click", "view", "serve"]
    token: Annotated[
        str,
        msgspec.Meta(
            min_length=1, max_length=1024, description="the signed token the link was served with"
        ),
    ]
    ts: Moment | None = None  # client clock, unix ms
    page: Url | None = None  # the page it happened on
    dest: Annotated[Url, msgspec.Meta(description="where the clicked link leads")] | None = None
    via: Via | None = None


Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class FollowedClick(msgspec.Struct, frozen=True):
    """A recommended click the visitor made before the order, as the page remembers it."""

    id: EventId
    token: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=1024, description="the clicked link's token"),
    ]
    ts: Moment


class IncomingConversion(msgspec.Struct, frozen=True):
    """An order: reported by its confirmation page (with the recommended clicks it may
    follow), or confirmed by the shop's server with the site's API key. Reports and
    confirmations of one (site, order) count once and merge."""

    id: EventId
    kind: Literal["conversion"]
    order: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, description="the shop's order id")
    ]
    value: Annotated[
        float,
        msgspec.Meta(ge=0, le=MAX_VALUE, description="what the order is worth, in `currency`"),
    ]
    currency: Annotated[
        str, msgspec.Meta(pattern=CURRENCY_PATTERN, description="ISO 4217 code: GBP, EUR, ...")
    ]
    items: Annotated[
        list[Text], msgspec.Meta(max_length=MAX_ORDER_ITEMS, description="the items bought")
    ] = []
    clicks: Annotated[
        list[FollowedClick],
        msgspec.Meta(
            max_length=MAX_CLICKS_FOLLOWED,
            description="recent recommended clicks on this site; the last within the"
            " attribution window gets the order",
        ),
    ] = []
    site: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=200,
                description="the shop; from a page, by default the site its origin belongs to",
            ),
        ]
        | None
    ) = None
    ts: Moment | None = None
    page: Url | None = None
    via: Via | None = None


# What a pattern means, for the reason a client reads instead of the regular expression.
_MEANINGS = {
    f"`str` matching regex {ID_PATTERN!r}": "letters, digits, _ and -",
    f"`str` matching regex {URL_PATTERN!r}": "an http(s) URL with no space or control character",
    f"`str` matching regex {CURRENCY_PATTERN!r}": "an ISO 4217 code of 3 capital letters",
}


def explain(detail: str) -> str:
    """A validation error's message, with patterns said in words."""
    for pattern, meaning in _MEANINGS.items():
        detail = detail.replace(pattern, meaning)
    return detail


def new_event_id() -> str:
    """A time-ordered id (48-bit ms clock, 80 random bits), like a UUIDv7 in hex."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"
