"""The reports role: SQL that SQLite and PostgreSQL both run, each report one indexed read
of a rollup table (``?`` parameters; the PostgreSQL database adapts them)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from clickthru.clock import DAY_MS, HOUR_MS
from clickthru.reports.model import (
    EXPORT_COLUMNS,
    Click,
    Counts,
    Figures,
    Grouping,
    Health,
    Query,
    Report,
    ReportRow,
    Row,
    asked,
)
from clickthru.store.aggregator import Aggregator, Lag
from clickthru.store.database import Database

SUMS = "sum(clicks), sum(views), sum(serves), sum(unique_clicks), sum(unique_views)"
# grouping -> (table, bucket column, what to group by, ordering)
GROUPED: dict[Grouping, tuple[str, str, str, str]] = {
    "placement": ("rollup_hourly", "hour", "placement", "sum(clicks) DESC, placement"),
    "hour": ("rollup_hourly", "hour", f"hour * {HOUR_MS}", "1"),
    "day": ("rollup_hourly", "hour", f"hour / 24 * {DAY_MS}", "1"),
    "item": ("rollup_items", "day", "item", "sum(clicks) DESC, item"),
    "position": ("rollup_positions", "day", "position", "position"),
}


def _ceil(value: int, size: int) -> int:
    return -(-value // size)


def _where(query: Query, bucket: str) -> tuple[str, list[object]]:
    size = HOUR_MS if bucket == "hour" else DAY_MS
    marks = ", ".join("?" * len(query.sites))
    sql = f"site IN ({marks}) AND {bucket} >= ? AND {bucket} < ?"
    params: list[object] = [*query.sites, query.since_ms // size, _ceil(query.until_ms, size)]
    if not query.bots:
        sql += " AND bot = 0"
    return sql, params


def _counts(row: Sequence[int | None]) -> Counts:
    return Counts(*(value or 0 for value in row))


class Reports:
    """Reads through the calling thread's connection."""

    def __init__(self, db: Database) -> None:
        self._connect = db.connection
        self._aggregator = Aggregator(db)

    def freshness(self) -> Lag:
        """How far the counters trail the stored events."""
        return self._aggregator.lag()

    def document(self, query: Query, by: Grouping, limit: int | None = None) -> Report:
        """One report as the API answers it and ``clickthru report --format json`` prints it."""
        rows = self.grouped(query, by, limit)
        lag = self.freshness()
        return Report(
            **asked(query),
            by=by,
            totals=Figures.of(self.totals(query)),
            rows=[ReportRow.of_row(row) for row in rows],
            counted_until=lag.counted_until,
            uncounted_events=lag.events,
        )

    def totals(self, query: Query) -> Counts:
        where, params = _where(query, "hour")
        row = self._connect().execute(f"SELECT {SUMS} FROM rollup_hourly WHERE {where}", params)
        return _counts(row.fetchone())

    def grouped(self, query: Query, by: Grouping, limit: int | None = None) -> list[Row]:
        table, bucket, key, order = GROUPED[by]
        where, params = _where(query, bucket)
        sql = f"SELECT {key}, {SUMS} FROM {table} WHERE {where} GROUP BY 1 ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [Row(key, _counts(sums)) for key, *sums in self._connect().execute(sql, params)]

    def health(self, query: Query, include_unattributed: bool = False) -> Health:
        conn = self._connect()
        where, params = _where(Query(query.sites, query.since_ms, query.until_ms, True), "hour")
        events, bots = conn.execute(
            "SELECT sum(clicks + views + serves), sum((clicks + views + serves) * bot)"
            f" FROM rollup_hourly WHERE {where}",
            params,
        ).fetchone()
        sites = (*query.sites, "") if include_unattributed else query.sites
        marks = ", ".join("?" * len(sites))
        hours = [query.since_ms // HOUR_MS, _ceil(query.until_ms, HOUR_MS)]
        (duplicates,) = conn.execute(
            f"SELECT sum(count) FROM duplicate_counts WHERE site IN ({marks})"
            " AND hour >= ? AND hour < ?",
            [*sites, *hours],
        ).fetchone()
        reasons = conn.execute(
            f"SELECT reason, sum(count) FROM reject_counts WHERE site IN ({marks})"
            " AND hour >= ? AND hour < ? GROUP BY reason ORDER BY 2 DESC, reason",
            [*sites, *hours],
        ).fetchall()
        return Health(
            events or 0,
            bots or 0,
            duplicates or 0,
            sum(count for _, count in reasons),
            tuple((reason, count) for reason, count in reasons),
        )

    def latest_clicks(self, query: Query, limit: int = 20, after_seq: int = 0) -> list[Click]:
        marks = ", ".join("?" * len(query.sites))
        sql = (
            "SELECT seq, received_at, site, placement, item, position, list_id, page, dest, bot"
            f" FROM events WHERE site IN ({marks}) AND received_at >= ? AND received_at < ?"
            " AND kind = 'click' AND seq > ?"
        )
        params: list[object] = [*query.sites, query.since_ms, query.until_ms, after_seq]
        if not query.bots:
            sql += " AND bot = 0"
        sql += " ORDER BY received_at DESC, seq DESC LIMIT ?"
        rows = self._connect().execute(sql, [*params, limit])
        return [
            Click(seq, at, site, placement, item, position, list_id, page, dest, bool(bot))
            for seq, at, site, placement, item, position, list_id, page, dest, bot in rows
        ]

    def export(self, query: Query) -> Iterator[Sequence[object]]:
        """Raw events in the range, oldest first, read in pages so memory stays flat."""
        marks = ", ".join("?" * len(query.sites))
        bots = "" if query.bots else " AND bot = 0"
        sql = (
            f"SELECT {', '.join(EXPORT_COLUMNS)} FROM events"
            f" WHERE site IN ({marks}) AND received_at >= ? AND received_at < ?{bots}"
            " AND (received_at, seq) > (?, ?) ORDER BY received_at, seq LIMIT 5000"
        )
        after: tuple[int, int] = (query.since_ms - 1, 0)
        while True:
            rows = (
                self._connect()
                .execute(sql, [*query.sites, query.since_ms, query.until_ms, *after])
                .fetchall()
            )
            yield from rows
            if len(rows) < 5000:
                return
            after = (rows[-1][8], rows[-1][0])
