"""A collector's store when several collectors share one PostgreSQL: store and forward.

Each collector acknowledges an event once it is committed to its own SQLite spool, so it
keeps answering while PostgreSQL is away. A forwarder thread ships the spool to PostgreSQL
in batches, oldest first, and deletes what it shipped only after PostgreSQL has committed
it. PostgreSQL records, in the same transaction, how far each spool has been shipped, so a
collector that dies between the two commits ships nothing twice when it comes back.

When the spool holds ``max_backlog`` events, new writes are refused (the collector answers
503 and the browsers keep the events in their outboxes): acknowledged events are never
dropped to make room.

Sites and salts are read from PostgreSQL and mirrored into the spool, which stands in for
it while it is away; reports, users and administration need PostgreSQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, BinaryIO, Protocol

from clickthru.clock import utc_day
from clickthru.store import (
    Batch,
    CommitObserver,
    EventRow,
    NewSite,
    RejectRow,
    Site,
    Store,
    StoreError,
    WriteResult,
)
from clickthru.store.postgres import StoreUnavailable
from clickthru.store.sqlite import EVENT_COLUMNS, SQLiteStore, connect

if TYPE_CHECKING:
    from clickthru.access import Access
    from clickthru.reports import Reports

log = logging.getLogger(__name__)

SHIP_EVENTS = 5000  # per PostgreSQL transaction
IDLE = 0.2  # seconds between looks at an empty spool
MAX_RETRY_WAIT = 5.0
STUCK_AFTER = 10.0  # seconds a shipment may take before the shared store counts as away
REJECT_COLUMNS = ", ".join(RejectRow._fields)


class Central(Store, Protocol):
    """The shared store: a Store that also takes shipments from spools."""

    def ship(self, collector: str, upto_seq: int, batch: Batch) -> WriteResult: ...
    def sync_reads(self) -> AbstractContextManager[None]: ...


class Forwarder:
    """Ships one spool file to the shared store. Every worker process runs one; the one
    holding the file's forwarder lock ships, all of them keep the backlog figure fresh."""

    def __init__(self, spool: SQLiteStore, central: Central, collector: str) -> None:
        self.spool_path = spool.path
        self.central = central
        self.collector = collector
        self.backlog = 0  # events and rejects waiting in the spool
        self.reachable = True
        self.last_shipped = 0.0  # unix time of the last successful shipment
        self.shipped = 0
        self.last_error: str | None = None
        self.shipping_since: float | None = None  # set while a shipment is under way
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="clickthru-forwarder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = connect(self.spool_path)
        lock = open(f"{self.spool_path}.forwarder-lock", "a+b")  # noqa: SIM115 (held for the thread's life)
        writer_lock = open(f"{self.spool_path}.writer-lock", "a+b")  # noqa: SIM115
        shipping = False
        wait = IDLE
        try:
            while not self._stop.is_set():
                if not shipping:
                    shipping = _try_lock(lock)
                moved = 0
                if shipping:
                    try:
                        moved = self._ship_some(conn, writer_lock)
                    except Exception as error:  # keep spooling, and try again
                        self.last_error = str(error)
                        if not isinstance(error, StoreUnavailable):
                            # Not the network: PostgreSQL refused this batch. Retrying will
                            # not help; it blocks shipping until an operator looks.
                            log.error("the shared store refused a shipment: %s", error)
                        elif self.reachable:
                            log.warning("shipping to the shared store failed: %s", error)
                        self.reachable = False
                        wait = min(MAX_RETRY_WAIT, max(IDLE, wait * 2))
                    else:
                        if not self.reachable:
                            log.info("shipping to the shared store again")
                        self.reachable = True
                        self.last_error = None
                        wait = IDLE
                self.backlog = _backlog(conn)
                if not moved:
                    self._stop.wait(wait)
        finally:
            conn.close()
            lock.close()
            writer_lock.close()

    def _ship_some(self, conn: sqlite3.Connection, writer_lock: BinaryIO) -> int:
        """One shipment of events, then one of rejects; returns how many left the spool."""
        moved = self._ship_table(conn, writer_lock, "events", EVENT_COLUMNS, self.collector)
        moved += self._ship_table(
            conn, writer_lock, "rejects", REJECT_COLUMNS, f"{self.collector}/rejects"
        )
        if moved:
            self.shipped += moved
            self.last_shipped = time.time()
        return moved

    def _ship_table(
        self, conn: sqlite3.Connection, writer_lock: BinaryIO, table: str, columns: str, name: str
    ) -> int:
        """Ships the oldest rows of one spool table as a numbered shipment.

        The shared store remembers the last shipment number of each spool, so a shipment
        sent again after a crash is skipped there. Shipments are numbered in the spool's
        ``meta``, not by row numbers, which SQLite hands out again once a table is empty:
        the number and the last row it holds are written before shipping, and cleared
        with the rows once the shared store has committed.
        """
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
            with _writing(conn, writer_lock):
                _set_meta(conn, f"{table}.pending", f"{number}:{upto}")
        if table == "events":
            batch = Batch(events=[EventRow(*row[1:]) for row in rows])
        else:
            batch = Batch(rejects=[RejectRow(*row[1:]) for row in rows])
        self.shipping_since = time.time()
        try:
            self.central.ship(name, number, batch)
        finally:
            self.shipping_since = None
        with _writing(conn, writer_lock):
            conn.execute(f"DELETE FROM {table} WHERE seq <= ?", (upto,))
            _set_meta(conn, f"{table}.shipped", str(number))
            conn.execute("DELETE FROM meta WHERE key = ?", (f"{table}.pending",))
        return len(rows)


def _try_lock(lock: BinaryIO) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def _writing(conn: sqlite3.Connection, writer_lock: BinaryIO) -> Iterator[None]:
    """A write to the spool, taking turns with the collectors' writers."""
    fcntl.flock(writer_lock, fcntl.LOCK_EX)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        fcntl.flock(writer_lock, fcntl.LOCK_UN)


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _backlog(conn: sqlite3.Connection) -> int:
    (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
    (rejects,) = conn.execute("SELECT count(*) FROM rejects").fetchone()
    return int(events) + int(rejects)


class SpooledStore:
    """The Store a collector uses in front of a shared PostgreSQL."""

    def __init__(
        self, spool: SQLiteStore, central: Central, *, name: str, max_backlog: int
    ) -> None:
        self.spool = spool
        self.central = central
        self.max_backlog = max_backlog
        self.collector = f"{name}/{spool.identity()}"
        self.forwarder = Forwarder(spool, central, self.collector)

    def start(self, on_commit: CommitObserver | None = None) -> None:
        self.spool.start(on_commit)
        self.forwarder.start()

    def close(self) -> None:
        self.forwarder.stop()
        self.spool.close()
        self.central.close()

    async def write(self, batch: Batch) -> WriteResult:
        if batch.events and self.forwarder.backlog >= self.max_backlog:
            raise StoreError(f"the spool is full ({self.forwarder.backlog} events waiting)")
        result = await self.spool.write(batch)
        # Counted at once; the forwarder sets the exact figure after each pass.
        self.forwarder.backlog += result.accepted + len(batch.rejects)
        return result

    async def check(self) -> None:
        await self.spool.check()

    def status(self) -> dict[str, object]:
        """For /healthz: how far behind the shared store is (read now, not from the
        forwarder, which may be waiting on the shared store)."""
        self.forwarder.backlog = backlog = self.spool.waiting()
        since = self.forwarder.shipping_since
        stuck = since is not None and time.time() - since > STUCK_AFTER
        reachable = self.forwarder.reachable and not stuck
        return {
            "collector": self.collector,
            "backlog": backlog,
            "max_backlog": self.max_backlog,
            "shared_store": "reachable" if reachable else "unreachable",
            "shipped": self.forwarder.shipped,  # events and rejects, since this process began
            "last_shipped": self.forwarder.last_shipped or None,
            "last_error": self.forwarder.last_error,
        }

    def sync(self) -> None:
        """Copy the shared store's sites and today's salt into the spool. Called by the
        collector's maintenance task, off the event loop; requests read only the spool, so
        a shared store that hangs never holds one up."""
        try:
            with self.central.sync_reads():
                sites = self.central.sites()
                today = utc_day()
                salt = self.central.daily_salt(today)
        except Exception as error:
            log.warning("reading sites from the shared store failed: %s", error)
            return
        self.spool.mirror_sites(sites)
        self.spool.set_salt(today, salt)

    def sites(self) -> list[Site]:
        return self.spool.sites()

    def site(self, name: str) -> Site:
        return self.central.site(name)

    def add_site(self, name: str, origins: list[str]) -> NewSite:
        return self.central.add_site(name, origins)

    def set_origins(self, name: str, origins: list[str]) -> Site:
        return self.central.set_origins(name, origins)

    def rotate_key(self, name: str) -> Site:
        return self.central.rotate_key(name)

    def daily_salt(self, day: str) -> bytes:
        # The shared store's, once sync() has copied it; until then the spool's own.
        return self.spool.daily_salt(day)

    def count_events(self) -> int:
        return self.central.count_events()

    def reports(self) -> Reports:
        return self.central.reports()

    def access(self) -> Access:
        return self.central.access()

    def rebuild_rollups(self) -> None:
        self.central.rebuild_rollups()
