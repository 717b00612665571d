"""Rollups: what the aggregator counts equals an independent count of the events stored,
and equals what ``rebuild`` recomputes from the raw tables."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickthru.backend import open_store
from clickthru.clock import DAY_MS, HOUR_MS
from clickthru.store.aggregator import Aggregator
from clickthru.store.rows import Batch, EventRow, RejectRow
from clickthru.store.sqlite import migrations

START = 1_795_000_000_000  # a fixed moment; events spread over a few days after it


def event_row(
    n: int, kind: str, site: str, lst: int, item: int, pos: int, placement: str, offset: int,
    bot: bool,
) -> EventRow:  # fmt: skip
    return EventRow(
        f"event-{n:04d}", kind, site, f"list-{lst}", f"item-{item}", pos, placement, "k1",
        0, None, START + offset, None, None, "fetch", None, bot, None,
    )  # fmt: skip


events = st.builds(
    event_row,
    st.integers(0, 60),  # few ids: duplicates happen
    st.sampled_from(["click", "view", "serve"]),
    st.sampled_from(["shop", "other"]),
    st.integers(0, 4),
    st.integers(0, 5),
    st.integers(1, 6),
    st.sampled_from(["home", "product-page-bottom"]),
    st.integers(0, 3 * DAY_MS),
    st.booleans(),
)
rejects = st.builds(
    lambda offset, reason, site: RejectRow(START + offset, reason, None, site, None, "{}"),
    st.integers(0, 3 * DAY_MS),
    st.sampled_from(["token_expired", "invalid_event", "origin_not_allowed"]),
    st.sampled_from(["shop", None]),
)
batches = st.lists(
    st.builds(Batch, st.lists(events, max_size=12), st.lists(rejects, max_size=2)), max_size=8
)


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}"))
            for table in (
                "rollup_hourly", "rollup_items", "rollup_positions", "firsts", "reject_counts",
                "duplicate_counts",
            )
        }  # fmt: skip


def independent_count(written: list[Batch]) -> dict[str, Counter[tuple[Any, ...]]]:
    """The counters as a person would count them from what was sent."""
    stored: dict[str, EventRow] = {}
    duplicates: Counter[tuple[Any, ...]] = Counter()
    for batch in written:
        for event in batch.events:
            if event.id in stored:
                duplicates[(event.site, event.received_at // HOUR_MS)] += 1
            else:
                stored[event.id] = event
    counts: dict[str, Counter[tuple[Any, ...]]] = {"hourly": Counter(), "items": Counter()}
    seen: set[tuple[str, ...]] = set()
    for event in stored.values():  # in the order they were stored
        pair = (event.site, event.list_id, event.item, event.kind)
        first = event.kind != "serve" and pair not in seen
        seen.add(pair)
        bot = int(event.bot)
        hour = (event.site, event.received_at // HOUR_MS, event.placement, bot)
        item = (event.site, event.received_at // DAY_MS, event.placement, event.item, bot)
        for key, table in ((hour, "hourly"), (item, "items")):
            counts[table][(*key, event.kind)] += 1
            if first:
                counts[table][(*key, "unique_" + event.kind)] += 1
    counts["duplicates"] = duplicates
    return counts


def as_counts(rows: list[tuple[Any, ...]], key_size: int) -> Counter[tuple[Any, ...]]:
    names = ("click", "view", "serve", "unique_click", "unique_view")
    counted: Counter[tuple[Any, ...]] = Counter()
    for row in rows:
        for name, value in zip(names, row[key_size:], strict=True):
            if value:
                counted[(*row[:key_size], name)] = value
    return counted


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(written=batches)
def test_live_rollups_equal_an_independent_count_and_a_rebuild(
    tmp_path_factory: Any, written: list[Batch]
) -> None:
    path = tmp_path_factory.mktemp("rollups") / "store.db"
    store = open_store(str(path))

    async def write_all() -> None:
        for batch in written:  # one by one: the order decides which click is first
            await store.sink.write(batch)

    asyncio.run(write_all())
    # Many small passes: ranges begin and end in the middle of batches.
    Aggregator(store.aggregator.db, chunk=7).catch_up()
    live = snapshot(path)

    expected = independent_count(written)
    assert as_counts(live["rollup_hourly"], 4) == expected["hourly"]
    assert as_counts(live["rollup_items"], 5) == expected["items"]
    assert Counter({row[:2]: row[2] for row in live["duplicate_counts"]}) == expected["duplicates"]
    refused = Counter(
        (r.site or "", r.received_at // HOUR_MS, r.reason) for b in written for r in b.rejects
    )
    assert Counter({row[:3]: row[3] for row in live["reject_counts"]}) == refused

    store.aggregator.rebuild()
    store.close()
    assert snapshot(path) == live


def test_a_store_made_before_rollups_gets_them_built(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a version-1 file, as the first release made it
        conn.executescript(migrations()[0][1])
        conn.execute("PRAGMA user_version = 1")
        first_columns = EventRow._fields[:17]  # the columns version 1 had
        conn.execute(
            f"INSERT INTO events ({', '.join(first_columns)}) VALUES"
            f" ({', '.join('?' * len(first_columns))})",
            EventRow(
                "event-old", "click", "shop", "L", "i", 1, "home", "k1", 0, None, START, None,
                None, "fetch", None, False, None,
            )[:17],
        )  # fmt: skip
    open_store(str(path)).admin.sites()  # opening migrates
    assert snapshot(path)["rollup_hourly"] == [("shop", START // HOUR_MS, "home", 0, 1, 0, 0, 1, 0)]
