"""The embedded store: one SQLite file in WAL mode.

One writer thread owns the write connection and takes batches from a queue.  Whatever
piles up while a commit is being flushed to disk goes into the next transaction (group
commit), so the cost of the fsync is shared by every request waiting on it.  A request's
future is resolved only after its transaction has committed with ``synchronous=FULL``.
Reads and administration use connections of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import itertools
import json
import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

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

EVENT_COLUMNS = ", ".join(EventRow._fields)
ONE_EVENT = "(" + ", ".join("?" * len(EventRow._fields)) + ")"
# Rows per multi-row INSERT: one SQLite step (and one GIL hand-off) per chunk instead of
# per row; 125 x 17 parameters stays far below SQLite's limit of 32,766.
EVENTS_PER_STATEMENT = 125


@functools.cache
def insert_events(count: int) -> str:
    """A multi-row INSERT of ``count`` events, returning the ids it stored.

    ON CONFLICT (id), not OR IGNORE: only a repeated id is a duplicate; any other
    constraint failure must fail the write, never pass for a duplicate.
    """
    values = ", ".join([ONE_EVENT] * count)
    return (
        f"INSERT INTO events ({EVENT_COLUMNS}) VALUES {values}"
        " ON CONFLICT (id) DO NOTHING RETURNING id"
    )


INSERT_REJECT = (
    "INSERT INTO rejects (received_at, reason, detail, site, origin, input)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
BUSY_TIMEOUT_MS = 10_000


def connect(path: str) -> sqlite3.Connection:
    """A connection with the settings every clickthru connection needs."""
    # Room in the statement cache for a multi-row INSERT of every size.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a commit is fsynced before it returns, so an acknowledgement survives power loss.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE (take the write lock now), COMMIT, or ROLLBACK on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrations() -> list[tuple[int, str]]:
    """The numbered schema scripts shipped with the package, in order."""
    folder = resources.files("clickthru.store") / "migrations"
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


ROLLUPS_VERSION = 2  # the migration that added rollups; a file older than it gets them built


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this file has not seen yet; returns the schema version."""
    with write_transaction(conn):
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        build_rollups = version < ROLLUPS_VERSION
        for number, script in migrations():
            if number > version:
                # executescript would commit our transaction; run statement by statement.
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                version = number
        if build_rollups:  # on the schema as it is now, after every migration
            rollups.rebuild(conn)
    return version


def _statements(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current)
            current = ""
    return [s for s in statements if s.strip()]


@dataclass(slots=True)
class _Job:
    batch: Batch
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[WriteResult]


Outcome = WriteResult | BaseException


def _resolve(future: asyncio.Future[WriteResult], result: Outcome) -> None:
    if future.done():  # timed out, or the client went away: nothing to tell
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _resolve_all(answers: list[tuple[asyncio.Future[WriteResult], Outcome]]) -> None:
    for future, result in answers:
        _resolve(future, result)


def _answer(jobs: list[_Job], results: list[Outcome]) -> None:
    """Wake each event loop once per group, not once per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[WriteResult], Outcome]]]
    by_loop = {}
    for job, result in zip(jobs, results, strict=True):
        by_loop.setdefault(job.loop, []).append((job.future, result))
    for loop, answers in by_loop.items():
        # RuntimeError: that event loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve_all, answers)


@dataclass
class _Writer:
    """The thread that owns the write connection."""

    path: str
    max_batch_rows: int
    on_commit: CommitObserver | None
    keep_rollups: bool = True
    jobs: queue.SimpleQueue[_Job | None] = field(default_factory=queue.SimpleQueue)
    thread: threading.Thread | None = None

    def start(self) -> None:
        conn = connect(self.path)
        migrate(conn)
        # Writers in several processes (workers) take turns through this lock: the kernel
        # hands it over at once, where SQLite's busy handler sleeps for milliseconds and
        # lets one process starve the other.
        lock = open(f"{self.path}.writer-lock", "a+b")  # noqa: SIM115 (held for the thread's life)
        self.thread = threading.Thread(
            target=self._run, args=(conn, lock), name="clickthru-writer", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join()
            self.thread = None
        # Whatever was queued behind the stop is answered, not left waiting forever.
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                _answer([job], [StoreError("the store is closed")])

    def _run(self, conn: sqlite3.Connection, lock: BinaryIO) -> None:
        try:
            stopping = False
            while not stopping:
                first = self.jobs.get()
                if first is None:
                    break
                group, rows = [first], len(first.batch.events)
                while rows < self.max_batch_rows:
                    try:
                        job = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stopping = True
                        break
                    group.append(job)
                    rows += len(job.batch.events)
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    self._commit_group(conn, group, rows)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            conn.close()
            lock.close()

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Job], rows: int) -> None:
        started = time.perf_counter()
        results: list[Outcome]
        try:
            results = self._transaction(conn, group)
        except Exception as error:  # the writer thread must outlive any one bad batch
            if len(group) == 1:
                log.error("commit failed: %s", error)
                results = [StoreError(f"commit failed: {error}")]
            else:
                # Commit one by one so a single bad job cannot fail its neighbours.
                log.warning("group commit failed (%s); retrying jobs one by one", error)
                for job in group:
                    self._commit_group(conn, [job], len(job.batch.events))
                return
        _answer(group, results)
        if self.on_commit is not None:
            try:
                self.on_commit(rows, time.perf_counter() - started)
            except Exception:  # an observer must never stop the writer
                log.exception("commit observer failed")

    def _transaction(self, conn: sqlite3.Connection, group: list[_Job]) -> list[Outcome]:
        results: list[Outcome] = []
        stored: list[EventRow] = []
        duplicates: list[EventRow] = []
        rejects: list[RejectRow] = []
        with write_transaction(conn):
            for job in group:
                events = job.batch.events
                new: set[str] = set()
                for start in range(0, len(events), EVENTS_PER_STATEMENT):
                    chunk = events[start : start + EVENTS_PER_STATEMENT]
                    cursor = conn.execute(insert_events(len(chunk)), list(itertools.chain(*chunk)))
                    new.update(event_id for (event_id,) in cursor)
                accepted = len(new)
                for event in events:  # the first of an id in the batch is the one stored
                    if event.id in new:
                        new.discard(event.id)
                        stored.append(event)
                    else:
                        duplicates.append(event)
                if job.batch.rejects:
                    conn.executemany(INSERT_REJECT, job.batch.rejects)
                    rejects.extend(job.batch.rejects)
                results.append(WriteResult(accepted, len(events) - accepted))
            if self.keep_rollups:
                rollups.add(conn, stored, duplicates, rejects)
        return results


class SQLiteStore:
    """The default store. Safe to open from several processes on one machine."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_batch_rows: int = 5000,
        write_timeout: float = 30.0,
        keep_rollups: bool = True,
    ) -> None:
        self.path = str(path)
        # A write still queued or blocked after this long fails; the client sends again,
        # and if it did commit after all, the retry is a harmless duplicate.
        self.write_timeout = write_timeout
        # A spool (the shared store keeps the rollups) leaves them out.
        self._writer = _Writer(self.path, max_batch_rows, None, keep_rollups)
        self._local = threading.local()
        self._migrated = False
        self._site_tables = SiteTables(self._conn, write_transaction, lock_row="")

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, on_commit: CommitObserver | None = None) -> None:
        self._writer.on_commit = on_commit
        self._writer.start()

    def close(self) -> None:
        self._writer.stop()

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection for reads and administration."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connect(self.path)
                if not self._migrated:  # once per store: migrating takes the write lock
                    migrate(conn)
                    self._migrated = True
            except sqlite3.Error as error:
                raise StoreError(f"cannot open the SQLite store {self.path!r}: {error}") from error
            self._local.conn = conn
        return conn

    # -- writes ------------------------------------------------------------------------

    async def write(self, batch: Batch) -> WriteResult:
        if self._writer.thread is None:
            raise StoreError("the store is not started")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WriteResult] = loop.create_future()
        # A timer, not asyncio.wait_for: no extra task per request on the hot path.
        timer = loop.call_later(self.write_timeout, _resolve, future, StoreError("write timed out"))
        self._writer.jobs.put(_Job(batch, loop, future))
        try:
            return await future
        finally:
            timer.cancel()

    async def check(self) -> None:
        # An empty batch still takes the write lock and commits: the whole path is alive.
        await self.write(Batch())

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

    def mirror_sites(self, sites: list[Site]) -> None:
        """Keep a copy of the shared store's sites (a spool verifies tokens with it while
        the shared store is away)."""
        with write_transaction(self._conn()) as conn:
            conn.execute("DELETE FROM site_keys")
            conn.execute("DELETE FROM sites")
            conn.executemany(
                "INSERT INTO sites (name, origins, api_key_hash, created_at) VALUES (?, ?, ?, 0)",
                [(s.name, json.dumps(list(s.origins)), s.api_key_hash) for s in sites],
            )
            conn.executemany(
                "INSERT INTO site_keys (site, key_id, secret, created_at, retired_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (s.name, k.key_id, k.secret.hex(), k.created_at, k.retired_at)
                    for s in sites
                    for k in s.keys
                ],
            )

    def set_salt(self, day: str, salt: bytes) -> None:
        """Take the shared store's salt for the day (so every collector keys alike)."""
        with write_transaction(self._conn()) as conn:
            conn.execute("INSERT OR REPLACE INTO salts (day, salt) VALUES (?, ?)", (day, salt))
            conn.execute("DELETE FROM salts WHERE day < ?", (day,))

    def waiting(self) -> int:
        """Events and rejects in this file: a spool's backlog."""
        conn = self._conn()
        (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
        (rejects,) = conn.execute("SELECT count(*) FROM rejects").fetchone()
        return int(events) + int(rejects)

    def identity(self) -> str:
        """A random id made once for this file: who this spool is to the shared store."""
        conn = self._conn()
        found = conn.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()
        if found:
            return str(found[0])
        with write_transaction(conn):
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('id', ?)", (secrets.token_hex(8),)
            )
            value: str = conn.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()[0]
        return value

    # -- visitor salts -------------------------------------------------------------------

    def daily_salt(self, day: str) -> bytes:
        return self._site_tables.daily_salt(day)

    # -- reads -------------------------------------------------------------------------

    def count_events(self) -> int:
        count: int = self._conn().execute("SELECT count(*) FROM events").fetchone()[0]
        return count

    def reports(self) -> SQLReports:
        from clickthru.reports.sql import SQLReports

        return SQLReports(self._conn)

    def access(self) -> Access:
        from clickthru.access import Access  # it builds on this module

        return Access(self._conn)

    def rebuild_rollups(self) -> None:
        """Recompute the rollups from the raw events (the writer waits meanwhile)."""
        with write_transaction(self._conn()) as conn:
            rollups.rebuild(conn)
