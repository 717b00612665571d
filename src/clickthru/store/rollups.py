"""Rollups: the counters reports read, kept up to date by the writer as events are stored.

The writer learns which events were new (``INSERT ... RETURNING``) and which (list, item)
pairs were clicked or viewed for the first time, tallies a whole group commit in memory and
adds it to the counters with one upsert per table, in the same transaction as the events.
``rebuild`` recomputes the same counters from the raw tables with SQL alone: an
independent computation, so the two can be checked against each other.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from clickthru.clock import DAY_MS, HOUR_MS
from clickthru.store import EventRow, RejectRow


class Executor(Protocol):
    """What the rollups need of a connection: sqlite3's, or the PostgreSQL adapter."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


COUNTERS = ("clicks", "views", "serves", "unique_clicks", "unique_views")
UNIQUE_KINDS = frozenset({"click", "view"})
# kind -> (its counter, its unique counter) as indexes into COUNTERS
KIND_COUNTERS: dict[str, tuple[int, int | None]] = {
    "click": (0, 3),
    "view": (1, 4),
    "serve": (2, None),
}
# Multi-row statements stay far below SQLite's 32,766 parameters.
ROWS_PER_STATEMENT = 500

# table -> its key columns after site
TABLES = {
    "rollup_hourly": "hour, placement, bot",
    "rollup_items": "day, placement, item, bot",
    "rollup_positions": "day, placement, position, bot",
}


# The SQL here runs on SQLite and on PostgreSQL alike: qmark parameters (the PostgreSQL
# store adapts them), conflict targets named, the existing row named by its table.
def _upsert(table: str, keys: str) -> str:
    columns = f"site, {keys}, {', '.join(COUNTERS)}"
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTERS)
    placeholders = ", ".join("?" * len(columns.split(", ")))
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
        f" ON CONFLICT (site, {keys}) DO UPDATE SET {adds}"
    )


UPSERTS = {table: _upsert(table, keys) for table, keys in TABLES.items()}

# PostgreSQL takes a whole tally as one statement over arrays (one parse, one plan), where
# row by row costs more than the events' own insert. Column types, for the casts:
PG_TYPES = {"site": "text", "hour": "bigint", "day": "bigint", "placement": "text",
            "item": "text", "position": "bigint", "bot": "integer"}  # fmt: skip


def _array_upsert(table: str, keys: str) -> str:
    columns = ["site", *keys.split(", "), *COUNTERS]
    arrays = ", ".join(f"?::{PG_TYPES.get(c, 'integer')}[]" for c in columns)
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTERS)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        f" ON CONFLICT (site, {keys}) DO UPDATE SET {adds}"
    )


ARRAY_UPSERTS = {table: _array_upsert(table, keys) for table, keys in TABLES.items()}
ARRAY_FIRSTS = (
    "INSERT INTO firsts (site, list_id, item, kind)"
    " SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[])"
    " ON CONFLICT (site, list_id, item, kind) DO NOTHING RETURNING site, list_id, item, kind"
)
ADD_REJECTS = (
    "INSERT INTO reject_counts (site, hour, reason, count) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (site, hour, reason) DO UPDATE SET count = reject_counts.count + excluded.count"
)
ADD_DUPLICATES = (
    "INSERT INTO duplicate_counts (site, hour, count) VALUES (?, ?, ?)"
    " ON CONFLICT (site, hour) DO UPDATE SET count = duplicate_counts.count + excluded.count"
)


def _chunks(rows: Sequence[tuple[object, ...]]) -> Iterable[Sequence[tuple[object, ...]]]:
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        yield rows[start : start + ROWS_PER_STATEMENT]


def new_firsts(
    conn: Executor, events: Sequence[EventRow], arrays: bool = False
) -> set[tuple[str, ...]]:
    """Records the (site, list, item, kind) of these clicks and views; returns the new ones."""
    keys = list(
        dict.fromkeys((e.site, e.list_id, e.item, e.kind) for e in events if e.kind in UNIQUE_KINDS)
    )
    if arrays:
        columns = [list(column) for column in zip(*keys, strict=True)] if keys else [[]] * 4
        return {tuple(row) for row in conn.execute(ARRAY_FIRSTS, columns)}
    found: set[tuple[str, ...]] = set()
    for chunk in _chunks(keys):
        values = ", ".join(["(?, ?, ?, ?)"] * len(chunk))
        found.update(
            conn.execute(
                f"INSERT INTO firsts (site, list_id, item, kind) VALUES {values}"
                " ON CONFLICT (site, list_id, item, kind) DO NOTHING"
                " RETURNING site, list_id, item, kind",
                list(itertools.chain(*chunk)),
            )
        )
    return found


def add(
    conn: Executor,
    stored: Sequence[EventRow],
    duplicates: Sequence[EventRow],
    rejects: Sequence[RejectRow],
    arrays: bool = False,
) -> None:
    """Adds newly stored events, duplicates and rejects to the counters (``arrays``: as
    PostgreSQL array statements)."""
    firsts = new_firsts(conn, stored, arrays)
    # One pass over the events into their distinct combinations (this runs on the writer
    # thread, holding the GIL the requests need: per event it must stay cheap); then the
    # far fewer combinations into the three tables.
    combinations: Counter[tuple[Any, ...]] = Counter()
    for e in stored:
        pair = (e.site, e.list_id, e.item, e.kind)
        first = pair in firsts
        if first:
            firsts.discard(pair)  # only the first of them in this group is the first
        combinations[
            (e.site, e.received_at, e.placement, e.item, e.position, e.bot, e.kind, first)
        ] += 1
    tallies: dict[str, defaultdict[tuple[object, ...], list[int]]] = {
        table: defaultdict(lambda: [0] * len(COUNTERS)) for table in TABLES
    }
    hourly, items, positions = (tallies[table] for table in TABLES)  # in TABLES' order
    for (site, at, placement, item, position, bot, kind, first), n in combinations.items():
        hour, day, bot = at // HOUR_MS, at // DAY_MS, int(bot)
        raw, unique = KIND_COUNTERS[kind]
        for sums in (
            hourly[(site, hour, placement, bot)],
            items[(site, day, placement, item, bot)],
            positions[(site, day, placement, position, bot)],
        ):
            sums[raw] += n
            if first and unique is not None:
                sums[unique] += n
    for table, by_key in tallies.items():
        rows = [(*key, *sums) for key, sums in by_key.items()]
        if rows and arrays:
            conn.execute(ARRAY_UPSERTS[table], [list(column) for column in zip(*rows, strict=True)])
        elif rows:
            conn.executemany(UPSERTS[table], rows)
    if duplicates:
        seen: defaultdict[tuple[str, int], int] = defaultdict(int)
        for event in duplicates:
            seen[(event.site, event.received_at // HOUR_MS)] += 1
        conn.executemany(ADD_DUPLICATES, [(*key, count) for key, count in seen.items()])
    if rejects:
        refused: defaultdict[tuple[str, int, str], int] = defaultdict(int)
        for reject in rejects:
            refused[(reject.site or "", reject.received_at // HOUR_MS, reject.reason)] += 1
        conn.executemany(ADD_REJECTS, [(*key, count) for key, count in refused.items()])


def _rebuild_table(table: str, keys: str) -> str:
    bucket, *rest = keys.split(", ")  # hour or day first, then the rest of the key
    select = ", ".join([f"received_at / {HOUR_MS if bucket == 'hour' else DAY_MS}", *rest])
    return (
        f"INSERT INTO {table} (site, {keys}, {', '.join(COUNTERS)})"
        f" SELECT site, {select},"
        " sum(CASE WHEN kind = 'click' THEN 1 ELSE 0 END),"
        " sum(CASE WHEN kind = 'view' THEN 1 ELSE 0 END),"
        " sum(CASE WHEN kind = 'serve' THEN 1 ELSE 0 END),"
        " sum(CASE WHEN kind = 'click' THEN first ELSE 0 END),"
        " sum(CASE WHEN kind = 'view' THEN first ELSE 0 END)"
        f" FROM flagged GROUP BY site, {select}"
    )


FLAGGED = (
    "CREATE TEMP TABLE flagged AS SELECT site, received_at, placement, item, position,"
    " bot, kind, CASE WHEN kind IN ('click', 'view') AND row_number() OVER ("
    "   PARTITION BY site, list_id, item, kind ORDER BY seq) = 1 THEN 1 ELSE 0 END AS first"
    " FROM events"
)


def rebuild(conn: Executor) -> None:
    """Recomputes every counter but the duplicates from the raw tables (in a transaction
    the caller holds)."""
    for table in (*TABLES, "firsts", "reject_counts"):
        conn.execute(f"DELETE FROM {table}")
    conn.execute(
        "INSERT INTO firsts (site, list_id, item, kind)"
        # GROUP BY, not DISTINCT: rows come sorted, which fills the index twice as fast.
        " SELECT site, list_id, item, kind FROM events WHERE kind IN ('click', 'view')"
        " GROUP BY site, list_id, item, kind"
    )
    conn.execute(FLAGGED)
    try:
        for table, keys in TABLES.items():
            conn.execute(_rebuild_table(table, keys))
    finally:
        conn.execute("DROP TABLE flagged")
    conn.execute(
        "INSERT INTO reject_counts (site, hour, reason, count)"
        " SELECT coalesce(site, ''), received_at / 3600000, reason, count(*)"
        " FROM rejects GROUP BY 1, 2, 3"
    )
