"""The SQLite store in-process: group commit, idempotency, migrations, sites and salts."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from clickthru.store import Batch, EventRow, RejectRow, StoreError
from clickthru.store.sqlite import SQLiteStore, migrations


def row(event_id: str, kind: str = "click", item: str = "i") -> EventRow:
    return EventRow(
        event_id, kind, "shop", "L", item, 1, "home", "k1", 0, None, 1000, None, None,
        "beacon", None, False, None,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    opened = SQLiteStore(tmp_path / "store.db")
    yield opened
    opened.close()


def test_concurrent_writes_share_commits_and_each_learns_its_own_result(store: SQLiteStore) -> None:
    commits: list[int] = []
    store.start(on_commit=lambda events, seconds: commits.append(events))

    async def main() -> list[tuple[int, int]]:
        batches = [Batch([row(f"event-{i:05d}"), row("shared-id")]) for i in range(300)]
        results = await asyncio.gather(*(store.write(b) for b in batches))
        return [(r.accepted, r.duplicates) for r in results]

    results = asyncio.run(main())
    assert sum(accepted for accepted, _ in results) == 301
    assert sum(duplicates for _, duplicates in results) == 299
    assert store.count_events() == 301
    assert len(commits) < 300, "requests waiting together must share a commit"
    assert sum(commits) == 600


def test_rejects_are_kept_with_their_reason(store: SQLiteStore) -> None:
    store.start()
    reject = RejectRow(1000, "token_expired", None, "shop", "http://shop.test", '{"id":"x"}')
    result = asyncio.run(store.write(Batch([row("kept-one")], [reject])))
    assert (result.accepted, result.duplicates) == (1, 0)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT reason, input FROM rejects").fetchall() == [
            ("token_expired", '{"id":"x"}')
        ]


def test_a_failed_commit_fails_only_its_own_request(store: SQLiteStore) -> None:
    store.start()
    broken = EventRow(*row("broken-row")[:2], None, *row("x")[3:])  # site may not be NULL

    async def main() -> list[object]:
        return await asyncio.gather(
            store.write(Batch([row("fine-1")])),
            store.write(Batch([broken])),
            store.write(Batch([row("fine-2")])),
            return_exceptions=True,
        )

    first, failed, last = asyncio.run(main())
    assert isinstance(failed, StoreError)
    assert getattr(first, "accepted", None) == 1 and getattr(last, "accepted", None) == 1
    assert store.count_events() == 2


def test_health_check_takes_the_write_lock(store: SQLiteStore) -> None:
    store.start()
    asyncio.run(store.check())
    blocker = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        # The writer waits for the lock (busy timeout), so the check cannot finish quickly.
        async def timed() -> None:
            await asyncio.wait_for(store.check(), 0.5)

        with pytest.raises(TimeoutError):
            asyncio.run(timed())
    finally:
        blocker.execute("ROLLBACK")


def test_migrations_are_versioned_and_applied_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    for _ in range(2):
        SQLiteStore(path).count_events()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_writer_survives_a_failing_observer_and_refuses_after_close(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")

    def broken_observer(events: int, seconds: float) -> None:
        raise ValueError("metrics backend is gone")

    store.start(on_commit=broken_observer)

    async def twice() -> tuple[int, int]:
        first = await store.write(Batch([row("observed-1")]))
        second = await store.write(Batch([row("observed-2")]))
        return first.accepted, second.accepted

    assert asyncio.run(twice()) == (1, 1)
    store.close()
    with pytest.raises(StoreError, match="not started"):
        asyncio.run(store.write(Batch([row("too-late")])))


def test_a_write_that_cannot_get_the_lock_times_out_instead_of_hanging(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db", write_timeout=0.3)
    store.start()
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="timed out"):
            asyncio.run(store.write(Batch([row("blocked")])))
    finally:
        blocker.execute("ROLLBACK")
    store.close()
    # It committed once the lock was free: the client's retry will be a harmless duplicate.
    assert store.count_events() == 1


def test_a_large_batch_with_repeats_across_statement_chunks_counts_each_id_once(
    store: SQLiteStore,
) -> None:
    store.start()
    rows = [row(f"big-{i:04d}") for i in range(300)]
    rows += [row("big-0003"), row("big-0250"), row("big-0299")]  # repeats in other chunks
    result = asyncio.run(store.write(Batch(rows)))
    assert (result.accepted, result.duplicates) == (300, 3)
    assert store.count_events() == 300
