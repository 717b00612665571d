"""The collector purges by itself: started on a store holding events past their
retention, it removes them, and /metrics and /healthz say how many and what is oldest now.
The real app in-process, on a real SQLite file."""

from __future__ import annotations

import asyncio
import re
import time

from clickthru.backend import open_store
from clickthru.clock import DAY_MS, now_ms
from clickthru.store.rows import Batch, EventRow
from tests.conftest import AppCollector


def old_event(n: int, at: int) -> EventRow:
    return EventRow(
        f"old-{n}", "view", "shop", "list-1", f"item-{n}", 1, "home", "k1", at // 1000, None,
        at, None, None, "fetch", "http://shop.test", False, None,
    )  # fmt: skip


def sample(text: str, name: str, kind: str) -> float | None:
    found = re.search(rf'^{name}{{kind="{kind}"}} (\S+)$', text, re.MULTILINE)
    return float(found[1]) if found else None


def test_the_collector_purges_what_is_past_retention_and_says_so(fresh_app: AppCollector) -> None:
    old, kept = now_ms() - 500 * DAY_MS, now_ms() - 10 * DAY_MS
    store = open_store(str(fresh_app.db))
    events = [old_event(n, old) for n in range(30)] + [old_event(99, kept)]
    asyncio.run(store.sink.write(Batch(events)))
    store.aggregator.catch_up()
    store.close()

    fresh_app.start()
    deadline = time.monotonic() + 30
    while True:
        text = fresh_app.http.get("/metrics").text
        if sample(text, "clickthru_purged_rows", "events") == 30:
            break
        assert time.monotonic() < deadline, "the collector did not purge within 30 s"
        time.sleep(0.1)
    assert sample(text, "clickthru_oldest_kept_seconds", "events") == kept / 1000
    assert fresh_app.query("SELECT id FROM events") == [("old-99",)]
    retention = fresh_app.http.get("/healthz").json()["retention"]
    assert retention["purged"]["events"] == 30 and retention["oldest_event"] == kept
    assert retention["purging_here"] is True and retention["last_error"] is None
