"""The aggregator killed at random points: after it catches up, the counters equal a rebuild
from the raw events, on SQLite and on PostgreSQL. Nothing counted twice, nothing skipped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickthru.backend import Store, open_store
from clickthru.clock import HOUR_MS
from clickthru.store.rows import Batch, EventRow, RejectRow
from tests.pg import throwaway_database

COUNTERS = (
    "rollup_hourly", "rollup_items", "rollup_positions", "rollup_variants", "firsts",
    "reject_counts", "duplicate_counts", "orders",
)  # fmt: skip
START = 1_796_000_000_000


@contextlib.contextmanager
def new_store(backend: str, folder: Path) -> Iterator[str]:
    """The URL of an empty store of its own for each example."""
    if backend == "sqlite":
        yield str(folder / "store.db")
    else:
        with throwaway_database() as made:
            yield made


def read(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as pg:
            return pg.execute(sql).fetchall()
    with sqlite3.connect(url) as conn:
        return conn.execute(sql).fetchall()


def counters(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(read(url, f"SELECT * FROM {table}")) for table in COUNTERS}


def watermark(url: str) -> int:
    rows = read(url, "SELECT seq FROM aggregation WHERE name = 'events'")
    return int(rows[0][0]) if rows else 0


def mix(seed: int, events: int, repeat: float, bots: float) -> list[Batch]:
    """Clicks, views and serves of a few sites, lists and items; some sent again (in the
    same batch or a later one), some by bots, and a few refused."""
    rng = random.Random(seed)
    sent: list[EventRow] = []
    batches = []
    while len(sent) < events:
        batch = Batch()
        for _ in range(rng.randint(1, 250)):
            if sent and rng.random() < repeat:
                batch.events.append(rng.choice(sent))
                continue
            row = EventRow(
                f"e{seed}-{len(sent):06d}", rng.choice(["click", "view", "view", "serve"]),
                rng.choice(["shop", "other"]), f"l{rng.randint(0, 300)}", f"i{rng.randint(0, 40)}",
                rng.randint(1, 10), rng.choice(["home", "pdp"]), "k1", 0, None,
                START + rng.randint(0, 3 * 24 * HOUR_MS), None, None, "fetch", None,
                rng.random() < bots, None, rng.choice(["", "A", "B"]),
            )  # fmt: skip
            if rng.random() < 0.05:
                row = conversion(rng, row)
            sent.append(row)
            batch.events.append(row)
        if rng.random() < 0.3:
            at = START + rng.randint(0, 3 * 24 * HOUR_MS)
            batch.rejects.append(RejectRow(at, "token_expired", None, "shop", None, "{}"))
        batches.append(batch)
    return batches


def conversion(rng: random.Random, row: EventRow) -> EventRow:
    """An order's report (by a page, or the shop's server), attributed or not, of one of
    a few orders, so that reports of one order merge."""
    attributed = rng.random() < 0.6
    return row._replace(
        kind="conversion",
        order_id=f"o{rng.randint(0, 30)}",
        value=rng.randint(0, 100) * 10_000,
        currency=rng.choice(["GBP", "EUR"]),
        items=f'["{row.item}", "x"]' if rng.random() < 0.5 else '["x"]',
        via=rng.choice(["server", "fetch", "beacon"]),
        click_id=f"c{rng.randint(0, 1000)}" if attributed else None,
        click_at=row.received_at - rng.randint(0, 10**6) if attributed else None,
    )


def write(store: Store, batches: list[Batch]) -> Counter[tuple[str, int]]:
    """Stores the batches; returns the retries per (site, hour), as a person counts them."""

    async def run() -> None:
        for batch in batches:
            await store.sink.write(batch)

    asyncio.run(run())
    seen: set[str] = set()
    retries: Counter[tuple[str, int]] = Counter()
    for batch in batches:
        for event in batch.events:
            if event.id in seen:
                retries[(event.site, event.received_at // HOUR_MS)] += 1
            seen.add(event.id)
    return retries


def aggregate(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clickthru", "--store", url, "aggregate"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32),
    events=st.integers(3_000, 12_000),
    repeat=st.sampled_from([0.0, 0.05, 0.3]),
    bots=st.sampled_from([0.0, 0.1]),
    kills=st.lists(st.floats(0.05, 0.95), min_size=1, max_size=3),
)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_killed_at_random_points_it_counts_every_event_once(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    events: int,
    repeat: float,
    bots: float,
    kills: list[float],
) -> None:
    with new_store(backend, tmp_path_factory.mktemp("aggregator")) as url:
        killed_and_caught_up(url, mix(seed, events, repeat, bots), kills)


def killed_and_caught_up(url: str, batches: list[Batch], kills: list[float]) -> None:
    store = open_store(url)
    retries = write(store, batches)
    (top,) = read(url, "SELECT max(seq) FROM events")[0]
    assert store.aggregator.lag().events >= top
    for share in sorted(kills):
        # Killed as soon as it has counted past a random point: mid-pass or between passes.
        target = int(top * share)
        process = aggregate(url)
        deadline = time.monotonic() + 60
        while watermark(url) < target and process.poll() is None:
            assert time.monotonic() < deadline, "the aggregator made no progress"
            time.sleep(0.001)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    store.aggregator.catch_up()
    assert store.aggregator.lag().events == 0
    live = counters(url)
    duplicates = Counter({(site, hour): n for site, hour, n in live["duplicate_counts"]})
    store.aggregator.rebuild()  # leaves duplicate_counts alone: retries leave no rows
    store.close()
    assert counters(url) == live
    assert duplicates == retries
