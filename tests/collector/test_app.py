"""The collector as a whole: health, metrics across worker processes."""

from __future__ import annotations

import re
import sqlite3

import httpx

from tests.conftest import AppCollector, Collector


def test_health_says_503_while_the_store_cannot_take_a_write(fresh_app: AppCollector) -> None:
    fresh_app.start()
    blocker = sqlite3.connect(fresh_app.db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        response = fresh_app.http.get("/healthz", timeout=10)
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert fresh_app.http.get("/healthz", timeout=15).status_code == 200


def test_metrics_add_up_every_worker(fresh_collector: Collector) -> None:
    fresh_collector.workers = 2
    fresh_collector.start()
    with httpx.Client(headers={"origin": "http://shop.test"}) as client:
        # New connections spread over both workers' accept loops.
        for _ in range(40):
            response = client.post(
                f"{fresh_collector.url}/e",
                json=fresh_collector.event(),
                headers={"connection": "close"},
            )
            assert response.json()["accepted"] == 1
    text = httpx.get(f"{fresh_collector.url}/metrics").text
    accepted = re.search(r"^clickthru_events_accepted_total (\S+)$", text, re.M)
    assert accepted is not None and float(accepted[1]) == 40
    assert fresh_collector.query("SELECT count(*) FROM events") == [(40,)]
