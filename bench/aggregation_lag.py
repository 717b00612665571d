"""How far the report counters trail the acknowledgements, at 80 % of the maximum ingest.

1. The maximum: batched replay (batches of 250, a token per event) posted as fast as a few
   keep-alive clients can into ``clickthru serve`` on a fresh SQLite store: events/s.
2. The load: the same kind of batches into a second fresh store, paced to a share of that
   maximum (default 80 %) for a while (default 30 s), open loop: each batch leaves at its
   scheduled time whether or not the last was answered.
3. The lag, sampled every 100 ms from the store's file as /metrics reads it: events stored
   and not counted, and how long the oldest of them has waited. Printed: p50, p99 and max
   of both, and whether the collector kept up with the schedule.
4. Exactness: once the load stops and counting has caught up, the counters are compared
   with ``clickthru rollup --rebuild`` on a copy of the file.

Run::

    .venv/bin/python bench/aggregation_lag.py
    .venv/bin/python bench/aggregation_lag.py --share 0.8 --seconds 60 --workers 2
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import (
    BATCH,
    BROWSER_HEADERS,
    SITE_ORIGIN,
    clickthru,
    collector,
    free_port,
    make_workload,
    register_site,
    sqlite_lag,
    wait_counted,
)
from clickthru.backend import open_store

COUNTERS = ("rollup_hourly", "rollup_items", "rollup_positions", "firsts", "reject_counts")
HEADERS = {**BROWSER_HEADERS, "Content-Type": "text/plain;charset=UTF-8", "Origin": SITE_ORIGIN}


def post_loop(port: int, bodies: queue.Queue[bytes | None], failures: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        while (body := bodies.get()) is not None:
            conn.request("POST", "/e", body, HEADERS)
            answer = conn.getresponse()
            data = answer.read()
            if answer.status != 200:
                failures.append(f"HTTP {answer.status}: {data[:200]!r}")
    except Exception as exc:
        failures.append(f"client error: {exc!r}")
    finally:
        conn.close()


def workload(store: Path, events: int) -> list[bytes]:
    register_site(store)
    opened = open_store(str(store))
    try:
        return make_workload(opened.admin, events, max(1, events // 10), 10).bodies
    finally:
        opened.close()


def maximum(tmp: Path, events: int, workers: int, clients: int) -> float:
    """Events/s acknowledged when posted as fast as ``clients`` can."""
    store = tmp / "max.db"
    bodies = workload(store, events)
    todo: queue.Queue[bytes | None] = queue.Queue()
    for body in bodies:
        todo.put(body)
    for _ in range(clients):
        todo.put(None)
    failures: list[str] = []
    port = free_port()
    with collector(store, port, workers, tmp / "max.log"):
        threads = [
            threading.Thread(target=post_loop, args=(port, todo, failures)) for _ in range(clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        wait_counted(store)
    if failures:
        raise RuntimeError(f"the maximum run failed: {failures[:3]}")
    return len(bodies) * BATCH / seconds


def paced(
    tmp: Path, rate: float, seconds: float, workers: int, clients: int
) -> tuple[list[tuple[int, float]], float, list[str], Path]:
    """Posts at ``rate`` events/s for ``seconds``; returns the lag samples, how late the
    last batch left, failures, and the store."""
    store = tmp / "paced.db"
    count = int(rate * seconds / BATCH) + 1
    bodies = workload(store, count * BATCH)
    todo: queue.Queue[bytes | None] = queue.Queue()
    failures: list[str] = []
    samples: list[tuple[int, float]] = []
    port = free_port()
    with collector(store, port, workers, tmp / "paced.log"):
        threads = [
            threading.Thread(target=post_loop, args=(port, todo, failures)) for _ in range(clients)
        ]
        for thread in threads:
            thread.start()
        every = BATCH / rate
        started = time.perf_counter()
        next_sample = started
        late = 0.0
        for n, body in enumerate(bodies):
            due = started + n * every
            while (now := time.perf_counter()) < due:
                if now >= next_sample:
                    samples.append(sqlite_lag(store))
                    next_sample += 0.1
                time.sleep(min(0.005, max(0.0, due - time.perf_counter())))
            late = max(late, time.perf_counter() - due)
            todo.put(body)
        for _ in range(clients):
            todo.put(None)
        while any(thread.is_alive() for thread in threads):
            samples.append(sqlite_lag(store))
            time.sleep(0.1)
        wait_counted(store)
    return samples, late, failures, store


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def counters(path: Path) -> dict[str, list[Any]]:
    conn = sqlite3.connect(path)
    try:
        return {table: sorted(conn.execute(f"SELECT * FROM {table}")) for table in COUNTERS}
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--max-events", type=int, default=100_000, help="events to find the max")
    parser.add_argument("--share", type=float, default=0.8, help="of the maximum, for the load")
    parser.add_argument("--seconds", type=float, default=30, help="how long the load lasts")
    parser.add_argument("--workers", type=int, default=1, help="collector worker processes")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--tmpdir", help="where the temporary folder goes (a real disk)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="clickthru-lag-", dir=args.tmpdir))
    try:
        top = maximum(tmp, args.max_events, args.workers, args.clients)
        rate = top * args.share
        print(f"maximum ingest: {top:,.0f} events/s; load: {rate:,.0f} events/s", flush=True)
        samples, late, failures, store = paced(tmp, rate, args.seconds, args.workers, args.clients)
        copy = tmp / "rebuilt.db"
        with sqlite3.connect(store) as source, sqlite3.connect(copy) as target:
            source.backup(target)  # the file and its WAL, as one
        live = counters(store)
        clickthru(copy, "rollup", "--rebuild")
        exact = counters(copy) == live
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    events = [float(n) for n, _ in samples]
    seconds = [s for _, s in samples]
    print()
    print(f"{'lag':<24} {'p50':>10} {'p99':>10} {'max':>10}")
    print(
        f"{'events not counted':<24} {statistics.median(events):>10,.0f}"
        f" {percentile(events, 0.99):>10,.0f} {max(events):>10,.0f}"
    )
    print(
        f"{'seconds behind':<24} {statistics.median(seconds):>10.2f}"
        f" {percentile(seconds, 0.99):>10.2f} {max(seconds):>10.2f}"
    )
    print()
    print(
        f"{len(samples)} samples over {args.seconds:.0f} s at {args.share:.0%} of the maximum"
        f" ({os.cpu_count()} CPUs, {args.workers} worker(s)); the sender was at most"
        f" {late * 1000:.0f} ms behind its schedule; failed requests: {len(failures)}"
    )
    print(f"goal: p99 under 5 s -> {'met' if percentile(seconds, 0.99) < 5 else 'missed'}")
    print(f"counters equal a rebuild after the load: {exact}")
    return 0 if exact and not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
