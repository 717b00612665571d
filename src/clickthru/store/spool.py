"""A collector's spool in front of a shared PostgreSQL: store and forward.

Each collector acknowledges an event once its own SQLite spool has committed it, so it
keeps answering while PostgreSQL is away. A forwarder ships the spool to PostgreSQL in
numbered batches, oldest first, and deletes what it shipped only after PostgreSQL has
committed it. PostgreSQL records, in the same transaction, the last shipment number of
each spool, so a collector that dies between the two commits ships nothing twice.

When the spool holds ``max_backlog`` events, new events are refused (the collector answers
503 and browsers keep the events in their outboxes): acknowledged events are never
dropped to make room. The spool also keeps a copy of the shared store's sites and salt of
the day, so requests never wait on PostgreSQL.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from clickthru.clock import utc_day
from clickthru.errors import StoreUnavailable
from clickthru.store.background import BackgroundThread
from clickthru.store.postgres import PostgresDatabase
from clickthru.store.rows import (
    EVENT_COLUMNS,
    REJECT_COLUMNS,
    RETRY_COLUMNS,
    Batch,
    EventRow,
    RejectRow,
    RetryRow,
    WriteResult,
)
from clickthru.store.sink import EventSink
from clickthru.store.sites import SiteAdmin
from clickthru.store.sqlite import SQLiteDatabase

log = logging.getLogger(__name__)

SHIP_EVENTS = 5000  # per PostgreSQL transaction
IDLE = 0.2  # seconds between looks at an empty spool
MOST_RETRY_WAIT = 5.0
STUCK_AFTER = 10.0  # seconds a shipment may take before the shared store counts as away


def identity(spool: SQLiteDatabase) -> str:
    """A random id made once for a spool file: who this spool is to the shared store."""

    def work(conn: Any) -> str:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('id', ?) ON CONFLICT (key) DO NOTHING",
            (secrets.token_hex(8),),
        )
        return str(conn.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()[0])

    found = spool.connection().execute("SELECT value FROM meta WHERE key = 'id'").fetchone()
    return str(found[0]) if found else spool.write(work)


def backlog(spool: SQLiteDatabase) -> int:
    """Events and rejects waiting in the spool."""
    conn = spool.connection()
    (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
    (rejects,) = conn.execute("SELECT count(*) FROM rejects").fetchone()
    return int(events) + int(rejects)


def _events(rows: list[Any]) -> Batch:
    return Batch(events=[EventRow(*row) for row in rows])


def _rejects(rows: list[Any]) -> Batch:
    return Batch(rejects=[RejectRow(*row) for row in rows])


def _retries(rows: list[Any]) -> Batch:
    return Batch(retries=[RetryRow(*row) for row in rows])


# spool table -> its columns, the shipment's name after the collector's, its batch
SHIPPED_TABLES: dict[str, tuple[str, str, Callable[[list[Any]], Batch]]] = {
    "events": (EVENT_COLUMNS, "", _events),
    "rejects": (REJECT_COLUMNS, "/rejects", _rejects),
    "pending_duplicates": (RETRY_COLUMNS, "/retries", _retries),
}


class Forwarder(BackgroundThread):
    """Ships one spool file to the shared store. Every worker process runs one; the one
    holding the spool's forwarder lead ships, all of them keep the backlog figure fresh."""

    thread_name = "clickthru-forwarder"

    def __init__(self, spool: SQLiteDatabase, central: EventSink, collector: str) -> None:
        super().__init__()
        self.spool = spool
        self.central = central
        self.collector = collector
        self.backlog = 0  # events and rejects waiting in the spool
        self.reachable = True
        self.last_shipped = 0.0  # unix time of the last successful shipment
        self.shipped = 0
        self.last_error: str | None = None
        self.shipping_since: float | None = None  # set while a shipment is under way

    def run(self) -> None:
        lease = None
        wait = IDLE
        try:
            while not self.stopping.is_set():
                if lease is None:
                    lease = self.spool.lead("forwarder")
                moved = 0
                if lease is not None:
                    try:
                        moved = self._ship_some()
                    except Exception as error:  # keep spooling, and try again
                        self.last_error = str(error)
                        if not isinstance(error, StoreUnavailable):
                            # Not the network: PostgreSQL refused this batch. Retrying will
                            # not help; it blocks shipping until an operator looks.
                            log.error("the shared store refused a shipment: %s", error)
                        elif self.reachable:
                            log.warning("shipping to the shared store failed: %s", error)
                        self.reachable = False
                        wait = min(MOST_RETRY_WAIT, max(IDLE, wait * 2))
                    else:
                        if not self.reachable:
                            log.info("shipping to the shared store again")
                        self.reachable = True
                        self.last_error = None
                        wait = IDLE
                self.backlog = backlog(self.spool)
                if not moved:
                    self.stopping.wait(wait)
        finally:
            if lease is not None:
                lease.release()

    def _ship_some(self) -> int:
        """One shipment of events, then one of rejects and one of retries; returns how many
        events and rejects left the spool."""
        moved = self._ship_table("events")
        moved += self._ship_table("rejects")
        self._ship_table("pending_duplicates")
        if moved:
            self.shipped += moved
            self.last_shipped = time.time()
        return moved

    def _ship_table(self, table: str) -> int:
        """Ships the oldest rows of one spool table as a numbered shipment.

        The shared store remembers the last shipment number of each spool, so a shipment
        sent again after a crash is skipped there. Shipments are numbered in the spool's
        ``meta``, not by row numbers, which SQLite hands out again once a table is empty:
        the number and the last row it holds are written before shipping, and cleared
        with the rows once the shared store has committed.
        """
        columns, suffix, make_batch = SHIPPED_TABLES[table]
        conn = self.spool.connection()
        pending = _meta(conn, f"{table}.pending")
        if pending:  # the last attempt did not finish, shipped or not: the same again
            number, upto = (int(part) for part in pending.split(":"))
            rows = conn.execute(
                f"SELECT seq, {columns} FROM {table} WHERE seq <= ? ORDER BY seq", (upto,)
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT seq, {columns} FROM {table} ORDER BY seq LIMIT ?", (SHIP_EVENTS,)
            ).fetchall()
            if not rows:
                return 0
            number, upto = int(_meta(conn, f"{table}.shipped") or 0) + 1, rows[-1][0]
            self.spool.write(lambda c: _set_meta(c, f"{table}.pending", f"{number}:{upto}"))
        self.shipping_since = time.time()
        try:
            self.central.ship(self.collector + suffix, number, make_batch([r[1:] for r in rows]))
        finally:
            self.shipping_since = None

        def trim(c: Any) -> None:
            c.execute(f"DELETE FROM {table} WHERE seq <= ?", (upto,))
            _set_meta(c, f"{table}.shipped", str(number))
            c.execute("DELETE FROM meta WHERE key = ?", (f"{table}.pending",))

        self.spool.write(trim)
        return len(rows)


def _meta(conn: Any, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def _set_meta(conn: Any, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


class SpoolSink:
    """The event sink a collector acknowledges with in front of a shared store: its
    spool's, refusing new events once the spool is full."""

    def __init__(self, spool: EventSink, forwarder: Forwarder, max_backlog: int) -> None:
        self.spool = spool
        self.forwarder = forwarder
        self.max_backlog = max_backlog

    async def write(self, batch: Batch) -> WriteResult:
        if batch.events and self.forwarder.backlog >= self.max_backlog:
            raise StoreUnavailable(f"the spool is full ({self.forwarder.backlog} events waiting)")
        result = await self.spool.write(batch)
        # Counted at once; the forwarder sets the exact figure after each pass.
        self.forwarder.backlog += result.accepted + len(batch.rejects)
        return result

    async def check(self) -> None:
        await self.spool.check()


class Spool:
    """What a collector in front of a shared store runs beside its requests: the
    forwarder, and a copy of the shared store's sites and salt kept fresh."""

    def __init__(
        self,
        spool: SQLiteDatabase,
        central: PostgresDatabase,
        *,
        name: str,
        max_backlog: int,
    ) -> None:
        self.db = spool
        self.central = central
        self.max_backlog = max_backlog
        self.collector = f"{name}/{identity(spool)}"
        self.forwarder = Forwarder(spool, EventSink(central), self.collector)
        self.sink = SpoolSink(EventSink(spool), self.forwarder, max_backlog)
        self.copy = SiteAdmin(spool)
        self.source = SiteAdmin(central)

    def start(self) -> None:
        if not self.copy.sites():
            # A new spool knows no sites yet, so no token would verify: fetch them first.
            self.sync()
        self.forwarder.start()

    def stop(self) -> None:
        self.forwarder.stop()

    def sync(self) -> None:
        """Copy the shared store's sites and today's salt into the spool. Requests read
        only the spool, so a shared store that hangs never holds one up."""
        try:
            with self.central.deadline():
                sites = self.source.sites()
                today = utc_day()
                salt = self.source.daily_salt(today)
        except Exception as error:  # the shared store is away, or cut off by the deadline
            log.warning("reading sites from the shared store failed: %s", error)
            return
        self.copy.mirror(sites, today, salt)

    def status(self) -> dict[str, Any]:
        """For /healthz: how far behind the shared store is (read now, not from the
        forwarder, which may be waiting on the shared store)."""
        self.forwarder.backlog = waiting = backlog(self.db)
        since = self.forwarder.shipping_since
        stuck = since is not None and time.time() - since > STUCK_AFTER
        reachable = self.forwarder.reachable and not stuck
        return {
            "collector": self.collector,
            "backlog": waiting,
            "max_backlog": self.max_backlog,
            "full": waiting >= self.max_backlog,
            "shared_store": "reachable" if reachable else "unreachable",
            "shipped": self.forwarder.shipped,  # events and rejects, since this process began
            "last_shipped": self.forwarder.last_shipped or None,
            "last_error": self.forwarder.last_error,
        }
