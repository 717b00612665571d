"""The outcome export of a random store equals an independent join of its raw events, on
SQLite and on PostgreSQL, read as a stream in many batches."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickthru.backend import open_store
from clickthru.clock import HOUR_MS
from clickthru.reports import Query
from clickthru.store import postgres as postgres_store
from clickthru.store import sqlite as sqlite_store
from clickthru.store.rows import Batch, EventRow
from tests.store.test_aggregator import new_store

START = 1_796_000_000_000
SPAN = 3 * 24 * HOUR_MS


def random_events(seed: int, count: int) -> list[EventRow]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        list_id = f"l{rng.randint(0, 40)}"
        row = EventRow(
            f"e{n:06d}", rng.choice(["serve", "view", "view", "click"]),
            rng.choice(["shop", "other"]), list_id, f"i{rng.randint(0, 5)}",
            rng.randint(1, 6), rng.choice(["home", "pdp"]), "k1", 0, None,
            START + rng.randint(0, SPAN), None, None, "fetch", None, rng.random() < 0.1, None,
            "AB"[int(list_id[1:]) % 2],
        )  # fmt: skip
        if rng.random() < 0.1:
            attributed = rng.random() < 0.7
            row = row._replace(
                kind="conversion", order_id=f"o{rng.randint(0, 15)}",
                value=rng.randint(0, 5000) * 10_000, currency=rng.choice(["GBP", "EUR"]),
                items="[]", via=rng.choice(["server", "fetch"]),
                click_id=f"c{n}" if attributed else None,
                click_at=row.received_at if attributed else None,
            )  # fmt: skip
            if not attributed:
                row = row._replace(list_id="", item="", position=0, placement="", variant="")
        events.append(row)
    return events


def joined(
    events: list[EventRow], query: Query, orders: list[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """Outcomes as a person joins them: shown pairs in the range, their first serve, view
    and click in the range, and the attributed orders first told in the range."""
    inside = [
        e for e in events
        if e.site in query.sites and query.since_ms <= e.received_at < query.until_ms
        and (query.bots or not e.bot)
    ]  # fmt: skip
    pairs: dict[tuple[str, str, str], list[EventRow]] = {}
    for e in inside:
        if e.kind != "conversion":
            pairs.setdefault((e.site, e.list_id, e.item), []).append(e)
    rows = []
    for key in sorted(pairs):
        told = pairs[key]
        if not any(e.kind in ("serve", "view") for e in told):
            continue

        def first(kind: str, told: list[EventRow] = told) -> int | None:
            return min((e.received_at for e in told if e.kind == kind), default=None)

        value: dict[str, float] = {}
        converted = 0
        for site, list_id, item, received_at, micros, currency, bot in orders:
            in_range = query.since_ms <= received_at < query.until_ms
            if (site, list_id, item) == key and in_range and (query.bots or not bot):
                converted += 1
                value[currency] = value.get(currency, 0) + micros
        rows.append({
            "site": key[0], "list_id": key[1], "item": key[2],
            "position": min(e.position for e in told), "placement": min(e.placement for e in told),
            "variant": max(e.variant for e in told), "served_at": first("serve"),
            "viewed_at": first("view"), "clicked_at": first("click"),
            "viewed": first("view") is not None, "clicked": first("click") is not None,
            "converted": converted, "value": {c: v / 1_000_000 for c, v in sorted(value.items())},
        })  # fmt: skip
    return rows


def exported(url: str, events: list[EventRow], query: Query) -> tuple[list[Any], list[Any]]:
    store = open_store(url)
    try:

        async def write() -> None:
            for at in range(0, len(events), 300):
                await store.sink.write(Batch(events=events[at : at + 300]))

        asyncio.run(write())
        store.aggregator.catch_up()
        orders = (
            store.reports._connect()
            .execute(
                "SELECT site, list_id, item, received_at, value, currency, bot FROM orders"
                " WHERE click_id IS NOT NULL"
            )
            .fetchall()
        )
        got = [_as_dict(outcome) for outcome in store.reports.outcomes(query)]
        return got, joined(events, query, orders)
    finally:
        store.close()


def _as_dict(outcome: Any) -> dict[str, Any]:
    row = {name: getattr(outcome, name) for name in outcome.__struct_fields__}
    row["value"] = dict(sorted(row["value"].items()))
    return row


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Many fetches per stream, so reading it in batches is tested.
    monkeypatch.setattr(sqlite_store, "STREAM_ROWS", 7)
    monkeypatch.setattr(postgres_store, "STREAM_ROWS", 7)
    yield


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32),
    count=st.integers(1, 600),
    since=st.integers(0, SPAN),
    length=st.integers(1, SPAN),
    sites=st.sampled_from([("shop",), ("shop", "other")]),
    bots=st.booleans(),
)
def test_the_outcome_export_equals_an_independent_join(
    tmp_path_factory: pytest.TempPathFactory,
    small_pages: None,
    seed: int,
    count: int,
    since: int,
    length: int,
    sites: tuple[str, ...],
    bots: bool,
) -> None:
    query = Query(sites, START + since, START + since + length, bots)
    with new_store("sqlite", tmp_path_factory.mktemp("outcomes")) as url:
        got, wanted = exported(url, random_events(seed, count), query)
    assert got == wanted


def test_the_outcome_export_on_postgresql(tmp_path: Path, small_pages: None) -> None:
    query = Query(("shop", "other"), START, START + SPAN + 1, False)
    with new_store("postgres", tmp_path) as url:
        got, wanted = exported(url, random_events(7, 1500), query)
    assert got == wanted and len(got) > 50
