"""What clients send: the schema of one incoming event.

Browsers send ``click`` and ``view``; the recommendation service sends ``serve``
("this list was shown") server to server, with its API key.  Everything about *what*
was recommended comes from the signed token, never from these fields.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Final, Literal

import msgspec

from clickthru.clock import EARLIEST_MS, LATEST_MS

BROWSER_KINDS: Final = frozenset({"click", "view"})
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


# What a pattern means, for the reason a client reads instead of the regular expression.
_MEANINGS = {
    f"`str` matching regex {ID_PATTERN!r}": "letters, digits, _ and -",
    f"`str` matching regex {URL_PATTERN!r}": "an http(s) URL with no space or control character",
}


def explain(detail: str) -> str:
    """A validation error's message, with patterns said in words."""
    for pattern, meaning in _MEANINGS.items():
        detail = detail.replace(pattern, meaning)
    return detail


def new_event_id() -> str:
    """A time-ordered id (48-bit ms clock, 80 random bits), like a UUIDv7 in hex."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"
