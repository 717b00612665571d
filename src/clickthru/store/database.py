"""What the store's roles need of a database: the thin difference between SQLite and
PostgreSQL.

Every role (the event sink, the aggregator, site administration, access, reports) is
written once against this protocol, in SQL both databases run with ``?`` parameters.
What differs lives behind it: how a connection is had, how a write transaction runs
(on SQLite, always on the one writer thread that owns the file), how events are inserted
with their ids deduplicated, and how one process becomes the only aggregator.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from clickthru.store.rows import EventRow, RejectRow

T = TypeVar("T")


class Connection(Protocol):
    """sqlite3's connection, or the PostgreSQL adapter that takes the same SQL."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


Work = Callable[[Any], T]


@dataclass(frozen=True, slots=True)
class Groupable:
    """Work that may share a transaction with other work of its kind: ``many(conn,
    items)`` does all of theirs in one go and returns each one's result, in order."""

    many: Callable[[Any, list[Any]], list[Any]]
    item: Any


# Told after each commit that stored events: (events in it, seconds it took).
CommitObserver = Callable[[int, float], None]
# Told when a durable write failed, with its cause ("disk_full", "timeout", ...).
FailureObserver = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Table:
    """A table of the schema: its columns, and those of its primary key (or ``seq``)."""

    columns: tuple[str, ...]
    key: tuple[str, ...]


class Lease(Protocol):
    """Held by the one process doing a job only one may do at a time."""

    def release(self) -> None: ...


@dataclass
class WriteHealth:
    """Whether the last durable write succeeded: a collector whose writes fail must say so
    (a load balancer then sends visitors elsewhere), and say so until one succeeds."""

    failing: str | None = None  # the cause of the last failure, until a write succeeds
    failures: dict[str, int] = field(default_factory=dict)
    commit_observer: CommitObserver | None = None
    failure_observer: FailureObserver | None = None

    def succeeded(self, events: int, seconds: float) -> None:
        self.failing = None
        if self.commit_observer is not None and events:
            self.commit_observer(events, seconds)

    def failed(self, cause: str) -> None:
        self.failing = cause
        self.failures[cause] = self.failures.get(cause, 0) + 1
        if self.failure_observer is not None:
            self.failure_observer(cause)


class Database(Protocol):
    kind: str  # "sqlite" or "postgresql"
    health: WriteHealth
    # What makes a SELECT lock the row it reads; SQLite's write lock covers the file.
    lock_row: str
    # How long one counting transaction may take: on SQLite it holds the one writer, and
    # acknowledgements wait behind it.
    count_budget: float

    def connection(self) -> Any:
        """This thread's connection, for reads."""
        ...

    def write(self, work: Work[T]) -> T:
        """Run ``work(conn)`` in one write transaction and return what it returns."""
        ...

    def stream(self, sql: str, params: Sequence[Any]) -> Iterator[Any]:
        """The rows of one read, as the database produces them, on a connection of its own
        (one snapshot, memory flat however many rows), closed once read or dropped."""
        ...

    async def write_async(
        self, work: Work[T], *, events: int = 0, group: Groupable | None = None
    ) -> T:
        """``write`` for the event loop. ``group``: the work may share a transaction (and
        its commit) with other work of its kind; a failure of its own still fails it
        alone."""
        ...

    def prepare(self, events: Sequence[EventRow]) -> None:
        """Whatever these events need before a transaction can store them (PostgreSQL:
        their day partitions, which lock ``events`` and so are made in a transaction of
        their own)."""
        ...

    def insert_events(self, conn: Any, events: Sequence[EventRow]) -> set[str]:
        """Insert the events whose id is new; returns those ids."""
        ...

    def insert_rejects(self, conn: Any, rejects: Sequence[RejectRow]) -> None: ...

    def take_turn(self, conn: Any) -> None:
        """Wait, inside a write transaction, until no other writer of events is in one:
        then ``seq`` is handed out in commit order, and a follower of ``seq`` skips none."""
        ...

    def lead(self, role: str) -> Lease | None:
        """Become the one process doing ``role`` on this database, or None."""
        ...

    def drop_days(self, before: int, *, dry_run: bool = False) -> int:
        """Remove whole UTC days of events received before ``before`` (unix ms, a day's
        start), every one of them counted already, where the database keeps days apart;
        returns how many events went (or would go). One table for every day: 0."""
        ...

    def tables(self) -> dict[str, Table]:
        """Every table of the store's schema (a partitioned table once, not its parts)."""
        ...

    def free_bytes(self) -> int | None:
        """Free space where the data lives, or None when that cannot be known here."""
        ...

    def close(self) -> None: ...


def free_bytes_at(path: str) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None
