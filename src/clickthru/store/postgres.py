"""The shared database: one PostgreSQL behind several collectors.

Collectors do not write events here directly: each acknowledges an event once its own
SQLite spool has committed it, and a forwarder ships the spool here (``EventSink.ship``).
A shipment is the deduplicating insert of its ids, a ``COPY`` of the new events and the
spool's shipment number, in one transaction. Shipments take turns on an advisory lock for
that short while, so ``seq`` is handed out in commit order and the aggregator, which
follows ``seq`` in transactions of its own, never skips a row. Counting never holds up a
shipment.

The roles run the same SQL as on SQLite, through ``QmarkConnection``, which takes
SQLite's ``?`` parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from clickthru.clock import DAY_MS, DAY_SECONDS, now_ms
from clickthru.errors import StoreError, StoreUnavailable
from clickthru.store.database import Groupable, T, Table, Work, WriteHealth
from clickthru.store.rows import EventRow, RejectRow

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

# Unless the URL says otherwise: give up connecting after 10 s, and notice a server that
# vanished (a datacenter cut off) within about a minute rather than the kernel's hours. The
# server, in turn, ends a session left idle in a transaction, so that a collector cut off
# mid-shipment does not hold the writers' lock until the server notices it is gone.
DROP_LOCK_WAIT = "2s"  # how long dropping a day waits for readers of events
WRITE_DEADLINE = 30.0  # seconds; a shipment of 5,000 events takes well under one
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

# Advisory locks: (clickthru, what).
LOCK_MIGRATIONS = "SELECT pg_advisory_xact_lock(25460, 1)"
LOCK_PARTITIONS = "SELECT pg_advisory_xact_lock(25460, 2)"
LOCK_WRITES = "SELECT pg_advisory_xact_lock(25460, 3)"
LEAD = {  # held by a session
    "aggregator": "SELECT pg_try_advisory_lock(25460, 4)",
    "purger": "SELECT pg_try_advisory_lock(25460, 5)",
}

BOT = EventRow._fields.index("bot")
INSERT_IDS = (
    "INSERT INTO event_ids (id, received_at) SELECT * FROM unnest(?::text[], ?::bigint[])"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)
PARTITIONS = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'events'::regclass"
)


# -- qmark SQL on psycopg ------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _pyformat(sql: str) -> str:
    """``?`` -> ``%s``. The portable SQL has no ``%`` and no ``?`` in a literal: either
    would be taken for a parameter, so refuse rather than guess."""
    if "%" in sql or any("?" in literal for literal in sql.split("'")[1::2]):
        raise ValueError(f"not portable SQL (a % or a quoted ?): {sql[:80]!r}")
    return sql.replace("?", "%s")


STREAM_ROWS = 1000  # rows a stream fetches at a time


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


def partition_day(name: str) -> int | None:
    """The UTC day of a partition made by ``partition_name``; None for any other table."""
    try:
        moment = datetime.strptime(name.removeprefix("events_"), "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp()) // DAY_SECONDS


def failure_cause(error: psycopg.Error) -> str:
    if isinstance(error, psycopg.errors.DiskFull):
        return "disk_full"
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return "unreachable"
    return "error"


# -- the database --------------------------------------------------------------------------


class _SessionLease:
    """A session-level advisory lock, held as long as its connection lives."""

    def __init__(self, conn: QmarkConnection) -> None:
        self._conn = conn

    def release(self) -> None:
        self._conn.close()


class PostgresDatabase:
    """Safe to use from several threads (a connection per thread) and from several
    processes and machines at once."""

    kind = "postgresql"
    lock_row = " FOR UPDATE"
    count_budget = 0.5  # counting blocks no shipment here: a longer pass costs nothing

    def __init__(self, url: str) -> None:
        try:
            self._conninfo = make_conninfo("", **{**CONNECTION_DEFAULTS, **conninfo_to_dict(url)})
        except psycopg.ProgrammingError as error:
            raise StoreError(f"not a PostgreSQL URL: {error}") from None
        self.health = WriteHealth()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[QmarkConnection] = []
        self._migrated = False
        self._days: set[int] = set()  # days whose partition is known to exist

    # -- connections -------------------------------------------------------------------

    def close(self) -> None:
        """Closes every connection; a later use opens new ones."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()

    def connection(self) -> QmarkConnection:
        """This thread's connection; a new one once the last was closed or broke."""
        conn: QmarkConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def stream(self, sql: str, params: Sequence[Any]) -> Iterator[Any]:
        conn = self._connect()
        try:
            # A server-side cursor: PostgreSQL hands the rows over a batch at a time.
            with conn.pg.transaction(), conn.pg.cursor(name="clickthru_stream") as cursor:
                cursor.execute(_pyformat(sql), params)
                while rows := cursor.fetchmany(STREAM_ROWS):
                    yield from rows
        finally:
            conn.close()

    def _connect(self) -> QmarkConnection:
        try:
            conn = QmarkConnection(psycopg.connect(self._conninfo, autocommit=True))
        except psycopg.Error as error:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {error}") from error
        try:
            if not self._migrated:  # once per process
                migrate(conn)
                self._migrated = True
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._opened = [c for c in self._opened if not c.closed] + [conn]
        return conn

    @contextlib.contextmanager
    def deadline(self, seconds: float = READ_DEADLINE) -> Iterator[None]:
        """Cuts this thread's connection if the work takes longer: a server that accepts
        and never answers (a frozen host, a stuck proxy) would otherwise hold the thread
        for ever, since TCP keeps the line alive. The cut makes psycopg raise at once."""
        conn = self.connection()

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

    # -- writes ------------------------------------------------------------------------

    def write(self, work: Work[T]) -> T:
        try:
            with self.deadline(WRITE_DEADLINE), transaction(self.connection()) as conn:
                result = work(conn)
        except psycopg.Error as error:
            cause = failure_cause(error)
            if cause == "error":  # PostgreSQL refused this work itself
                raise StoreError(f"PostgreSQL refused the write: {error}") from error
            self.health.failed(cause)
            raise StoreUnavailable(f"PostgreSQL: {error}") from error
        self.health.succeeded(0, 0.0)
        return result

    async def write_async(
        self, work: Work[T], *, events: int = 0, group: Groupable | None = None
    ) -> T:
        return await asyncio.to_thread(self.write, work)

    def prepare(self, events: Sequence[EventRow]) -> None:
        """Create the day partitions these events need.

        In a short transaction of its own, not the shipment's: creating a partition locks
        ``events`` against every reader until commit. An empty partition left by a failed
        shipment is harmless."""
        days = {event.received_at // DAY_MS for event in events}
        with self._lock:
            missing = days - self._days
        if not missing:
            return
        try:
            with transaction(self.connection()) as conn:
                conn.execute(LOCK_PARTITIONS)  # two collectors must not create one day together
                existing = {name for (name,) in conn.execute(PARTITIONS)}
                for day in sorted(missing):
                    self._make_partition(conn, day, existing)
        except psycopg.Error as error:
            self.health.failed(failure_cause(error))
            raise StoreUnavailable(f"PostgreSQL: {error}") from error
        with self._lock:
            self._days |= missing

    @staticmethod
    def _make_partition(conn: QmarkConnection, day: int, existing: set[str]) -> None:
        name, low, high = partition_name(day), day * DAY_MS, (day + 1) * DAY_MS
        if name in existing:
            return
        # A day with rows in DEFAULT cannot get a partition (PostgreSQL refuses): its
        # events keep going there rather than every shipment failing.
        if conn.execute(
            "SELECT 1 FROM events_default WHERE received_at >= ? AND received_at < ? LIMIT 1",
            (low, high),
        ).fetchone():
            log.warning("events of %s stay in events_default", name)
            return
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events"
            f" FOR VALUES FROM ({low}) TO ({high})"
        )

    def take_turn(self, conn: QmarkConnection) -> None:
        conn.execute(LOCK_WRITES)

    def insert_events(self, conn: QmarkConnection, events: Sequence[EventRow]) -> set[str]:
        first: dict[str, int] = {}  # id -> received_at of its first event in the batch
        for event in events:
            first.setdefault(event.id, event.received_at)
        if not first:
            return set()
        cursor = conn.execute(INSERT_IDS, (list(first), list(first.values())))
        new = {event_id for (event_id,) in cursor}
        rows, pending = [], set(new)
        for event in events:
            if event.id in pending:
                pending.discard(event.id)
                rows.append(_copyable(event))
        if rows:
            conn.copy("events", EventRow._fields, rows)
        return new

    def insert_rejects(self, conn: QmarkConnection, rejects: Sequence[RejectRow]) -> None:
        conn.copy("rejects", RejectRow._fields, (_without_nul(reject) for reject in rejects))

    def lead(self, role: str) -> _SessionLease | None:
        conn = self._connect()
        try:
            (held,) = conn.execute(LEAD[role]).fetchone() or (False,)
        except BaseException:
            conn.close()
            raise
        if not held:
            conn.close()
            return None
        return _SessionLease(conn)

    def tables(self) -> dict[str, Table]:
        conn = self.connection()
        parts = {name for (name,) in conn.execute(PARTITIONS)}
        found: dict[str, list[str]] = {}
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ):
            if table not in parts:
                found.setdefault(table, []).append(column)
        keys: dict[str, list[str]] = {}
        for table, column in conn.execute(
            "SELECT c.relname, a.attname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indisprimary AND c.relnamespace = current_schema()::regnamespace"
            " ORDER BY c.relname, array_position(i.indkey::int2[], a.attnum)"
        ):
            keys.setdefault(table, []).append(column)
        return {
            table: Table(tuple(columns), tuple(keys.get(table, ())))
            for table, columns in found.items()
        }

    def drop_days(self, before: int, *, dry_run: bool = False) -> int:
        """Drops the day partitions wholly before ``before`` whose events are all counted.

        Dropping takes a short exclusive lock on ``events``; it waits at most
        DROP_LOCK_WAIT for readers to finish, else the day waits for the next round."""
        dropped = 0
        try:
            with transaction(self.connection()) as conn:
                conn.execute(LOCK_PARTITIONS)  # not while a writer makes a partition
                mark = conn.execute("SELECT seq FROM aggregation WHERE name = 'events'").fetchone()
                counted = int(mark[0]) if mark else 0
                for (name,) in sorted(conn.execute(PARTITIONS).fetchall()):
                    day = partition_day(name)
                    if day is None or (day + 1) * DAY_MS > before:
                        continue
                    count, top = conn.execute(
                        f"SELECT count(*), coalesce(max(seq), 0) FROM {name}"
                    ).fetchone() or (0, 0)
                    if top > counted:
                        continue  # not counted yet: its day goes in a later round
                    if not dry_run:
                        conn.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_WAIT}'")
                        conn.execute(f"DROP TABLE {name}")
                        with self._lock:
                            self._days.discard(day)
                    dropped += int(count)
        except psycopg.errors.LockNotAvailable:  # nothing was dropped: all of it next round
            log.info("day partitions stay until the next round: readers held events")
            return 0
        except psycopg.Error as error:
            raise StoreUnavailable(f"PostgreSQL: {error}") from error
        return dropped

    def free_bytes(self) -> int | None:
        return None  # the server's disk; PostgreSQL itself reports on it


def _without_nul(row: Sequence[Any]) -> list[Any]:
    """PostgreSQL's text cannot hold NUL, which JSON and SQLite can: it becomes U+FFFD, as
    undecodable bytes do, rather than the batch being refused for ever."""
    return [v.replace("\x00", "\ufffd") if type(v) is str else v for v in row]


def _copyable(event: EventRow) -> list[Any]:
    row = _without_nul(event)
    # bot is an integer column (the reports sum it); psycopg would send a bool as 't'.
    row[BOT] = int(event.bot)
    return row
