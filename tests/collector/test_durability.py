"""An acknowledgement means "on disk": SIGKILL loses nothing that was answered 2xx."""

from __future__ import annotations

import threading
import time

import httpx

from tests.conftest import SHOP_ORIGIN, Collector


def test_an_event_acknowledged_just_before_sigkill_is_there_after_restart(
    fresh_collector: Collector,
) -> None:
    fresh_collector.start()
    event = fresh_collector.event()
    assert fresh_collector.post(event).json()["accepted"] == 1
    fresh_collector.kill()  # right after the answer: no graceful shutdown
    fresh_collector.start()
    assert fresh_collector.query("SELECT count(*) FROM events WHERE id = ?", event["id"]) == [(1,)]
    # And the restarted collector knows it: a retry is a duplicate, not a second click.
    assert fresh_collector.post(event).json() == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_no_acknowledged_event_is_lost_when_killed_under_load(fresh_collector: Collector) -> None:
    fresh_collector.workers = 2
    fresh_collector.start()
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def send_until_refused() -> None:
        with httpx.Client(headers={"origin": SHOP_ORIGIN}, timeout=5) as client:
            while not stop.is_set():
                batch = [fresh_collector.event(item=f"b{i}") for i in range(5)]
                try:
                    response = client.post(f"{fresh_collector.url}/e", json=batch)
                except httpx.TransportError:
                    return  # the collector is gone; unanswered events were never promised
                if response.status_code == 200:
                    assert response.json()["accepted"] == len(batch)
                    with lock:
                        acknowledged.extend(event["id"] for event in batch)

    senders = [threading.Thread(target=send_until_refused) for _ in range(8)]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 500 and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh_collector.kill()
    stop.set()
    for sender in senders:
        sender.join(10)
    with lock:
        promised = set(acknowledged)
    assert len(promised) >= 500
    stored = {row[0] for row in fresh_collector.query("SELECT id FROM events")}
    assert promised <= stored, f"{len(promised - stored)} acknowledged events lost"
