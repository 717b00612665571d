"""Erasing a site: every row that names it, in every table, and the ids of its events.

Which tables name a site is read from the schema itself: every table with a ``site``
column, and those in ``NAMED_BY`` (a table added later with a ``site`` column is erased
too, with nothing to change here). Rows go in small batches by each table's key, so on
SQLite the one writer is never held long. The site itself goes first, so no new token of
it verifies once collectors have re-read their sites (within seconds); ``erase`` sweeps
again after ``settle`` seconds for what they acknowledged meanwhile.

With a shared PostgreSQL store, collectors' spools may still hold events of the site: the
store remembers a SHA-256 of the name (``erased_sites``, never the name), and a shipment
drops what it carries for an erased site. A spool's copy of the sites follows within
seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from clickthru.clock import now_ms
from clickthru.errors import StoreError
from clickthru.store.database import Database, Table
from clickthru.store.rows import hash_site

SITE_COLUMN = "site"
NAMED_BY = {"sites": "name"}  # tables that name a site in a column of another name
# Rows that reference the site's row: removed with it, before the rest, in one transaction.
FIRST = ("user_sites", "site_keys", "sites")
BATCH = 2000
SETTLE = 10.0  # seconds: a collector re-reads its sites every 5


def site_tables(tables: dict[str, Table]) -> dict[str, str]:
    """Every table that names a site, and the column that does."""
    found = {name: SITE_COLUMN for name, table in tables.items() if SITE_COLUMN in table.columns}
    found.update({name: column for name, column in NAMED_BY.items() if name in tables})
    return found


class SiteEraser:
    def __init__(self, db: Database, batch: int = BATCH) -> None:
        self.db = db
        self.batch = batch

    def erase(
        self, name: str, settle: float = SETTLE, wait: Callable[[float], Any] = time.sleep
    ) -> dict[str, int]:
        """Removes every row of the site; returns the rows removed, by table."""
        conn = self.db.connection()
        known = conn.execute("SELECT 1 FROM sites WHERE name = ?", (name,)).fetchone()
        erased = conn.execute(  # erased before: sweep again, for anything left behind
            "SELECT 1 FROM erased_sites WHERE name_hash = ?", (hash_site(name),)
        ).fetchone()
        if not known and not erased:
            raise StoreError(f"no site named {name!r}")
        removed = self.sweep(name)
        if settle > 0:
            wait(settle)
            for table, count in self.sweep(name).items():
                removed[table] = removed.get(table, 0) + count
        return {table: count for table, count in removed.items() if count}

    def sweep(self, name: str) -> dict[str, int]:
        """One pass over every table that names a site."""
        tables = self.db.tables()
        named = site_tables(tables)
        removed: dict[str, int] = {}

        def first(conn: Any) -> None:
            conn.execute(
                "INSERT INTO erased_sites (name_hash, erased_at) VALUES (?, ?)"
                " ON CONFLICT (name_hash) DO NOTHING",
                (hash_site(name), now_ms()),
            )
            for table in FIRST:
                if table in named:
                    found = conn.execute(f"DELETE FROM {table} WHERE {named[table]} = ?", (name,))
                    removed[table] = found.rowcount

        self.db.write(first)
        removed["event_ids"] = 0
        while count := self.db.write(lambda conn: self._events(conn, name, removed)):
            removed["events"] = removed.get("events", 0) + count
        for table, column in sorted(named.items()):
            if table in FIRST or table == "events":
                continue
            key = ("seq",) if "seq" in tables[table].columns else tables[table].key
            removed[table] = 0
            while True:
                count = self.db.write(
                    partial(self._rows, table=table, column=column, key=key, name=name)
                )
                removed[table] += count
                if count < self.batch or not key:
                    break
        return removed

    def _events(self, conn: Any, name: str, removed: dict[str, int]) -> int:
        seqs = [
            seq
            for (seq,) in conn.execute(
                f"SELECT seq FROM events WHERE site = ? LIMIT {self.batch}", (name,)
            )
        ]
        if not seqs:
            return 0
        within = f"seq IN ({', '.join('?' * len(seqs))})"
        removed["event_ids"] += conn.execute(
            f"DELETE FROM event_ids WHERE id IN (SELECT id FROM events WHERE {within})", seqs
        ).rowcount
        conn.execute(f"DELETE FROM events WHERE {within}", seqs)
        return len(seqs)

    def _rows(self, conn: Any, *, table: str, column: str, key: tuple[str, ...], name: str) -> int:
        if not key:  # no key to go by: all at once
            return int(conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,)).rowcount)
        columns = ", ".join(f'"{k}"' for k in key)
        return int(
            conn.execute(
                f"DELETE FROM {table} WHERE ({columns}) IN"
                f" (SELECT {columns} FROM {table} WHERE {column} = ? LIMIT {self.batch})",
                (name,),
            ).rowcount
        )
