"""The store: where acknowledged events live.

The HTTP layer speaks only to the ``Store`` protocol below, so a PostgreSQL store can
sit behind the same collector.  ``write`` resolves only after the batch is committed:
the collector's acknowledgement means "on disk".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from clickthru.access import Access
    from clickthru.reports import Reports


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


class RejectRow(NamedTuple):
    """One refused event or request, kept with its reason."""

    received_at: int
    reason: str
    detail: str | None
    site: str | None
    origin: str | None
    input: str | None


@dataclass(slots=True)
class Batch:
    events: list[EventRow] = field(default_factory=list)
    rejects: list[RejectRow] = field(default_factory=list)


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


# Called by the writer after each commit with (events in the batch, seconds taken).
CommitObserver = Callable[[int, float], None]


class StoreError(RuntimeError):
    """The store cannot do what was asked (a clear message for the operator)."""


class Store(Protocol):
    def start(self, on_commit: CommitObserver | None = None) -> None: ...
    def close(self) -> None: ...

    async def write(self, batch: Batch) -> WriteResult:
        """Commit the batch durably; resolves after the commit."""
        ...

    async def check(self) -> None:
        """Raise if the store cannot take a write right now."""
        ...

    def sites(self) -> list[Site]: ...
    def site(self, name: str) -> Site: ...
    def add_site(self, name: str, origins: list[str]) -> NewSite: ...
    def set_origins(self, name: str, origins: list[str]) -> Site: ...
    def rotate_key(self, name: str) -> Site: ...
    def daily_salt(self, day: str) -> bytes: ...
    def count_events(self) -> int: ...
    def reports(self) -> Reports: ...
    def access(self) -> Access: ...
    def rebuild_rollups(self) -> None: ...


def hash_api_key(api_key: str) -> str:
    """API keys are kept only as this hash."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def open_store(url: str, *, commit_max_rows: int = 5000) -> Store:
    """Open a store from a path or URL: ``clickthru.db``, ``sqlite:///path/to.db``."""
    if url.startswith(("postgres://", "postgresql://")):
        from clickthru.store.postgres import PostgresStore

        return PostgresStore(url)
    from clickthru.store.sqlite import SQLiteStore

    # sqlite:///abs/path.db -> /abs/path.db; sqlite://rel.db -> rel.db
    return SQLiteStore(url.removeprefix("sqlite://"), max_batch_rows=commit_max_rows)
