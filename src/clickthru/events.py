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

BROWSER_KINDS: Final = frozenset({"click", "view"})
MAX_URL: Final = 2048  # characters of a page or destination URL kept

EventId = Annotated[str, msgspec.Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# Longer URLs are cut to MAX_URL when stored: a long query string must not cost a click.
Url = str
Via = Literal["beacon", "fetch", "img", "ping", "server"]


class IncomingEvent(msgspec.Struct, frozen=True):
    id: EventId
    kind: Literal["click", "view", "serve"]
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    ts: int | None = None  # client clock, unix ms
    page: Url | None = None
    dest: Url | None = None  # where the clicked link leads
    via: Via | None = None


def new_event_id() -> str:
    """A time-ordered id (48-bit ms clock, 80 random bits), like a UUIDv7 in hex."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"
