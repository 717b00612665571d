"""The shared PostgreSQL store against a real server: migrations, shipments from spools
(stored once, all or nothing, one partition per day), counters that agree with a rebuild
and with the SQLite store, and the reports and access that run on both."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickthru.backend import Store, open_store
from clickthru.clock import DAY_MS, HOUR_MS
from clickthru.errors import StoreError, StoreUnavailable
from clickthru.reports import GROUPINGS, Query
from clickthru.store.postgres import (
    QmarkConnection,
    migrate,
    migrations,
    partition_name,
    transaction,
)
from clickthru.store.rows import Batch, EventRow, RejectRow, WriteResult
from tests.pg import drop_connections, throwaway_database
from tests.store.test_rollups import START, batches, event_row
from tests.store.test_rollups import snapshot as sqlite_snapshot

COUNTERS = (
    "rollup_hourly", "rollup_items", "rollup_positions", "firsts", "reject_counts",
    "duplicate_counts",
)  # fmt: skip
SHIPPED = ("events", "event_ids", "rejects", "forwarded", "pending_duplicates", "aggregation")
EVENT_COLUMNS = ", ".join(EventRow._fields)


@pytest.fixture
def url() -> Iterator[str]:
    with throwaway_database() as made:
        yield made


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    opened = open_store(url)
    opened.admin.sites()  # connects and migrates: a wrong URL fails here, not in the test
    yield opened
    opened.close()


def count_events(url: str) -> int:
    return int(query(url, "SELECT count(*) FROM events")[0][0])


def row(event_id: str, kind: str = "click", at: int = START, item: str = "i") -> EventRow:
    return EventRow(
        event_id, kind, "shop", "L", item, 1, "home", "k1", 0, None, at, None, None,
        "beacon", None, False, None,
    )  # fmt: skip


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """What the database holds, read on a connection of the test's own."""
    with psycopg.connect(url) as pg:
        return pg.execute(sql).fetchall()


def snapshot(url: str, tables: tuple[str, ...] = COUNTERS + SHIPPED) -> dict[str, Any]:
    with psycopg.connect(url) as pg:
        found = {t: sorted(pg.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
        if "events" in tables:  # in the order stored (which decides the unique clicks)
            found["events"] = pg.execute(
                f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq"
            ).fetchall()
        return found


def reset(url: str) -> None:
    with psycopg.connect(url) as pg:
        pg.execute(f"TRUNCATE {', '.join(COUNTERS + SHIPPED)} RESTART IDENTITY")
        pg.execute(
            "INSERT INTO aggregation (name, seq, at) VALUES ('events', 0, 0), ('rejects', 0, 0)"
        )


# -- migrations ----------------------------------------------------------------------------


def test_migrations_apply_once_and_again_change_nothing(url: str) -> None:
    first = open_store(url)
    first.admin.sites()  # its first connection migrates
    first.close()
    applied = query(url, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert [version for version, _ in applied] == [number for number, _ in migrations()]
    second = open_store(url)
    second.admin.sites()
    second.close()
    with psycopg.connect(url, autocommit=True) as pg:
        assert migrate(QmarkConnection(pg)) == migrations()[-1][0]
    assert query(url, "SELECT version, applied_at FROM schema_migrations ORDER BY version") == (
        applied
    )


def test_collectors_starting_together_all_open_the_store(url: str) -> None:
    ready = threading.Barrier(4)

    def open_one(_: int) -> int:
        opened = open_store(url)
        ready.wait()
        try:
            return len(opened.admin.sites())
        finally:
            opened.close()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(open_one, range(4))) == [0, 0, 0, 0]
    assert query(url, "SELECT count(*) FROM schema_migrations") == [(len(migrations()),)]


# -- shipments -----------------------------------------------------------------------------


def test_an_event_is_stored_once_across_shipments_and_collectors(url: str, store: Store) -> None:
    reject = RejectRow(START, "invalid_event", None, None, None, "nul \x00 in the body")
    assert store.sink.ship("a", 3, Batch([row("e-1"), row("e-2"), row("e-1")], [reject])) == (
        WriteResult(2, 1)
    )
    # The browser failed over: collector b got e-2 as well.
    assert store.sink.ship("b", 7, Batch([row("e-2"), row("e-3")])) == WriteResult(1, 1)
    assert count_events(url) == 3
    assert (store.sink.shipped("a"), store.sink.shipped("b"), store.sink.shipped("c")) == (
        3,
        7,
        None,
    )
    store.aggregator.catch_up()
    assert query(url, "SELECT site, count FROM duplicate_counts") == [("shop", 2)]
    # PostgreSQL's text cannot hold NUL; it becomes U+FFFD instead of refusing the batch.
    assert query(url, "SELECT input FROM rejects") == [("nul \ufffd in the body",)]


def test_a_shipment_sent_again_after_its_commit_changes_nothing(url: str, store: Store) -> None:
    reject = RejectRow(START, "token_expired", None, "shop", None, "{}")
    batch = Batch([row("r-1"), row("r-2", "view"), row("r-1")], [reject])
    assert store.sink.ship("a", 40, batch) == WriteResult(2, 1)
    after = snapshot(url)
    # The spool was not trimmed (the collector died): the same shipment comes again...
    assert store.sink.ship("a", 40, batch) == WriteResult(0, 0)
    # ... or an older one, from a forwarder that lagged behind.
    assert store.sink.ship("a", 12, Batch([row("r-1")], [reject])) == WriteResult(0, 0)
    assert snapshot(url) == after


def test_a_failed_shipment_leaves_nothing_behind(url: str, store: Store) -> None:
    store.sink.ship("a", 1, Batch([row("fine-1")]))
    before = snapshot(url)
    broken = row("broken")._replace(site=None)  # type: ignore[arg-type]  # site is NOT NULL
    reject = RejectRow(START, "token_expired", None, "shop", None, "{}")
    later = START + 5 * DAY_MS  # a day that needs a new partition
    with pytest.raises(StoreError, match="site") as refused:
        store.sink.ship("a", 2, Batch([row("fine-2", at=later), broken], [reject]))
    assert not isinstance(refused.value, StoreUnavailable)  # sending it again will not help
    assert snapshot(url) == before  # events, ids, rejects, counters and forwarded alike
    # The same connection goes on with the next shipment.
    assert store.sink.ship("a", 2, Batch([row("fine-2", at=later)])) == WriteResult(1, 0)
    assert store.sink.shipped("a") == 2


def test_events_go_to_one_partition_per_utc_day(url: str, store: Store) -> None:
    day = START // DAY_MS
    midnight = (day + 1) * DAY_MS
    batch = Batch([row("a-1", at=midnight - 1), row("a-2", at=midnight), row("a-3", at=midnight)])
    store.sink.ship("a", 1, batch)
    store.sink.ship("a", 2, Batch([row("a-4", at=midnight + 2 * DAY_MS)]))
    days = [day, day + 1, day + 3]
    partitions = query(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
    assert partitions == [(partition_name(d),) for d in days] + [("events_default",)]
    assert partition_name(day) == "events_20261118"
    by_partition = "SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1 ORDER BY 1"
    assert query(url, by_partition) == [
        (partition_name(day), 1), (partition_name(day + 1), 2), (partition_name(day + 3), 1),
    ]  # fmt: skip
    # Another collector's store, which has not seen these days yet, ships into them too.
    other = open_store(url)
    assert other.sink.ship("b", 1, Batch([row("b-1", at=midnight), row("a-4", at=midnight)])) == (
        WriteResult(1, 1)
    )
    other.close()


def test_a_day_without_its_partition_lands_in_the_default_one(url: str, store: Store) -> None:
    store.sink.ship("a", 1, Batch([row("kept-1")]))
    with psycopg.connect(url) as pg:  # an operator dropped the day (this store knows not)
        pg.execute(f"DROP TABLE {partition_name(START // DAY_MS)}")
    store.sink.ship("a", 2, Batch([row("kept-2")]))
    # A store that tries to make the partition again finds rows of its day in DEFAULT and
    # leaves them there rather than fail every shipment.
    other = open_store(url)
    other.sink.ship("b", 1, Batch([row("kept-3")]))
    other.close()
    assert query(url, "SELECT id FROM events_default ORDER BY id") == [("kept-2",), ("kept-3",)]


def test_two_collectors_shipping_at_once_store_each_event_once(url: str, store: Store) -> None:
    ids = [f"both-{i:04d}" for i in range(400)]

    def collector(name: str) -> None:
        for n in range(10):  # both ship every id, b in the opposite order
            chunk = ids[n * 40 : (n + 1) * 40]
            chunk = chunk if name == "a" else chunk[::-1]
            store.sink.ship(name, n + 1, Batch([row(i, item=i[-2:], at=START + n) for i in chunk]))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(collector, ["a", "b"]))
    assert count_events(url) == 400
    store.aggregator.catch_up()
    assert query(url, "SELECT sum(count) FROM duplicate_counts") == [(400,)]
    live = snapshot(url, COUNTERS)
    store.aggregator.rebuild()
    assert snapshot(url, COUNTERS) == live


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    written=batches,
    senders=st.lists(st.sampled_from(["a", "b"]), min_size=8, max_size=8),
    again=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_rollups_equal_a_rebuild_and_the_sqlite_store(
    url: str,
    store: Store,
    tmp_path_factory: pytest.TempPathFactory,
    written: list[Batch],
    senders: list[str],
    again: list[bool],
) -> None:
    reset(url)
    spooled = {"a": 0, "b": 0}  # each collector's spool seq
    shipped = []
    for batch, sender, twice in zip(written, senders, again, strict=False):
        spooled[sender] += len(batch.events) + len(batch.rejects)
        shipped.append(store.sink.ship(sender, spooled[sender], batch))
        if twice:  # committed, but the spool did not hear of it
            assert store.sink.ship(sender, spooled[sender], batch) == WriteResult(0, 0)

    store.aggregator.catch_up()
    path = tmp_path_factory.mktemp("same") / "store.db"
    sqlite = open_store(str(path))

    async def write_all() -> list[WriteResult]:
        return [await sqlite.sink.write(batch) for batch in written]

    assert asyncio.run(write_all()) == shipped
    sqlite.aggregator.catch_up()
    sqlite.close()
    live = snapshot(url, (*COUNTERS, "events"))
    with sqlite3.connect(path) as conn:
        stored = conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq").fetchall()
    assert live == {**sqlite_snapshot(path), "events": stored}
    store.aggregator.rebuild()
    assert snapshot(url, (*COUNTERS, "events")) == live


# -- reports, access, connections ----------------------------------------------------------


def test_reports_and_access_run_on_postgres_as_on_sqlite(store: Store, tmp_path: Path) -> None:
    sqlite = open_store(str(tmp_path / "same.db"))

    def made(n: int, kind: str, site: str, placement: str) -> EventRow:
        at = n * HOUR_MS // 3  # 20 minutes apart
        return event_row(n, kind, site, n % 3, n % 4, 1 + n % 5, placement, at, n % 7 == 0)

    views = [made(n, "view", "shop", "home") for n in range(60)]
    clicks = [made(100 + n, "click", "other", "pdp") for n in range(0, 60, 2)]
    batch = Batch(
        views + clicks + views[:5],  # five sent twice
        [RejectRow(START, "token_expired", None, "shop", None, "{}")],
    )
    for either in (store, sqlite):
        either.admin.add_site("shop", ["http://shop.test"])
        either.admin.add_site("other", ["http://other.test"])
    store.sink.ship("a", 1, batch)
    asyncio.run(sqlite.sink.write(batch))
    for either in (store, sqlite):
        either.aggregator.catch_up()
    both = (store.reports, sqlite.reports)
    for bots in (False, True):
        asked = Query(("shop", "other"), START - DAY_MS, START + 3 * DAY_MS, bots)
        for by in GROUPINGS:
            pg_report, sqlite_report = (r.document(asked, by, 10) for r in both)
            assert pg_report == sqlite_report
        pg_health, sqlite_health = (r.health(asked, include_unattributed=True) for r in both)
        assert pg_health == sqlite_health and pg_health.duplicates == 5
        assert both[0].latest_clicks(asked, 5) == both[1].latest_clicks(asked, 5)
        assert list(both[0].export(asked)) == list(both[1].export(asked))
    assert both[0].document(asked, "placement").totals.clicks == 30
    sqlite.close()

    access = store.access
    access.add_user("ops@example", "a long password", True, [])
    reader = access.add_user("reader", "another long one", False, ["shop"])
    with pytest.raises(StoreError, match="exists already"):
        access.add_user("reader", "another long one", False, ["other"])
    assert access.check_password("reader", "another long one") == reader
    assert access.check_password("reader", "not the password") is None
    token, session = access.start_session(reader)
    assert access.session(token) == session and session.user.sites == ("shop",)
    key = access.add_read_key("reader")
    assert access.key_user(key) == reader
    access.end_session(token)
    assert access.session(token) is None
    access.remove_user("reader")
    assert [user.name for user in access.users()] == ["ops@example"]


def test_the_health_check_writes_and_a_stuck_shipment_cannot_hold_the_lock(
    url: str, store: Store
) -> None:
    asyncio.run(store.sink.check())
    assert query(url, "SELECT key FROM meta") == [("heartbeat",)]
    # A collector cut off mid-shipment would hold the writers' lock until the server ends it.
    conn = open_store(url)
    timeout = (
        conn.aggregator.db.connection()
        .execute("SHOW idle_in_transaction_session_timeout")
        .fetchone()
    )
    conn.close()
    assert timeout == ("1min",)
    assert asyncio.run(store.sink.write(Batch([row("w-1"), row("w-1")]))) == WriteResult(1, 1)


def test_a_dropped_connection_is_replaced_and_the_failure_says_try_again(
    url: str, store: Store
) -> None:
    store.sink.ship("a", 1, Batch([row("before")]))
    assert drop_connections(url) >= 1  # as a restarting server or a cut network would
    with pytest.raises(StoreUnavailable):
        store.sink.ship("a", 2, Batch([row("during")]))
    assert store.sink.ship("a", 2, Batch([row("during")])) == WriteResult(1, 0)
    assert count_events(url) == 2


def test_an_unreachable_server_says_try_again() -> None:
    nowhere = open_store("postgresql://postgres@127.0.0.1:9/none?connect_timeout=2")
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        asyncio.run(nowhere.sink.check())
    with pytest.raises(StoreUnavailable):
        nowhere.sink.ship("a", 1, Batch([row("lost")]))


def test_the_adapter_takes_qmark_sql_and_refuses_what_it_cannot_translate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as pg:
        conn = QmarkConnection(pg)
        assert conn.execute("SELECT ? + ?, ?", (1, 2, "x")).fetchall() == [(3, "x")]
        with pytest.raises(ValueError, match="portable"):
            conn.execute("SELECT '?'")
        with pytest.raises(ValueError, match="portable"):
            conn.execute("SELECT 7 % 2")
        conn.execute("CREATE TABLE t (a integer)")
        with transaction(conn):
            conn.executemany("INSERT INTO t (a) VALUES (?)", [(1,), (2,)])
        with pytest.raises(ZeroDivisionError), transaction(conn):
            conn.execute("INSERT INTO t (a) VALUES (?)", (3,))
            print(1 / 0)
        assert list(conn.execute("SELECT a FROM t ORDER BY a")) == [(1,), (2,)]
