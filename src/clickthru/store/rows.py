"""The shapes that cross the store's boundary: what is written, and what sites are."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple


class EventRow(NamedTuple):
    """One accepted event, in the column order of the ``events`` table."""

    id: str
    kind: str
    site: str
    list_id: str
    item: str
    position: int
    placement: str
    key_id: str
    issued_at: int
    client_ts: int | None
    received_at: int
    page: str | None
    dest: str | None
    via: str | None
    origin: str | None
    bot: bool
    visitor: str | None
    variant: str = ""  # from the token; "" without one
    # A conversion's own fields; its list, item, ... are those of the click it follows.
    order_id: str | None = None
    value: int | None = None  # millionths of the currency's unit
    currency: str | None = None
    items: str | None = None  # JSON array of the items bought
    click_id: str | None = None  # the click it is attributed to; None: unattributed
    click_at: int | None = None  # when that click was made, unix ms (the page's clock)


class RejectRow(NamedTuple):
    """One refused event or request, kept with its reason."""

    received_at: int
    reason: str
    detail: str | None
    site: str | None
    origin: str | None
    input: str | None


class RetryRow(NamedTuple):
    """An event sent again and stored once: only its site and time are kept, to count."""

    site: str
    received_at: int


EVENT_COLUMNS = ", ".join(EventRow._fields)
REJECT_COLUMNS = ", ".join(RejectRow._fields)
RETRY_COLUMNS = ", ".join(RetryRow._fields)


@dataclass(slots=True)
class Batch:
    events: list[EventRow] = field(default_factory=list)
    rejects: list[RejectRow] = field(default_factory=list)
    # Retries a spool has seen already (it stored the events once and ships them apart).
    retries: list[RetryRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WriteResult:
    accepted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class SiteKey:
    key_id: str
    secret: bytes
    created_at: int
    retired_at: int | None


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    origins: tuple[str, ...]
    api_key_hash: str
    keys: tuple[SiteKey, ...]  # newest first

    @property
    def signing_key(self) -> SiteKey:
        return self.keys[0]


@dataclass(frozen=True, slots=True)
class NewSite:
    """What ``add_site`` returns: the secrets are shown once."""

    site: Site
    api_key: str


def hash_api_key(api_key: str) -> str:
    """API keys are kept only as this hash."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def hash_site(name: str) -> str:
    """An erased site is remembered only as this hash of its name."""
    return hashlib.sha256(b"site:" + name.encode()).hexdigest()
