"""The embedded database: one SQLite file in WAL mode, and the one thread that writes it.

The writer thread owns the write connection and takes work from a queue: events to
acknowledge, counts to add, sites, keys, salts, users, rebuilds. Event batches waiting
together share one transaction and its fsync (group commit); each runs in a savepoint of
its own, so one bad batch fails alone. A request's future is resolved only after its
transaction has committed with ``synchronous=FULL``. Reads use connections of their own,
one per thread. Several processes (workers) may open one file: their writers take turns
through a lock file beside it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import itertools
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

from clickthru.errors import StoreError, StoreUnavailable
from clickthru.store import rollups
from clickthru.store.database import Groupable, T, Table, Work, WriteHealth, free_bytes_at
from clickthru.store.rows import EVENT_COLUMNS, EventRow, RejectRow

log = logging.getLogger(__name__)

ONE_EVENT = "(" + ", ".join("?" * len(EventRow._fields)) + ")"
# Rows per multi-row INSERT: one SQLite step (and one GIL hand-off) per chunk instead of
# per row; 125 x 24 parameters stays far below SQLite's limit of 32,766.
EVENTS_PER_STATEMENT = 125
BUSY_TIMEOUT_MS = 10_000
STREAM_ROWS = 1000  # rows a stream reads at a time
# A write still queued or blocked after this long fails; the client sends again, and if
# it did commit after all, the retry is a harmless duplicate.
WRITE_TIMEOUT = 30.0


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


@functools.cache
def known_ids(count: int) -> str:
    return f"SELECT id FROM event_ids WHERE id IN ({', '.join('?' * count)})"


INSERT_REJECT = (
    "INSERT INTO rejects (received_at, reason, detail, site, origin, input)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


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


def in_use_lock(path: str) -> str:
    """The lock file every process with the store open holds shared."""
    return f"{path}.in-use-lock"


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
    """Apply the migrations this file has not seen yet; returns the schema version.

    ``user_version`` is the highest applied. Numbers missing below it when it was set
    (a migration made on a branch that merged later) are noted in ``meta``, and applied
    when they arrive."""
    with write_transaction(conn):
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        build_rollups = version < ROLLUPS_VERSION
        missing = _missing(conn)
        shipped = migrations()
        for number, script in shipped:
            if number > version or number in missing:
                # executescript would commit our transaction; run statement by statement.
                for statement in _statements(script):
                    conn.execute(statement)
                version = max(version, number)
                conn.execute(f"PRAGMA user_version = {version}")
        numbers = {number for number, _ in shipped}
        gaps = [n for n in range(1, version + 1) if n not in numbers]
        if gaps or missing:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('missing_migrations', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(gaps),),
            )
        if build_rollups:  # on the schema as it is now, after every migration
            rollups.rebuild(conn)
    return version


def _missing(conn: sqlite3.Connection) -> set[int]:
    """The migration numbers below ``user_version`` that this file never had."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    row = (
        has_meta
        and conn.execute("SELECT value FROM meta WHERE key = 'missing_migrations'").fetchone()
    )
    return set(json.loads(row[0])) if row else set()


def _statements(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current)
            current = ""
    return [s for s in statements if s.strip()]


def failure_cause(error: BaseException) -> str:
    """What kind of write failure this is, for health and metrics."""
    text = str(error).lower()
    if isinstance(error, StoreUnavailable) and "timed out" in text:
        return "timeout"
    if "full" in text:
        return "disk_full"
    if "locked" in text or "busy" in text:
        return "locked"
    if "i/o" in text or "readonly" in text or "read-only" in text:
        return "io_error"
    return "error"


# -- the writer thread -----------------------------------------------------------------


Outcome = Any  # what the work returned, or the exception it failed with


@dataclass(slots=True)
class _Job:
    work: Work[Any]
    events: int  # events stored by it (for the commit observer and group sizes)
    group: Groupable | None
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[Any] | concurrent.futures.Future[Any] | None = None


def _settle(future: asyncio.Future[Any], outcome: Outcome) -> None:
    if future.done():  # timed out, or the client went away: nothing to tell
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _settle_all(answers: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, outcome in answers:
        _settle(future, outcome)


def _answer(jobs: list[_Job], outcomes: list[Outcome]) -> None:
    """Wake each event loop once per group, not once per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        if isinstance(job.future, concurrent.futures.Future):
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
        elif job.future is not None and job.loop is not None:
            by_loop.setdefault(job.loop, []).append((job.future, outcome))
    for loop, answers in by_loop.items():
        # RuntimeError: that event loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_all, answers)


class _Writer:
    """The thread that owns the write connection."""

    def __init__(self, path: str, max_group_events: int, health: WriteHealth) -> None:
        self.path = path
        self.max_group_events = max_group_events
        self.health = health
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self._held: _Job | None = None  # a job taken while gathering a group, run next
        self.in_use: BinaryIO | None = None

    def start(self) -> None:
        conn = connect(self.path)
        # Writers in several processes (workers) take turns through this lock: the kernel
        # hands it over at once, where SQLite's busy handler sleeps for milliseconds and
        # lets one process starve the other.
        lock = open(f"{self.path}.writer-lock", "a+b")  # noqa: SIM115 (held for the thread's life)
        try:
            with _locked(lock):
                migrate(conn)
        except BaseException:
            conn.close()
            lock.close()
            raise
        # Held shared while the store is open here: a restore takes it exclusively, so it
        # never replaces the file under a running collector.
        self.in_use = open(in_use_lock(self.path), "a+b")  # noqa: SIM115 (held while open)
        fcntl.flock(self.in_use, fcntl.LOCK_SH)
        self.thread = threading.Thread(
            target=self._run, args=(conn, lock), name="clickthru-writer", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join()
            self.thread = None
        if self.in_use is not None:
            self.in_use.close()
            self.in_use = None
        # Whatever was queued behind the stop is answered, not left waiting forever.
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                _answer([job], [StoreUnavailable("the store is closed")])

    def _next(self) -> _Job | None:
        if self._held is not None:
            job, self._held = self._held, None
            return job
        return self.jobs.get()

    def _run(self, conn: sqlite3.Connection, lock: BinaryIO) -> None:
        try:
            while True:
                first = self._next()
                if first is None:
                    break
                group = [first]
                stopping = False
                if first.group is not None:
                    events = first.events
                    while events < self.max_group_events:
                        try:
                            job = self.jobs.get_nowait()
                        except queue.Empty:
                            break
                        if job is None:
                            stopping = True
                            break
                        if job.group is None or job.group.many != first.group.many:
                            self._held = job
                            break
                        group.append(job)
                        events += job.events
                with _locked(lock):
                    self._commit(conn, group)
                if stopping:
                    break
        finally:
            conn.close()
            lock.close()

    def _commit(self, conn: sqlite3.Connection, group: list[_Job]) -> None:
        started = time.perf_counter()
        outcomes: list[Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if len(group) == 1:
                    outcomes.append(group[0].work(conn))
                else:
                    outcomes = self._together(conn, group)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except Exception as error:  # the writer thread must outlive any one bad batch
            _answer(group, [self._failure(error)] * len(group))
            return
        _answer(group, outcomes)
        events = sum(job.events for job in group)
        try:
            self.health.succeeded(events, time.perf_counter() - started)
        except Exception:  # an observer must never stop the writer
            log.exception("commit observer failed")

    def _failure(self, error: Exception) -> BaseException:
        """What a failed transaction tells its jobs; a failure of the disk or the file (not
        of the data) also marks the store unhealthy until a write succeeds."""
        if isinstance(error, sqlite3.IntegrityError):
            return StoreError(f"commit failed: {error}")
        if isinstance(error, sqlite3.Error):
            cause = failure_cause(error)
            log.error("commit failed (%s): %s", cause, error)
            self.health.failed(cause)
            return StoreUnavailable(f"commit failed: {error}")
        if not isinstance(error, StoreError):
            log.error("a write failed", exc_info=error)
        return error

    def _together(self, conn: sqlite3.Connection, group: list[_Job]) -> list[Outcome]:
        """The group's work in one go (one multi-row insert for all its events, say); if
        that fails for one job's data, each job again in a savepoint of its own, so the
        bad one fails alone."""
        first = group[0].group
        assert first is not None
        conn.execute("SAVEPOINT together")
        try:
            outcomes = first.many(conn, [job.group.item for job in group if job.group])
        except Exception as error:
            if isinstance(error, sqlite3.OperationalError) or not conn.in_transaction:
                raise
            conn.execute("ROLLBACK TO together")
            conn.execute("RELEASE together")
            log.warning("a group commit failed (%s); its jobs one by one", error)
            return [self._in_savepoint(conn, job) for job in group]
        conn.execute("RELEASE together")
        return outcomes

    @staticmethod
    def _in_savepoint(conn: sqlite3.Connection, job: _Job) -> Outcome:
        """One job of a group: its failure undoes its own writes and fails it alone; a
        failure of the file itself (disk full, I/O) fails the whole group."""
        conn.execute("SAVEPOINT job")
        try:
            outcome = job.work(conn)
        except Exception as error:
            if isinstance(error, sqlite3.OperationalError) or not conn.in_transaction:
                raise
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            log.warning("a batch failed in a group commit: %s", error)
            if isinstance(error, sqlite3.Error):
                return StoreError(f"commit failed: {error}")
            return error
        conn.execute("RELEASE job")
        return outcome


@contextlib.contextmanager
def _locked(lock: BinaryIO) -> Iterator[None]:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


class _FileLease:
    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def release(self) -> None:
        self._file.close()  # closing drops the flock


class SQLiteDatabase:
    """One SQLite file. Safe to use from many threads and from several processes."""

    kind = "sqlite"
    lock_row = ""
    count_budget = 0.025

    def __init__(self, path: str | Path, *, max_group_events: int = 5000) -> None:
        self.path = str(path)
        self.health = WriteHealth()
        self._writer = _Writer(self.path, max_group_events, self.health)
        self._starting = threading.Lock()
        self._local = threading.local()

    # -- lifecycle ---------------------------------------------------------------------

    def _ensure_writer(self) -> _Writer:
        if self._writer.thread is None:
            with self._starting:
                if self._writer.thread is None:
                    try:
                        self._writer.start()  # migrates the file first
                    except sqlite3.Error as error:
                        raise StoreError(
                            f"cannot open the SQLite store {self.path!r}: {error}"
                        ) from error
        return self._writer

    def close(self) -> None:
        """Stops the writer (answering what waits) and closes this thread's reader; a later
        use opens them again."""
        with self._starting:
            self._writer.stop()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def stream(self, sql: str, params: Sequence[Any]) -> Iterator[Any]:
        self._ensure_writer()  # the file exists and is migrated
        conn = connect(self.path)
        try:
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(STREAM_ROWS):
                yield from rows
        finally:
            conn.close()

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self._ensure_writer()  # the file exists and is migrated
            try:
                conn = connect(self.path)
            except sqlite3.Error as error:
                raise StoreError(f"cannot open the SQLite store {self.path!r}: {error}") from error
            self._local.conn = conn
        return conn

    # -- writes ------------------------------------------------------------------------

    def write(self, work: Work[T]) -> T:
        writer = self._ensure_writer()
        if threading.current_thread() is writer.thread:
            raise RuntimeError("write() from the writer thread would wait for itself")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        writer.jobs.put(_Job(work, 0, None, None, future))
        try:
            return future.result(WRITE_TIMEOUT)
        except TimeoutError:
            self.health.failed("timeout")
            raise StoreUnavailable("write timed out") from None

    async def write_async(
        self, work: Work[T], *, events: int = 0, group: Groupable | None = None
    ) -> T:
        writer = self._ensure_writer()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # A timer, not asyncio.wait_for: no extra task per request on the hot path.
        timer = loop.call_later(WRITE_TIMEOUT, self._time_out, future)
        writer.jobs.put(_Job(work, events, group, loop, future))
        try:
            return await future
        finally:
            timer.cancel()

    def _time_out(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            self.health.failed("timeout")
            future.set_exception(StoreUnavailable("write timed out"))

    # -- the SQL differences -----------------------------------------------------------

    def prepare(self, events: Sequence[EventRow]) -> None:
        """Nothing to prepare: one table holds every day."""

    def insert_events(self, conn: sqlite3.Connection, events: Sequence[EventRow]) -> set[str]:
        new: set[str] = set()
        for start in range(0, len(events), EVENTS_PER_STATEMENT):
            chunk = events[start : start + EVENTS_PER_STATEMENT]
            # The id of an event purged already, still within its retry window: a duplicate.
            purged = {
                event_id
                for (event_id,) in conn.execute(
                    known_ids(len(chunk)), [event.id for event in chunk]
                )
            }
            if purged:
                chunk = [event for event in chunk if event.id not in purged]
                if not chunk:
                    continue
            cursor = conn.execute(insert_events(len(chunk)), list(itertools.chain(*chunk)))
            new.update(event_id for (event_id,) in cursor)
        return new

    def insert_rejects(self, conn: sqlite3.Connection, rejects: Sequence[RejectRow]) -> None:
        conn.executemany(INSERT_REJECT, rejects)

    def take_turn(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE has taken the file's one write lock already."""

    def lead(self, role: str) -> _FileLease | None:
        file = open(f"{self.path}.{role}-lock", "a+b")  # noqa: SIM115 (held by the lease)
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return None
        return _FileLease(file)

    def tables(self) -> dict[str, Table]:
        found: dict[str, list[tuple[int, str]]] = {}
        for table, column, key in self.connection().execute(
            "SELECT m.name, c.name, c.pk FROM sqlite_master m, pragma_table_info(m.name) c"
            " WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, c.cid"
        ):
            found.setdefault(table, []).append((key, column))
        return {
            table: Table(
                tuple(name for _, name in columns),
                tuple(name for key, name in sorted(columns) if key),
            )
            for table, columns in found.items()
        }

    def drop_days(self, before: int, *, dry_run: bool = False) -> int:
        return 0  # one table holds every day: the purge deletes by rows

    def free_bytes(self) -> int | None:
        return free_bytes_at(os.path.dirname(os.path.abspath(self.path)))
