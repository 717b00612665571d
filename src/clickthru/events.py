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

ID_PATTERN: Final = r"^[A-Za-z0-9_-]+\Z"
URL_PATTERN: Final = r"^(?i:https?)://[^\x00-\x20\x7f-\x9f]+\Z"
EventId = Annotated[str, msgspec.Meta(min_length=8, max_length=64, pattern=ID_PATTERN)]
# What a browser sends for location.href and a link's href: an absolute http(s) URL, with no
# space or control character in it (a browser percent-encodes them). Anything else is not
# a page, and could be a formula for a spreadsheet the export is opened in.
# Longer URLs are cut to MAX_URL when stored: a long query string must not cost a click.
Url = Annotated[
    str,
    msgspec.Meta(max_length=MAX_URL_INPUT, pattern=URL_PATTERN),
]
# The client's clock, unix ms: any real moment, never one the store cannot hold.
Moment = Annotated[int, msgspec.Meta(ge=EARLIEST_MS, le=LATEST_MS)]
Via = Literal["beacon", "fetch", "img", "ping", "server"]


class IncomingEvent(msgspec.Struct, frozen=True):
    id: EventId
    kind: Literal["click", "view", "serve"]
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    ts: Moment | None = None  # client clock, unix ms
    page: Url | None = None
    dest: Url | None = None  # where the clicked link leads
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
