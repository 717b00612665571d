"""Erasing a site on SQLite and PostgreSQL: afterwards no table of the schema, as the
database itself lists them, has a row that names the site, and the other site's numbers
are what they were."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from clickthru.backend import Store, open_store
from clickthru.clock import HOUR_MS, now_ms
from clickthru.errors import StoreError
from clickthru.reports import Query
from clickthru.store.erase import SiteEraser
from clickthru.store.rows import Batch, EventRow, RejectRow, RetryRow

GONE = "erase-me"
STAYS = "stays"
NOW = now_ms()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
    else:
        from tests.pg import throwaway_database

        with throwaway_database() as made:
            yield made


def traces(url: str, needle: str) -> dict[str, int]:
    """Rows naming ``needle`` in any column of any table, found the schema's own way."""
    found: dict[str, int] = {}
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as pg:
            columns = pg.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema()"
            ).fetchall()
            for table, column in columns:
                (count,) = pg.execute(  # type: ignore[misc]
                    f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s',
                    (f"%{needle}%",),
                ).fetchone()
                if count:
                    found[f"{table}.{column}"] = count
        return found
    with contextlib.closing(sqlite3.connect(url)) as conn:
        tables = [
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            for column in [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]:
                (count,) = conn.execute(
                    f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE ?',
                    (f"%{needle}%",),
                ).fetchone()
                if count:
                    found[f"{table}.{column}"] = count
    return found


def event(event_id: str, site: str, kind: str, at: int) -> EventRow:
    return EventRow(
        event_id, kind, site, f"list-{event_id[:3]}", f"item-{event_id[-1]}", 1, "home", "k1",
        at // 1000, None, at, None, None, "fetch", "https://shop.example", False, None,
    )  # fmt: skip


def fill(store: Store) -> None:
    for site in (GONE, STAYS):
        events = [  # 40 views and 20 clicks a site
            event(f"{site}-{n}-{kind}", site, kind, NOW - n * HOUR_MS)
            for n in range(40)
            for kind in ("view", "click")[: 1 + n % 2]
        ]
        rejects = [RejectRow(NOW, "origin_not_allowed", None, site, "https://x.example", "{}")]
        asyncio.run(store.sink.write(Batch(events, rejects, [RetryRow(site, NOW)])))
        asyncio.run(store.sink.write(Batch(events[:3])))  # sent again: duplicates
    store.admin.rotate_key(GONE)
    store.access.add_user("customer", "a long password", False, [GONE, STAYS])
    store.access.add_user("only-gone", "a long password", False, [GONE])
    store.aggregator.catch_up()


def numbers(store: Store) -> Any:
    """The other site's counters and health (not when they were read)."""
    query = Query((STAYS,), 0, NOW + HOUR_MS, True)
    documents = [store.reports.document(query, by, None) for by in ("day", "item", "position")]
    return [(d.totals, d.rows) for d in documents], store.reports.health(query)


def test_erasing_a_site_leaves_no_row_that_names_it(url: str) -> None:
    store = open_store(url)
    try:
        store.admin.add_site(GONE, ["https://shop.example"])
        store.admin.add_site(STAYS, ["https://shop.example"])
        fill(store)
        before = numbers(store)
        assert traces(url, GONE)  # the scan finds the site before

        removed = SiteEraser(store.admin.db, batch=7).erase(GONE, settle=0)

        assert traces(url, GONE) == {}
        assert removed["events"] == 60 and removed["sites"] == 1 and removed["site_keys"] == 2
        assert removed["user_sites"] == 2 and removed["rollup_items"] > 0
        assert numbers(store) == before
        assert store.access.user("customer").sites == (STAYS,)
        assert store.access.user("only-gone").sites == ()
        with pytest.raises(StoreError):
            SiteEraser(store.admin.db).erase("never-was", settle=0)
        assert SiteEraser(store.admin.db).erase(GONE, settle=0) == {}  # again: nothing left
        # The name may be used again, for a new site with nothing of the old one.
        store.admin.add_site(GONE, ["https://shop.example"])
        assert store.reports.totals(Query((GONE,), 0, NOW + HOUR_MS, True)).views == 0
    finally:
        store.close()


def test_clickthru_site_erase_asks_for_the_name_and_prints_what_went(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from clickthru.cli import cli

    db = tmp_path / "store.db"
    store = open_store(str(db))
    store.admin.add_site(GONE, ["https://shop.example"])
    store.admin.add_site(STAYS, ["https://shop.example"])
    fill(store)
    store.close()
    command = ["--store", str(db), "site", "erase", GONE]
    typo = CliRunner().invoke(cli, command, input="erase\n")
    assert typo.exit_code == 1 and "nothing erased" in typo.output
    assert traces(str(db), GONE)
    done = CliRunner().invoke(
        cli, [*command, "--settle", "0"], input=f"{GONE}\n", catch_exceptions=False
    )
    assert done.exit_code == 0
    assert "events\t60 rows" in done.output and f"site {GONE} erased" in done.output
    assert traces(str(db), GONE) == {}
