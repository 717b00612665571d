"""Rollups: the counters reports read, and the SQL that fills them.

``count`` adds a range of stored events to the counters, ``count_rejects`` and
``count_duplicates`` the refusals and the retries; the aggregator runs them in its own
transactions, behind the acknowledgements. ``rebuild`` recomputes every counter from the
raw tables: an independent computation, so the two can be checked against each other.

All of it is SQL that SQLite and PostgreSQL both run (``?`` parameters; the PostgreSQL
database adapts them). The work happens inside the database: on SQLite the writer thread
holds no GIL while it counts, so requests go on being served meanwhile.

A click or view is *unique* the first time its (site, list, item, kind) is seen: ``firsts``
remembers those, and ``new_firsts`` holds, for the range being counted, the ``seq`` of
each pair's first event that ``firsts`` did not know yet.
"""

from __future__ import annotations

from typing import Any

from clickthru.clock import DAY_MS, HOUR_MS, now_ms
from clickthru.store import orders

COUNTERS = ("clicks", "views", "serves", "unique_clicks", "unique_views")

# table -> its key columns after site, as stored and as computed from an event
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "rollup_hourly": (
        ("hour", f"received_at / {HOUR_MS}"), ("placement", "placement"), ("bot", "bot"),
    ),
    "rollup_items": (
        ("day", f"received_at / {DAY_MS}"), ("placement", "placement"), ("item", "item"),
        ("bot", "bot"),
    ),
    "rollup_positions": (
        ("day", f"received_at / {DAY_MS}"), ("placement", "placement"),
        ("position", "position"), ("bot", "bot"),
    ),
    "rollup_variants": (
        ("day", f"received_at / {DAY_MS}"), ("placement", "placement"), ("variant", "variant"),
        ("bot", "bot"),
    ),
}  # fmt: skip
# Conversions are counted apart, into ``orders`` (``store/orders.py``).
COUNTED_KINDS = "e.kind IN ('click', 'view', 'serve')"

NEW_FIRSTS = (
    "CREATE TEMP TABLE IF NOT EXISTS new_firsts"
    " (seq bigint PRIMARY KEY, site text, list_id text, item text, kind text,"
    " received_at bigint)"
)
FIND_FIRSTS = (
    "INSERT INTO new_firsts (seq, site, list_id, item, kind, received_at)"
    " SELECT e.seq, e.site, e.list_id, e.item, e.kind, e.received_at FROM events e"
    " JOIN (SELECT min(seq) AS seq FROM events"
    "  WHERE seq > ? AND seq <= ? AND kind IN ('click', 'view')"
    "  GROUP BY site, list_id, item, kind) f ON f.seq = e.seq"
)
FORGET_KNOWN = (
    "DELETE FROM new_firsts WHERE EXISTS (SELECT 1 FROM firsts f WHERE f.site = new_firsts.site"
    " AND f.list_id = new_firsts.list_id AND f.item = new_firsts.item"
    " AND f.kind = new_firsts.kind)"
)
REMEMBER_FIRSTS = (
    "INSERT INTO firsts (site, list_id, item, kind, received_at)"
    " SELECT site, list_id, item, kind, received_at FROM new_firsts"
)


def _sums(first: str) -> str:
    """The five counters over events ``e``; ``first`` is true for a pair's first event."""
    return (
        "sum(CASE WHEN e.kind = 'click' THEN 1 ELSE 0 END),"
        " sum(CASE WHEN e.kind = 'view' THEN 1 ELSE 0 END),"
        " sum(CASE WHEN e.kind = 'serve' THEN 1 ELSE 0 END),"
        f" sum(CASE WHEN e.kind = 'click' AND {first} THEN 1 ELSE 0 END),"
        f" sum(CASE WHEN e.kind = 'view' AND {first} THEN 1 ELSE 0 END)"
    )


def _add_range(table: str) -> str:
    keys = TABLES[table]
    names = ", ".join(name for name, _ in keys)
    computed = ", ".join(f"e.{expression}" for _, expression in keys)
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTERS)
    return (
        f"INSERT INTO {table} (site, {names}, {', '.join(COUNTERS)})"
        f" SELECT e.site, {computed}, {_sums('n.seq IS NOT NULL')}"
        " FROM events e LEFT JOIN new_firsts n ON n.seq = e.seq"
        f" WHERE e.seq > ? AND e.seq <= ? AND {COUNTED_KINDS} GROUP BY e.site, {computed}"
        f" ON CONFLICT (site, {names}) DO UPDATE SET {adds}"
    )


ADD_RANGE = {table: _add_range(table) for table in TABLES}
ADD_REJECTS = (
    "INSERT INTO reject_counts (site, hour, reason, count)"
    f" SELECT coalesce(site, ''), received_at / {HOUR_MS}, reason, count(*) FROM rejects"
    f" WHERE seq > ? AND seq <= ? GROUP BY coalesce(site, ''), received_at / {HOUR_MS}, reason"
    " ON CONFLICT (site, hour, reason) DO UPDATE SET count = reject_counts.count + excluded.count"
)
ADD_DUPLICATES = (
    "INSERT INTO duplicate_counts (site, hour, count)"
    f" SELECT site, received_at / {HOUR_MS}, count(*) FROM pending_duplicates"
    f" WHERE seq <= ? GROUP BY site, received_at / {HOUR_MS}"
    " ON CONFLICT (site, hour) DO UPDATE SET count = duplicate_counts.count + excluded.count"
)


def count(conn: Any, after: int, upto: int) -> None:
    """Adds the events with ``after < seq <= upto`` to the counters, ``firsts`` and
    ``orders``."""
    conn.execute(NEW_FIRSTS)
    conn.execute("DELETE FROM new_firsts")
    conn.execute(FIND_FIRSTS, (after, upto))
    conn.execute(FORGET_KNOWN)
    conn.execute(REMEMBER_FIRSTS)
    for sql in ADD_RANGE.values():
        conn.execute(sql, (after, upto))
    conn.execute("DELETE FROM new_firsts")
    orders.merge(conn, after, upto)


def count_rejects(conn: Any, after: int, upto: int) -> None:
    conn.execute(ADD_REJECTS, (after, upto))


def count_duplicates(conn: Any, upto: int) -> None:
    """Retries leave no event row; the sink notes each in ``pending_duplicates``, and this
    moves them into the hourly counts."""
    conn.execute(ADD_DUPLICATES, (upto,))
    conn.execute("DELETE FROM pending_duplicates WHERE seq <= ?", (upto,))


# -- rebuild -----------------------------------------------------------------------------


def _rebuild_table(table: str) -> str:
    keys = TABLES[table]
    names = ", ".join(name for name, _ in keys)
    computed = ", ".join(f"e.{expression}" for _, expression in keys)
    return (
        f"INSERT INTO {table} (site, {names}, {', '.join(COUNTERS)})"
        f" SELECT e.site, {computed}, {_sums('e.first = 1')}"
        f" FROM flagged e GROUP BY e.site, {computed}"
    )


FLAGGED = (
    "CREATE TEMP TABLE flagged AS SELECT site, received_at, placement, item, position,"
    " variant, bot, kind, CASE WHEN kind IN ('click', 'view') AND row_number() OVER ("
    "   PARTITION BY site, list_id, item, kind ORDER BY seq) = 1 THEN 1 ELSE 0 END AS first"
    " FROM events e WHERE seq <= {upto} AND " + COUNTED_KINDS + " AND NOT EXISTS (SELECT 1"
    " FROM purged p WHERE p.kind = 'events' AND p.site = e.site AND e.received_at < p.cutoff)"
)
# Counters of days already purged cannot be recomputed: a rebuild keeps them (each
# rollup's first key is its hour or day; an order's is the day of its first report).
UNIT_MS = {"hour": HOUR_MS, "day": DAY_MS}
KEPT = {table: f"{keys[0][0]} < p.cutoff / {UNIT_MS[keys[0][0]]}" for table, keys in TABLES.items()}
KEPT["orders"] = f"day < p.cutoff / {DAY_MS}"
REJECTS_HORIZON = (
    "SELECT coalesce(min(cutoff), 0) FROM purged WHERE kind = 'rejects' AND cutoff > 0"
)


def rebuild(conn: Any) -> int:
    """Recomputes every counter but the duplicates from the raw tables, and sets the
    watermarks to what it counted (in a write transaction the caller holds); returns how
    many events it counted."""
    (events_upto,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    (rejects_upto,) = conn.execute("SELECT coalesce(max(seq), 0) FROM rejects").fetchone()
    for table, kept in KEPT.items():
        conn.execute(
            f"DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM purged p"
            f" WHERE p.kind = 'events' AND p.site = {table}.site AND {table}.{kept})"
        )
    (rejects_from,) = conn.execute(REJECTS_HORIZON).fetchone()
    rejects_from = int(rejects_from) // HOUR_MS * HOUR_MS
    conn.execute("DELETE FROM reject_counts WHERE hour >= ?", (rejects_from // HOUR_MS,))
    conn.execute("DELETE FROM firsts")
    conn.execute(
        "INSERT INTO firsts (site, list_id, item, kind, received_at)"
        # Sorted as the key is: that fills the index twice as fast.
        " SELECT e.site, e.list_id, e.item, e.kind, e.received_at FROM events e"
        " JOIN (SELECT min(seq) AS seq FROM events WHERE kind IN ('click', 'view')"
        "  AND seq <= ? GROUP BY site, list_id, item, kind) f ON f.seq = e.seq"
        " ORDER BY e.site, e.list_id, e.item, e.kind",
        (events_upto,),
    )
    conn.execute(FLAGGED.format(upto=int(events_upto)))  # DDL takes no parameters
    try:
        for table in TABLES:
            conn.execute(_rebuild_table(table))
    finally:
        conn.execute("DROP TABLE flagged")
    orders.merge(conn, 0, int(events_upto))
    conn.execute(
        "INSERT INTO reject_counts (site, hour, reason, count)"
        f" SELECT coalesce(site, ''), received_at / {HOUR_MS}, reason, count(*)"
        " FROM rejects WHERE seq <= ? AND received_at >= ?"
        f" GROUP BY coalesce(site, ''), received_at / {HOUR_MS}, reason",
        (rejects_upto, rejects_from),
    )
    set_watermark(conn, "events", events_upto)
    set_watermark(conn, "rejects", rejects_upto)
    (counted,) = conn.execute(
        "SELECT count(*) FROM events WHERE seq <= ?", (events_upto,)
    ).fetchone()
    return int(counted)


def watermark(conn: Any, name: str) -> int:
    row = conn.execute("SELECT seq FROM aggregation WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def set_watermark(conn: Any, name: str, seq: int) -> None:
    conn.execute(
        "INSERT INTO aggregation (name, seq, at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, at = excluded.at",
        (name, seq, now_ms()),
    )
