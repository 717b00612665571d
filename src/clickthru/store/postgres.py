"""The shared store: one PostgreSQL database behind several collectors.

Collectors do not write here directly. Each acknowledges an event once it is committed to
its own SQLite spool, and a forwarder ships the spool here with ``ship(collector,
upto_seq, batch)``. One transaction stores the batch, adds it to the rollups and records
``upto_seq`` as how far that spool has been shipped, so a shipment sent again after its
commit (the spool not trimmed yet) changes nothing. Event ids make everything else
idempotent: an event that reached two collectors (the browser failed over) is stored once
and counted as a duplicate.

The rollups, reports and access run the same SQL as on SQLite, through ``QmarkConnection``,
which takes SQLite's ``?`` parameters.

Writers take turns on an advisory lock, as SQLite's single writer does: every batch adds to
the same few counter rows anyway, and taking turns keeps ``seq`` in commit order and keeps
two shipments from deadlocking on those rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from clickthru.clock import DAY_MS, DAY_SECONDS, now_ms
from clickthru.store import (
    Batch,
    CommitObserver,
    EventRow,
    NewSite,
    RejectRow,
    Site,
    StoreError,
    WriteResult,
    rollups,
)
from clickthru.store.site_tables import SiteTables

if TYPE_CHECKING:
    from clickthru.access import Access
    from clickthru.reports.sql import SQLReports

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

# Unless the URL says otherwise: give up connecting after 10 s, and notice a server that
# vanished (a datacenter cut off) within about a minute rather than the kernel's hours. The
# server, in turn, ends a session left idle in a transaction, so that a collector cut off
# mid-shipment does not hold the writers' lock until the server notices it is gone.
SHIP_DEADLINE = 30.0  # seconds; a shipment of 5,000 events takes well under one
READ_DEADLINE = 10.0

CONNECTION_DEFAULTS = {
    "application_name": "clickthru",
    "connect_timeout": "10",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
    "options": "-c idle_in_transaction_session_timeout=60000",
}

# Advisory locks, each held until its transaction ends: (clickthru, what).
LOCK_MIGRATIONS = "SELECT pg_advisory_xact_lock(25460, 1)"
LOCK_PARTITIONS = "SELECT pg_advisory_xact_lock(25460, 2)"
LOCK_WRITES = "SELECT pg_advisory_xact_lock(25460, 3)"

BOT = EventRow._fields.index("bot")
INSERT_IDS = (
    "INSERT INTO event_ids (id, received_at) SELECT * FROM unnest(?::text[], ?::bigint[])"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)
RECORD_SHIPPED = (
    "INSERT INTO forwarded (collector, seq, at) VALUES (?, ?, ?)"
    " ON CONFLICT (collector) DO UPDATE SET seq = excluded.seq, at = excluded.at"
)
PARTITIONS = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'events'::regclass"
)


class StoreUnavailable(StoreError):
    """PostgreSQL cannot be reached, or gave up on the transaction for a reason that may
    pass (connection lost, server shutting down, deadlock, out of connections): try again.
    A shipment whose commit was cut off may have committed; sending it again is harmless."""


# -- qmark SQL on psycopg ------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _pyformat(sql: str) -> str:
    """``?`` -> ``%s``. The portable SQL has no ``%`` and no ``?`` in a literal: either
    would be taken for a parameter, so refuse rather than guess."""
    if "%" in sql or any("?" in literal for literal in sql.split("'")[1::2]):
        raise ValueError(f"not portable SQL (a % or a quoted ?): {sql[:80]!r}")
    return sql.replace("?", "%s")


class QmarkConnection:
    """A psycopg connection that runs the portable SQL, whose parameters are ``?`` as in
    sqlite3. It autocommits; ``transaction(conn)`` opens a transaction."""

    def __init__(self, pg: psycopg.Connection[Row]) -> None:
        self.pg = pg

    @property
    def closed(self) -> bool:
        return self.pg.closed

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> psycopg.Cursor[Row]:
        return self.pg.execute(_pyformat(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> psycopg.Cursor[Row]:
        cursor = self.pg.cursor()
        cursor.executemany(_pyformat(sql), rows)  # pipelined: one round trip, not one a row
        return cursor

    def copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Bulk insert: COPY is the fastest way into PostgreSQL."""
        with (
            self.pg.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def close(self) -> None:
        self.pg.close()


@contextlib.contextmanager
def transaction(conn: QmarkConnection) -> Iterator[QmarkConnection]:
    """BEGIN, then COMMIT, or ROLLBACK on any error (a savepoint when nested)."""
    with conn.pg.transaction():
        yield conn


# -- schema --------------------------------------------------------------------------------


def migrations() -> list[tuple[int, str]]:
    """The numbered schema scripts for PostgreSQL shipped with the package, in order."""
    folder = resources.files("clickthru.store") / "pg_migrations"
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


def migrate(conn: QmarkConnection) -> int:
    """Apply the migrations not applied yet, in one transaction; returns the version.

    Collectors starting together take turns on a lock: the first migrates, the others
    find the work done."""
    with transaction(conn):
        conn.execute(LOCK_MIGRATIONS)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version integer PRIMARY KEY, applied_at bigint NOT NULL)"
        )
        applied = {version for (version,) in conn.execute("SELECT version FROM schema_migrations")}
        for number, script in migrations():
            if number not in applied:
                conn.pg.execute(script)  # no parameters: psycopg runs several statements
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (number, now_ms()),
                )
                applied.add(number)
    return max(applied, default=0)


def partition_name(day: int) -> str:
    """The partition of ``events`` for a UTC day (days since 1970): events_20261101."""
    return "events_" + datetime.fromtimestamp(day * DAY_SECONDS, UTC).strftime("%Y%m%d")


# -- the store -----------------------------------------------------------------------------


class PostgresStore:
    """The shared store. Safe to use from several threads (a connection per thread) and
    from several processes and machines at once."""

    def __init__(self, url: str) -> None:
        try:
            self._conninfo = make_conninfo("", **{**CONNECTION_DEFAULTS, **conninfo_to_dict(url)})
        except psycopg.ProgrammingError as error:
            raise StoreError(f"not a PostgreSQL URL: {error}") from None
        self._local = threading.local()
        self._site_tables = SiteTables(self._conn, transaction, lock_row=" FOR UPDATE")
        self._lock = threading.Lock()
        self._opened: list[QmarkConnection] = []
        self._migrated = False
        self._days: set[int] = set()  # days whose partition is known to exist
        self._on_commit: CommitObserver | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, on_commit: CommitObserver | None = None) -> None:
        self._on_commit = on_commit
        self._conn()  # connect and migrate now: a wrong URL shows at start, not at a write

    def close(self) -> None:
        """Closes every connection; a later call opens new ones."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()

    def _conn(self) -> QmarkConnection:
        """This thread's connection; a new one once the last was closed or broke."""
        conn: QmarkConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> QmarkConnection:
        try:
            conn = QmarkConnection(psycopg.connect(self._conninfo, autocommit=True))
        except psycopg.Error as error:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {error}") from error
        try:
            if not self._migrated:  # once per store
                migrate(conn)
                self._migrated = True
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._opened = [c for c in self._opened if not c.closed] + [conn]
        return conn

    # -- writes ------------------------------------------------------------------------

    def ship(self, collector: str, upto_seq: int, batch: Batch) -> WriteResult:
        """Store a batch from ``collector``'s spool, whose rows up to ``upto_seq`` it holds:
        all of it or nothing, in one transaction, and once.

        When this collector has already shipped ``upto_seq`` or beyond, nothing is done
        and the answer is ``WriteResult(0, 0)``: the spool may be trimmed all the same.
        Raises ``StoreUnavailable`` when trying again later may succeed, ``StoreError``
        when PostgreSQL refused the batch itself."""
        return self._store(collector, upto_seq, batch)

    async def write(self, batch: Batch) -> WriteResult:
        """Store a batch that comes from no spool (tests and tools)."""
        return await asyncio.to_thread(self._store, None, 0, batch)

    async def check(self) -> None:
        await asyncio.to_thread(self._ping)

    def shipped(self, collector: str) -> int | None:
        """How far ``collector``'s spool has been shipped here (None: never)."""
        conn = self._conn()
        row = conn.execute("SELECT seq FROM forwarded WHERE collector = ?", (collector,)).fetchone()
        return None if row is None else int(row[0])

    @contextlib.contextmanager
    def _deadline(self, seconds: float) -> Iterator[None]:
        """Cuts this thread's connection if the work takes longer: a server that accepts
        and never answers (a frozen host, a stuck proxy) would otherwise hold the thread
        for ever, since TCP keeps the line alive. The cut makes psycopg raise at once."""
        conn = self._conn()

        def cut() -> None:
            with contextlib.suppress(OSError, psycopg.Error):
                line = socket.socket(fileno=os.dup(conn.pg.fileno()))
                line.shutdown(socket.SHUT_RDWR)
                line.close()

        timer = threading.Timer(seconds, cut)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def sync_reads(self, seconds: float = READ_DEADLINE) -> AbstractContextManager[None]:
        """A deadline for reads a collector makes in the background (sites, salts)."""
        return self._deadline(seconds)

    def _ping(self) -> None:
        try:
            self._conn().execute("SELECT 1")
        except psycopg.Error as error:
            raise StoreUnavailable(f"PostgreSQL: {error}") from error

    def _store(self, collector: str | None, upto_seq: int, batch: Batch) -> WriteResult:
        started = time.perf_counter()
        try:
            with self._deadline(SHIP_DEADLINE):
                result = self._transaction(collector, upto_seq, batch)
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise StoreUnavailable(f"PostgreSQL: {error}") from error
        except psycopg.Error as error:
            raise StoreError(f"PostgreSQL refused the batch: {error}") from error
        if result is None:  # shipped before
            return WriteResult(0, 0)
        if self._on_commit is not None:
            try:
                self._on_commit(len(batch.events), time.perf_counter() - started)
            except Exception:  # an observer must never fail a write
                log.exception("commit observer failed")
        return result

    def _transaction(
        self, collector: str | None, upto_seq: int, batch: Batch
    ) -> WriteResult | None:
        events = [EventRow._make(_without_nul(event)) for event in batch.events]
        rejects = [RejectRow._make(_without_nul(reject)) for reject in batch.rejects]
        conn = self._conn()
        self._make_partitions(conn, {event.received_at // DAY_MS for event in events})
        with transaction(conn):
            conn.execute(LOCK_WRITES)
            if collector is not None:
                row = conn.execute(
                    "SELECT seq FROM forwarded WHERE collector = ?", (collector,)
                ).fetchone()
                if row is not None and row[0] >= upto_seq:
                    return None  # committed before; the spool did not hear of it
            new = _insert_ids(conn, events)
            stored: list[EventRow] = []
            duplicates: list[EventRow] = []
            for event in events:  # the first of an id in the batch is the one stored
                if event.id in new:
                    new.discard(event.id)
                    stored.append(event)
                else:
                    duplicates.append(event)
            if stored:
                conn.copy("events", EventRow._fields, map(_bot_as_integer, stored))
            if rejects:
                conn.copy("rejects", RejectRow._fields, rejects)
            rollups.add(conn, stored, duplicates, rejects, arrays=True)
            if collector is not None:
                conn.execute(RECORD_SHIPPED, (collector, upto_seq, now_ms()))
        return WriteResult(len(stored), len(duplicates))

    def _make_partitions(self, conn: QmarkConnection, days: set[int]) -> None:
        """Create the day partitions these events need.

        In a short transaction of its own, not the shipment's: creating a partition locks
        ``events`` against every reader until commit. An empty partition left by a failed
        shipment is harmless."""
        with self._lock:
            missing = days - self._days
        if not missing:
            return
        with transaction(conn):
            conn.execute(LOCK_PARTITIONS)  # two collectors must not create one day together
            existing = {name for (name,) in conn.execute(PARTITIONS)}
            for day in sorted(missing):
                name, low, high = partition_name(day), day * DAY_MS, (day + 1) * DAY_MS
                if name in existing:
                    continue
                # A day with rows in DEFAULT cannot get a partition (PostgreSQL refuses):
                # its events keep going there rather than every shipment failing.
                if conn.execute(
                    "SELECT 1 FROM events_default WHERE received_at >= ? AND received_at < ?"
                    " LIMIT 1",
                    (low, high),
                ).fetchone():
                    log.warning("events of %s stay in events_default", name)
                    continue
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events"
                    f" FOR VALUES FROM ({low}) TO ({high})"
                )
        with self._lock:
            self._days |= missing

    # -- sites -------------------------------------------------------------------------

    def sites(self) -> list[Site]:
        return self._site_tables.sites()

    def site(self, name: str) -> Site:
        return self._site_tables.site(name)

    def add_site(self, name: str, origins: list[str]) -> NewSite:
        return self._site_tables.add_site(name, origins)

    def set_origins(self, name: str, origins: list[str]) -> Site:
        return self._site_tables.set_origins(name, origins)

    def rotate_key(self, name: str) -> Site:
        return self._site_tables.rotate_key(name)

    # -- visitor salts -------------------------------------------------------------------

    def daily_salt(self, day: str) -> bytes:
        return self._site_tables.daily_salt(day)

    # -- reads -------------------------------------------------------------------------

    def count_events(self) -> int:
        return int(_scalar(self._conn().execute("SELECT count(*) FROM events")))

    def reports(self) -> SQLReports:
        from clickthru.reports.sql import SQLReports

        return SQLReports(self._conn)

    def access(self) -> Access:
        from clickthru.access import Access

        return Access(self._conn, transaction)

    def rebuild_rollups(self) -> None:
        """Recompute the rollups from the raw events; shipments wait meanwhile."""
        with transaction(self._conn()) as conn:
            conn.execute(LOCK_WRITES)
            rollups.rebuild(conn)


def _insert_ids(conn: QmarkConnection, events: list[EventRow]) -> set[str]:
    """Records the batch's event ids; returns those not stored before."""
    first: dict[str, int] = {}  # id -> received_at of its first event in the batch
    for event in events:
        first.setdefault(event.id, event.received_at)
    if not first:
        return set()
    cursor = conn.execute(INSERT_IDS, (list(first), list(first.values())))
    return {event_id for (event_id,) in cursor}


def _without_nul(row: Sequence[Any]) -> list[Any]:
    """PostgreSQL's text cannot hold NUL, which JSON and SQLite can: it becomes U+FFFD, as
    undecodable bytes do, rather than the batch being refused for ever."""
    return [v.replace("\x00", "\ufffd") if type(v) is str else v for v in row]


def _bot_as_integer(event: EventRow) -> list[Any]:
    # bot is an integer column (the reports sum it); psycopg would send a bool as 't'.
    row = list(event)
    row[BOT] = int(event.bot)
    return row


def _scalar(cursor: psycopg.Cursor[Row]) -> Any:
    """The value of a query that always answers one row."""
    row = cursor.fetchone()
    assert row is not None
    return row[0]
