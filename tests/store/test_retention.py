"""Retention on SQLite and PostgreSQL: a purge removes what is past its retention and
nothing else, reports over the kept range (and the counters of the purged days) stay as
they were, and an event sent again after its raw row is gone is not counted twice."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from clickthru.backend import Store, open_store
from clickthru.clock import DAY_MS, HOUR_MS, now_ms
from clickthru.config import Retention, SiteRetention
from clickthru.reports import Query
from clickthru.store.retention import day_start
from clickthru.store.rows import Batch, EventRow, RejectRow

NOW = now_ms()
TODAY = day_start(NOW)
RULES = Retention(sites={"brief": SiteRetention(events_days=3, rejects_days=2)})


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
    else:
        from tests.pg import throwaway_database

        with throwaway_database() as made:
            yield made


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    opened = open_store(url, retention=RULES)
    opened.admin.add_site("shop", ["https://shop.example"])
    opened.admin.add_site("brief", ["https://brief.example"])
    yield opened
    opened.close()


def read(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as pg:
            return pg.execute(sql.replace("?", "%s"), params).fetchall()
    with contextlib.closing(sqlite3.connect(url)) as conn:
        return conn.execute(sql, params).fetchall()


def event(event_id: str, site: str, received_at: int, kind: str = "click") -> EventRow:
    return EventRow(
        event_id, kind, site, f"list-{event_id}", "dune", 1, "home", "k1", received_at // 1000,
        None, received_at, None, None, "fetch", "https://shop.example", False, None,
    )  # fmt: skip


def write(store: Store, batch: Batch) -> Any:
    return asyncio.run(store.sink.write(batch))


# shop keeps 400 days, brief 3; ids are kept 8 days; rejects 30 days (brief's 2)
EVENTS = {
    "shop-old": ("shop", TODAY - 401 * DAY_MS + HOUR_MS),  # past 400 days: goes
    "shop-kept": ("shop", TODAY - 399 * DAY_MS),
    "shop-now": ("shop", NOW - HOUR_MS),
    "brief-10d": ("brief", TODAY - 10 * DAY_MS + HOUR_MS),  # goes, and its id with it
    "brief-5d": ("brief", TODAY - 5 * DAY_MS + HOUR_MS),  # goes; its id stays (8 days)
    "brief-now": ("brief", NOW - HOUR_MS),
}
GONE = {"shop-old", "brief-10d", "brief-5d"}
REJECTS = {"old": (None, TODAY - 40 * DAY_MS), "brief-3d": ("brief", TODAY - 3 * DAY_MS),
           "shop-3d": ("shop", TODAY - 3 * DAY_MS), "new": (None, NOW - HOUR_MS)}  # fmt: skip


def fill(store: Store) -> None:
    views = [event(f"{name}-view", site, at, "view") for name, (site, at) in EVENTS.items()]
    clicks = [event(name, site, at) for name, (site, at) in EVENTS.items()]
    write(store, Batch(events=views + clicks))
    write(
        store,
        Batch(
            rejects=[
                RejectRow(at, reason, None, site, None, None)
                for reason, (site, at) in REJECTS.items()
            ]
        ),
    )
    store.aggregator.catch_up()


def reports(store: Store, since: int) -> Any:
    query = Query(("shop", "brief"), since, NOW + DAY_MS, False)
    return (
        store.reports.document(query, "day", None),
        store.reports.document(query, "item", None),
        store.reports.document(query, "position", None),
    )


def counts(document: Any) -> Any:
    return (document.totals, document.rows)


def test_a_purge_removes_what_is_past_retention_and_nothing_else(url: str, store: Store) -> None:
    fill(store)
    before_all = [counts(d) for d in reports(store, 0)]
    kept_range = TODAY - 2 * DAY_MS
    before_kept = [counts(d) for d in reports(store, kept_range)]
    # Stored after the last count: not counted yet, so no purge may touch it.
    write(store, Batch(events=[event("shop-uncounted", "shop", TODAY - 500 * DAY_MS)]))

    planned = store.purger.dry_run(NOW)
    removed = store.purger.purge(NOW)

    ids = {row[0] for row in read(url, "SELECT id FROM events")}
    expected = {f"{e}{suffix}" for e in EVENTS if e not in GONE for suffix in ("", "-view")}
    assert ids == expected | {"shop-uncounted"}
    assert (
        removed["events"]
        == 2 * len(GONE)
        == sum(n for (kind, _), n in planned.items() if kind == "events")
    )
    reasons = {row[0] for row in read(url, "SELECT reason FROM rejects")}
    assert reasons == {"shop-3d", "new"}  # 30 days for shop, 2 for brief
    assert removed["rejects"] == 2
    # The ids of brief's events purged within 8 days stay; those older go.
    kept_ids = read(url, "SELECT id FROM event_ids WHERE id LIKE ?", "brief-5d%")
    assert {row[0] for row in kept_ids} == {"brief-5d", "brief-5d-view"}
    assert not read(url, "SELECT id FROM event_ids WHERE id LIKE ?", "brief-10d%")
    # The (list, item) pairs first seen more than 8 days ago are forgotten.
    assert {row[0] for row in read(url, "SELECT list_id FROM firsts")} == {
        "list-shop-now", "list-brief-5d", "list-brief-now",
        "list-shop-now-view", "list-brief-5d-view", "list-brief-now-view",
    }  # fmt: skip

    # The counters stay: every report reads the same, over the kept range and over all.
    assert [counts(d) for d in reports(store, kept_range)] == before_kept
    assert [counts(d) for d in reports(store, 0)] == before_all
    # A second purge finds nothing; the purged rows are told.
    assert not any(store.purger.purge(NOW).values())
    status = store.purger.status()
    assert status.purged["events"] == 2 * len(GONE)
    assert status.oldest["events"] == TODAY - 500 * DAY_MS  # the uncounted one, kept


# SQLite keeps one table: its rows are purged one batch at a time (the tests above).
@pytest.mark.parametrize("url", ["postgresql"], indirect=True)
def test_the_day_partitions_past_every_site_s_retention_are_dropped_whole(
    url: str, store: Store
) -> None:
    fill(store)
    partitions = (
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass"
    )
    days = {row[0] for row in read(url, partitions)}
    old_day = "events_" + _day(TODAY - 401 * DAY_MS)
    assert old_day in days
    store.purger.purge(NOW)
    assert {row[0] for row in read(url, partitions)} == days - {old_day}


def _day(ms: int) -> str:
    import time

    return time.strftime("%Y%m%d", time.gmtime(ms / 1000))


def test_an_event_sent_again_after_its_row_is_purged_is_not_counted_twice(store: Store) -> None:
    fill(store)
    store.purger.purge(NOW)
    before = counts(reports(store, 0)[0])
    # brief-5d's row is gone (brief keeps 3 days); the browser's outbox sends it again.
    again = write(store, Batch(events=[event("brief-5d", "brief", NOW)]))
    assert (again.accepted, again.duplicates) == (0, 1)
    store.aggregator.catch_up()
    assert counts(reports(store, 0)[0]) == before


def test_a_rebuild_after_a_purge_keeps_the_counters_of_the_purged_days(store: Store) -> None:
    fill(store)
    store.purger.purge(NOW)
    before = [counts(d) for d in reports(store, 0)]
    store.aggregator.rebuild()
    assert [counts(d) for d in reports(store, 0)] == before


def test_expired_and_old_sessions_go(url: str, store: Store) -> None:
    user = store.access.add_user("op", "a long password", True, [])
    old, _ = store.access.start_session(user)
    new, _ = store.access.start_session(user)
    store.purger.db.write(
        lambda conn: conn.execute(
            "UPDATE sessions SET created_at = ? WHERE token_hash = ?",
            (NOW - 20 * DAY_MS, hashlib.sha256(old.encode()).hexdigest()),
        )
    )
    removed = store.purger.purge(NOW)
    assert removed["sessions"] == 1
    assert store.access.session(old) is None
    assert store.access.session(new) is not None


def test_retention_is_read_from_the_settings_file_per_site(tmp_path: Path) -> None:
    from clickthru.config import load_settings
    from clickthru.errors import ConfigError
    from clickthru.store.retention import Rules

    toml = tmp_path / "clickthru.toml"
    toml.write_text(
        "[retention]\nevents_days = 90\n[retention.sites.brief]\nevents_days = 3\n", "utf-8"
    )
    rules = Rules(load_settings(toml, env={}).retention)
    assert (rules.days("events", "brief"), rules.days("events", "shop")) == (3, 90)
    assert (rules.days("rejects", "brief"), rules.days("event_ids")) == (30, 8)
    assert rules.cutoff("events", "brief", NOW) == TODAY - 3 * DAY_MS
    toml.write_text("[retention]\nevent_ids_days = 2\n", "utf-8")  # below the retry window
    with pytest.raises(ConfigError):
        load_settings(toml, env={})


def test_clickthru_purge_says_what_would_go_then_removes_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from clickthru.cli import cli

    db = tmp_path / "store.db"
    opened = open_store(str(db), retention=RULES)
    opened.admin.add_site("shop", ["https://shop.example"])
    opened.admin.add_site("brief", ["https://brief.example"])
    fill(opened)
    opened.close()
    (tmp_path / "clickthru.toml").write_text("[retention.sites.brief]\nevents_days = 3\n")
    options = ["--config", str(tmp_path / "clickthru.toml"), "--store", str(db), "purge"]

    dry = CliRunner().invoke(cli, [*options, "--dry-run"], catch_exceptions=False)
    assert "events\tbrief\t4 rows would go" in dry.output
    assert "events\tshop\t2 rows would go" in dry.output
    assert len(read(str(db), "SELECT id FROM events")) == 2 * len(EVENTS)  # nothing gone yet
    done = CliRunner().invoke(cli, options, catch_exceptions=False)
    assert "events\t6 rows purged" in done.output
    assert len(read(str(db), "SELECT id FROM events")) == 2 * (len(EVENTS) - len(GONE))
