"""The SQLite database and the event sink on it, in-process: group commit, idempotency,
every write on the one writer thread, health, migrations."""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest

from clickthru.backend import Store, open_store
from clickthru.errors import StoreError, StoreUnavailable
from clickthru.store import sqlite as sqlite_module
from clickthru.store.rows import Batch, EventRow, RejectRow
from clickthru.store.sink import EventSink
from clickthru.store.sqlite import SQLiteDatabase, migrations


def row(event_id: str, kind: str = "click", item: str = "i") -> EventRow:
    return EventRow(
        event_id, kind, "shop", "L", item, 1, "home", "k1", 0, None, 1000, None, None,
        "beacon", None, False, None,
    )  # fmt: skip


def count(path: str | Path, table: str = "events") -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    opened = open_store(str(path))
    yield opened
    opened.close()


def test_concurrent_writes_share_commits_and_each_learns_its_own_result(
    store: Store, path: Path
) -> None:
    commits: list[int] = []
    store.start(aggregate=False, on_commit=lambda events, seconds: commits.append(events))

    async def main() -> list[tuple[int, int]]:
        batches = [Batch([row(f"event-{i:05d}"), row("shared-id")]) for i in range(300)]
        results = await asyncio.gather(*(store.sink.write(b) for b in batches))
        return [(r.accepted, r.duplicates) for r in results]

    results = asyncio.run(main())
    assert sum(accepted for accepted, _ in results) == 301
    assert sum(duplicates for _, duplicates in results) == 299
    assert count(store.sink_db.path) == 301  # type: ignore[attr-defined]
    # Every future was resolved after its commit, and the observer is told after the
    # answers, from the writer thread: closing the store waits for it.
    store.close()
    assert len(commits) < 300, "requests waiting together must share a commit"
    assert sum(commits) == 600


def test_the_acknowledging_transaction_holds_events_rejects_and_retries_only(
    store: Store, path: Path
) -> None:
    reject = RejectRow(1000, "token_expired", None, "shop", "http://shop.test", '{"id":"x"}')
    result = asyncio.run(store.sink.write(Batch([row("kept-one"), row("kept-one")], [reject])))
    assert (result.accepted, result.duplicates) == (1, 1)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT reason, input FROM rejects").fetchall() == [
            ("token_expired", '{"id":"x"}')
        ]
        assert conn.execute("SELECT site, received_at FROM pending_duplicates").fetchall() == [
            ("shop", 1000)
        ]
        for counters in ("rollup_hourly", "firsts", "reject_counts", "duplicate_counts"):
            assert conn.execute(f"SELECT count(*) FROM {counters}").fetchone() == (0,), counters


def test_a_failed_batch_fails_only_its_own_request(store: Store, path: Path) -> None:
    broken = EventRow(*row("broken-row")[:2], None, *row("x")[3:])  # site may not be NULL

    async def main() -> list[object]:
        return await asyncio.gather(
            store.sink.write(Batch([row("fine-1")])),
            store.sink.write(Batch([broken])),
            store.sink.write(Batch([row("fine-2")])),
            return_exceptions=True,
        )

    first, failed, last = asyncio.run(main())
    assert isinstance(failed, StoreError) and not isinstance(failed, StoreUnavailable)
    assert getattr(first, "accepted", None) == 1 and getattr(last, "accepted", None) == 1
    assert count(store.sink_db.path) == 2  # type: ignore[attr-defined]
    assert store.sink_db.health.failing is None  # bad data is not a sick store


def test_every_write_waits_for_the_files_writer_lock(tmp_path: Path) -> None:
    """Administration, salts and counting go through the writer, which takes turns with
    other processes' writers through the lock file: none writes around it."""
    db = SQLiteDatabase(tmp_path / "w.db")
    store = open_store(str(tmp_path / "w.db"))
    db.connection()  # migrated
    other_process = open(f"{db.path}.writer-lock", "a+b")  # noqa: SIM115
    fcntl.flock(other_process, fcntl.LOCK_EX)
    with ThreadPoolExecutor(3) as pool:
        waiting = [
            pool.submit(store.admin.add_site, "shop", ["http://shop.test"]),
            pool.submit(store.admin.daily_salt, "2026-12-05"),
            pool.submit(store.aggregator.count_some),
        ]
        for future in waiting:
            with pytest.raises(FutureTimeout):
                future.result(timeout=0.3)
        fcntl.flock(other_process, fcntl.LOCK_UN)
        assert waiting[0].result(timeout=10).site.name == "shop"
        assert len(waiting[1].result(timeout=10)) == 16
        assert waiting[2].result(timeout=10) == 0
    other_process.close()
    store.close()
    db.close()


def test_the_health_check_is_a_real_write_and_failures_are_remembered(
    store: Store, path: Path
) -> None:
    asyncio.run(store.sink.check())
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        # The writer waits for the lock (busy timeout), so the check cannot finish quickly.
        async def timed() -> None:
            await asyncio.wait_for(store.sink.check(), 0.5)

        with pytest.raises(TimeoutError):
            asyncio.run(timed())
    finally:
        blocker.execute("ROLLBACK")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT key FROM meta WHERE key = 'heartbeat'").fetchall()


def test_a_write_failure_of_the_file_marks_the_store_failing_until_one_succeeds(
    store: Store, path: Path
) -> None:
    sink = store.sink_db
    asyncio.run(store.sink.check())
    sqlite_module.WRITE_TIMEOUT, saved = 0.3, sqlite_module.WRITE_TIMEOUT
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="timed out"):
            asyncio.run(store.sink.write(Batch([row("blocked")])))
        assert sink.health.failing == "timeout"
    finally:
        sqlite_module.WRITE_TIMEOUT = saved
        blocker.execute("ROLLBACK")
    asyncio.run(store.sink.check())
    assert sink.health.failing is None and sink.health.failures == {"timeout": 1}
    # It committed once the lock was free: the client's retry will be a harmless duplicate.
    assert count(path) == 1


def test_migrations_are_versioned_and_applied_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    for _ in range(2):
        opened = SQLiteDatabase(path)
        opened.connection()
        opened.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_writer_survives_a_failing_observer_and_reopens_after_close(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))

    def broken_observer(events: int, seconds: float) -> None:
        raise ValueError("metrics backend is gone")

    store.start(aggregate=False, on_commit=broken_observer)

    async def twice() -> tuple[int, int]:
        first = await store.sink.write(Batch([row("observed-1")]))
        second = await store.sink.write(Batch([row("observed-2")]))
        return first.accepted, second.accepted

    assert asyncio.run(twice()) == (1, 1)
    store.close()
    assert asyncio.run(store.sink.write(Batch([row("later")]))).accepted == 1
    store.close()


def test_a_write_from_the_writer_thread_is_refused_not_deadlocked(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "d.db")
    with pytest.raises(RuntimeError, match="wait for itself"):
        db.write(lambda conn: db.write(lambda inner: None))
    db.close()


def test_a_large_batch_with_repeats_across_statement_chunks_counts_each_id_once(
    store: Store, path: Path
) -> None:
    rows = [row(f"big-{i:04d}") for i in range(300)]
    rows += [row("big-0003"), row("big-0250"), row("big-0299")]  # repeats in other chunks
    result = asyncio.run(store.sink.write(Batch(rows)))
    assert (result.accepted, result.duplicates) == (300, 3)
    assert count(store.sink_db.path) == 300  # type: ignore[attr-defined]


def test_two_sinks_on_one_file_take_turns(tmp_path: Path) -> None:
    """Two processes' writers, as with two workers: neither loses a write."""
    path = tmp_path / "two.db"
    first, second = SQLiteDatabase(path), SQLiteDatabase(path)

    def write_many(db: SQLiteDatabase, prefix: str) -> None:
        sink = EventSink(db)

        async def run() -> None:
            await asyncio.gather(*(sink.write(Batch([row(f"{prefix}-{i}")])) for i in range(200)))

        asyncio.run(run())

    threads = [
        threading.Thread(target=write_many, args=(db, name))
        for db, name in ((first, "a"), (second, "b"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count(path) == 400
    first.close()
    second.close()


def test_a_migration_that_arrives_after_a_later_one_is_applied_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Numbers may land out of order (branches merge at different times): a gap below the
    file's version is filled when its migration ships."""
    from clickthru.store import sqlite as sqlite_module

    shipped = migrations()
    late = max(number for number, _ in shipped) + 2
    without = [*shipped, (late, "CREATE TABLE later (x INTEGER);")]
    with_it = [*without[:-1], (late - 1, "CREATE TABLE filled (x INTEGER);"), without[-1]]
    path = tmp_path / "gap.db"
    for listing in (without, with_it, with_it):
        monkeypatch.setattr(sqlite_module, "migrations", lambda listing=listing: listing)
        opened = SQLiteDatabase(path)
        opened.connection()
        opened.close()
    with sqlite3.connect(path) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert {"later", "filled"} <= tables  # and the third opening applied neither again
        assert conn.execute("PRAGMA user_version").fetchone()[0] == late
