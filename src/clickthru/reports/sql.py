"""The reports role: SQL that SQLite and PostgreSQL both run, each report one indexed read
of a rollup table (``?`` parameters; the PostgreSQL database adapts them)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from clickthru.clock import DAY_MS, HOUR_MS
from clickthru.reports import stats
from clickthru.reports.model import (
    EXPORT_COLUMNS,
    Click,
    ConversionGrouping,
    ConversionReport,
    ConversionRow,
    Counts,
    Experiment,
    Figures,
    Grouping,
    Health,
    OrderFigures,
    Orders,
    Outcome,
    Query,
    Report,
    ReportRow,
    Row,
    VariantFigures,
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


# conversion grouping -> (the daily rollup with its views, the key there, the key in orders)
BY_CLICK: dict[ConversionGrouping, tuple[str, str, str]] = {
    "placement": ("rollup_items", "placement", "placement"),
    "item": ("rollup_items", "item", "item"),
    "position": ("rollup_positions", "position", "position"),
    "day": ("rollup_items", f"day * {DAY_MS}", f"day * {DAY_MS}"),
    "variant": ("rollup_variants", "variant", "variant"),
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
        self._stream = db.stream
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
        """Raw clicks, views and serves in the range, oldest first, read in pages so memory
        stays flat (orders have the outcome export and the conversion reports)."""
        marks = ", ".join("?" * len(query.sites))
        bots = "" if query.bots else " AND bot = 0"
        sql = (
            f"SELECT {', '.join(EXPORT_COLUMNS)} FROM events"
            f" WHERE site IN ({marks}) AND received_at >= ? AND received_at < ?{bots}"
            " AND kind <> 'conversion'"
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

    # -- conversions and experiments ---------------------------------------------------------

    def orders(self, query: Query, key: str, attributed: bool) -> dict[object, Orders]:
        """Orders of the range's days (by the day first told) grouped by ``key``, an
        expression over ``orders``; attributed ones, or the others."""
        where, params = _where(query, "day")
        where += " AND click_id IS NOT NULL" if attributed else " AND click_id IS NULL"
        conn = self._connect()
        revenue: dict[object, list[tuple[str, int]]] = {}
        for found, currency, micros in conn.execute(
            f"SELECT {key}, currency, CAST(sum(value) AS BIGINT) FROM orders WHERE {where}"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            params,
        ):
            revenue.setdefault(found, []).append((currency, int(micros)))
        return {
            found: Orders(count, confirmed, page, bought, tuple(revenue.get(found, ())))
            for found, count, confirmed, page, bought in conn.execute(
                f"SELECT {key}, count(*), sum(server), sum(page), sum(coalesce(bought_clicked, 0))"
                f" FROM orders WHERE {where} GROUP BY 1",
                params,
            )
        }

    def _views(self, query: Query, table: str, key: str) -> dict[object, tuple[int, int]]:
        """Unique views and clicks per ``key`` of a daily rollup."""
        where, params = _where(query, "day")
        rows = self._connect().execute(
            f"SELECT {key}, sum(unique_views), sum(unique_clicks) FROM {table} WHERE {where}"
            " GROUP BY 1",
            params,
        )
        return {found: (views or 0, clicks or 0) for found, views, clicks in rows}

    def conversions(
        self, query: Query, by: ConversionGrouping, limit: int | None = None
    ) -> ConversionReport:
        """Orders by the placement, item, position or variant of the click they follow, or
        by day; the most converting first (by day and position, in order)."""
        table, views_key, orders_key = BY_CLICK[by]
        grouped = self.orders(query, orders_key, attributed=True)
        views = self._views(query, table, views_key)
        rows = []
        for key, orders in grouped.items():
            seen = views.get(key, (0, 0))[0]
            rate = orders.conversions / seen if seen else None
            figures = OrderFigures.of(orders)
            rows.append(
                ConversionRow(
                    figures.conversions, figures.confirmed, figures.page_reported,
                    figures.bought_clicked, figures.revenue, key=key,  # type: ignore[arg-type]
                    views=seen, conversion_rate=rate,
                )
            )  # fmt: skip
        if by in ("day", "position"):
            rows.sort(key=lambda row: row.key)
        else:
            rows.sort(key=lambda row: (-row.conversions, str(row.key)))
        lag = self.freshness()
        return ConversionReport(
            **asked(query),
            by=by,
            attributed=OrderFigures.of(self.orders(query, "0", True).get(0, Orders())),
            unattributed=OrderFigures.of(self.orders(query, "0", False).get(0, Orders())),
            rows=rows[:limit] if limit is not None else rows,
            counted_until=lag.counted_until,
            uncounted_events=lag.events,
        )

    def experiment(self, query: Query, control: str | None = None) -> Experiment:
        """Every variant against the control: ``control``, else "A" if there is one, else
        the first variant by name (the list without a variant, "", comes last)."""
        views = self._views(query, "rollup_variants", "variant")
        orders = self.orders(query, "variant", attributed=True)
        names = sorted({str(name) for name in (*views, *orders)}, key=lambda n: (n == "", n))
        if control is None:
            control = "A" if "A" in names else (names[0] if names else "")
        base_views, base_clicks = views.get(control, (0, 0))
        base_orders = orders.get(control, Orders()).conversions
        variants = []
        for name in names:
            seen, clicked = views.get(name, (0, 0))
            got = orders.get(name, Orders())
            interval = stats.wilson(clicked, seen)
            against = name != control
            revenue = got.revenue_units()
            variants.append(
                VariantFigures(
                    variant=name,
                    views=seen,
                    clicks=clicked,
                    ctr=clicked / seen if seen else None,
                    ctr_low=interval[0] if interval else None,
                    ctr_high=interval[1] if interval else None,
                    ctr_p_value=stats.two_proportion_p(clicked, seen, base_clicks, base_views)
                    if against
                    else None,
                    conversions=got.conversions,
                    conversion_rate=got.conversions / seen if seen else None,
                    conversion_p_value=stats.two_proportion_p(
                        got.conversions, seen, base_orders, base_views
                    )
                    if against
                    else None,
                    revenue=revenue,
                    revenue_per_1000_views={
                        currency: value * 1000 / seen for currency, value in revenue.items()
                    }
                    if seen
                    else {},
                )
            )
        lag = self.freshness()
        return Experiment(
            **asked(query),
            control=control,
            variants=variants,
            counted_until=lag.counted_until,
            uncounted_events=lag.events,
        )

    def outcomes(self, query: Query) -> Iterator[Outcome]:
        """One row per (list, item) served or viewed in the range, by site, list and item:
        one read the database streams (it groups and sorts the range once), so memory stays
        flat whatever the range."""
        marks = ", ".join("?" * len(query.sites))
        bots = "" if query.bots else " AND bot = 0"
        in_range = f"site IN ({marks}) AND received_at >= ? AND received_at < ?{bots}"
        asked_ = [*query.sites, query.since_ms, query.until_ms]
        conn = self._connect()
        value: dict[tuple[str, str, str], dict[str, float]] = {}
        converted: dict[tuple[str, str, str], int] = {}
        for site, list_id, item, currency, count, micros in conn.execute(
            "SELECT site, list_id, item, currency, count(*), CAST(sum(value) AS BIGINT)"
            f" FROM orders WHERE {in_range} AND click_id IS NOT NULL"
            " GROUP BY site, list_id, item, currency",
            asked_,
        ):
            key = (site, list_id, item)
            value.setdefault(key, {})[currency] = int(micros) / 1_000_000
            converted[key] = converted.get(key, 0) + count
        sql = (
            "SELECT site, list_id, item, min(position), min(placement), max(variant),"
            " min(CASE WHEN kind = 'serve' THEN received_at END),"
            " min(CASE WHEN kind = 'view' THEN received_at END),"
            " min(CASE WHEN kind = 'click' THEN received_at END)"
            f" FROM events WHERE {in_range} AND kind IN ('serve', 'view', 'click')"
            " GROUP BY site, list_id, item"
            " HAVING count(CASE WHEN kind IN ('serve', 'view') THEN 1 END) > 0"
            " ORDER BY site, list_id, item"
        )
        for (
            site,
            list_id,
            item,
            position,
            placement,
            variant,
            served,
            viewed,
            clicked,
        ) in self._stream(sql, asked_):
            key = (site, list_id, item)
            yield Outcome(
                site, list_id, item, position, placement, variant, served, viewed, clicked,
                viewed is not None, clicked is not None, converted.get(key, 0), value.get(key, {}),
            )  # fmt: skip
