"""Batched replay ingest through the collector, side by side with bare SQLite.

What it measures (goal: batched replay ingest at >= 50 % of bare SQLite ``executemany`` of
the same rows, in the same run):

- N events (default 200,000) with valid tokens (one per event by default, minted with
  ``clickthru.tokens.mint`` and the bench site's key), in batches of 250 (what fits the
  collector's 64 KiB body limit): what a browser outbox or a server replays;
- the collector: ``clickthru serve`` on a fresh SQLite store, every batch POSTed over
  HTTP by a few concurrent keep-alive clients (threads with ``http.client``, bodies encoded
  before the clock starts); every answer must be 200 with all events accepted; events/s;
- the anchor: a fresh SQLite file with the same schema and pragmas
  (``clickthru.store.sqlite.connect`` + ``migrate``: WAL, synchronous=FULL), the same
  ``EventRow`` tuples the collector stores, ``executemany(INSERT_EVENT, rows)`` in one
  transaction per 250 rows, in one thread; rows/s.  It runs before and after the
  collector (fsync speed drifts on shared disks) and the ratio uses the mean of both.

It prints both rates, the ratio, the CPU used by the client and by the collector, and
checks that the collector stored exactly the rows the anchor inserted (all columns but
``received_at``).

Run::

    .venv/bin/python bench/ingest_vs_executemany.py
    .venv/bin/python bench/ingest_vs_executemany.py --events 50000 --workers 2 --clients 8
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from _common import (
    BATCH,
    BROWSER_HEADERS,
    SITE_ORIGIN,
    SystemCpu,
    Workload,
    collector,
    count_rows,
    free_port,
    make_workload,
    register_site,
    sqlite_lag,
    tree_cpu,
    wait_counted,
)
from clickthru.backend import open_store
from clickthru.store.rows import EVENT_COLUMNS, EventRow
from clickthru.store.sqlite import ONE_EVENT, connect, migrate

# The anchor: bare SQLite, the same rows into the same table, nothing else kept up to date.
INSERT_EVENT = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES {ONE_EVENT} ON CONFLICT (id) DO NOTHING"
)
COLUMNS = ", ".join(EventRow._fields)
ANSWER = msgspec.json.Decoder(dict[str, Any])


def bare_sqlite(path: Path, rows: list[EventRow]) -> tuple[float, float]:
    """Seconds (wall, CPU) to insert ``rows`` with executemany, a transaction per BATCH."""
    conn = connect(str(path))
    migrate(conn)
    try:
        started, cpu = time.perf_counter(), time.thread_time()
        for start in range(0, len(rows), BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT_EVENT, rows[start : start + BATCH])
            conn.execute("COMMIT")
        return time.perf_counter() - started, time.thread_time() - cpu
    finally:
        conn.close()


@dataclass
class Client:
    """Posts its share of the bodies on one keep-alive connection."""

    port: int
    bodies: list[bytes]
    headers: dict[str, str]
    expected: list[int]
    failures: list[str]

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            for body, expected in zip(self.bodies, self.expected, strict=True):
                conn.request("POST", "/e", body, self.headers)
                answer = conn.getresponse()
                data = answer.read()
                if answer.status != 200:
                    self.failures.append(f"HTTP {answer.status}: {data[:300]!r}")
                    continue
                result = ANSWER.decode(data)
                if result.get("accepted") != expected or result.get("rejected"):
                    self.failures.append(f"expected {expected} accepted, got {data[:300]!r}")
        except Exception as exc:
            self.failures.append(f"client error: {exc!r}")
        finally:
            conn.close()


@dataclass(frozen=True)
class Posted:
    seconds: float
    client_cores: float
    server_cores: float
    machine_busy: float
    failures: list[str]


def post_all(port: int, server: int, work: Workload, clients: int) -> Posted:
    headers = {
        **BROWSER_HEADERS,
        "Content-Type": "text/plain;charset=UTF-8",
        "Origin": SITE_ORIGIN,
    }
    failures: list[str] = []
    workers = [
        Client(port, work.bodies[i::clients], headers, work.counts[i::clients], failures)
        for i in range(clients)
    ]
    threads = [threading.Thread(target=w.run, name=f"client-{i}") for i, w in enumerate(workers)]
    mine_before = resource.getrusage(resource.RUSAGE_SELF)
    server_before, machine_before = tree_cpu(server), SystemCpu.now()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    seconds = time.perf_counter() - started
    server_after, machine_after = tree_cpu(server), SystemCpu.now()
    mine_after = resource.getrusage(resource.RUSAGE_SELF)
    if any(thread.is_alive() for thread in threads):
        failures.append("a client did not finish within 600 s")
    mine = (mine_after.ru_utime + mine_after.ru_stime) - (
        mine_before.ru_utime + mine_before.ru_stime
    )
    return Posted(
        seconds,
        mine / seconds,
        (server_after - server_before) / seconds,
        machine_after.since(machine_before),
        failures,
    )


def stored_rows(path: Path) -> list[tuple[Any, ...]]:
    """The events table without received_at, in id order."""
    columns = ", ".join(c for c in EventRow._fields if c != "received_at")
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT {columns} FROM events ORDER BY id").fetchall()
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-n", "--events", type=int, default=200_000, help="events to ingest")
    parser.add_argument("--workers", type=int, default=1, help="collector worker processes")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--lists",
        type=int,
        default=None,
        help="distinct lists, 10 tokens each (default: events / 10, a token per event,"
        " as in a real replay)",
    )
    parser.add_argument(
        "--no-count",
        dest="count",
        action="store_false",
        help="the collector does not count (aggregate = false): acknowledging alone",
    )
    parser.add_argument("--tmpdir", help="where the temporary folder goes (a real disk)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="clickthru-ingest-", dir=args.tmpdir))
    try:
        store = tmp / "collector.db"
        register_site(store)
        made = time.perf_counter()
        lists = args.lists or max(1, args.events // 10)
        opened = open_store(str(store))
        work = make_workload(opened.admin, args.events, lists, 10)
        opened.close()
        sizes = [len(body) for body in work.bodies]
        print(
            f"{args.events:,} events in {len(work.bodies)} batches of {BATCH}"
            f" ({min(sizes) // 1024}-{max(sizes) // 1024} KiB each, {lists * 10:,} tokens),"
            f" made in {time.perf_counter() - made:.1f}s; {os.cpu_count()} CPUs; in {tmp}",
            flush=True,
        )

        # The anchor runs before and after the collector (fsync speed drifts); both count.
        anchor = [bare_sqlite(tmp / "bare-before.db", work.rows)]
        print(f"  bare SQLite executemany: {len(work.rows) / anchor[0][0]:,.0f} rows/s", flush=True)

        port = free_port()
        env: dict[str, str] = {}  # the collector's own defaults
        log = tmp / "collector.log"
        if not args.count:
            env["CLICKTHRU_AGGREGATE"] = "false"
        with collector(store, port, args.workers, log, env) as proc:
            posted = post_all(port, proc.pid, work, args.clients)
            behind = sqlite_lag(store)[0]
            # The collector's aggregator, behind the acknowledgements.
            counted_in = wait_counted(store) if args.count else float("nan")
        rate = args.events / posted.seconds
        print(f"  collector: {rate:,.0f} events/s", flush=True)
        anchor.append(bare_sqlite(tmp / "bare-after.db", work.rows))
        print(f"  bare SQLite executemany: {len(work.rows) / anchor[1][0]:,.0f} rows/s", flush=True)
        anchor_s = (anchor[0][0] + anchor[1][0]) / 2
        anchor_rate = len(work.rows) / anchor_s

        rows = count_rows(store, "events")
        rejects = count_rows(store, "rejects")
        expected = sorted(
            tuple(int(v) if isinstance(v, bool) else v for i, v in enumerate(row) if i != 10)
            for row in work.rows
        )
        same = stored_rows(store) == expected
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    header = f"{'what':<34} {'rows/s':>9} {'seconds':>8} {'vs bare':>8} {'cores':>6}"
    # "vs bare" is against the mean of the two anchor runs.
    print(header)
    print("-" * len(header))
    for when, (seconds, cpu) in zip(("before", "after"), anchor, strict=True):
        label = f"bare SQLite executemany, {when}"
        print(
            f"{label:<34} {len(work.rows) / seconds:>9,.0f} {seconds:>8.2f}"
            f" {anchor_s / seconds:>8.1%} {cpu / seconds:>6.2f}"
        )
    print(
        f"{f'collector w={args.workers}, {args.clients} clients':<34} {rate:>9,.0f}"
        f" {posted.seconds:>8.2f} {rate / anchor_rate:>8.1%} {posted.server_cores:>6.2f}"
    )
    print(
        f"{'  (the HTTP client, this process)':<34} {'':>9} {'':>8} {'':>8}"
        f" {posted.client_cores:>6.2f}"
    )
    print()
    print(
        f"goal: collector >= 50 % of bare SQLite (mean of both runs);"
        f" machine busy {posted.machine_busy:.0%} while the collector ran"
    )
    print(
        f"counting: {behind:,} events not yet counted at the last acknowledgement,"
        f" all counted {counted_in:.1f} s later"
        f" (acknowledged and counted: {args.events / (posted.seconds + counted_in):,.0f} events/s)"
    )
    print(f"answers not 200 with all {BATCH} accepted: {len(posted.failures)}")
    for failure in posted.failures[:5]:
        print(f"  {failure}")
    print(
        f"rows in the collector's events: {rows:,} (expected {args.events:,}),"
        f" rejects: {rejects}; same rows as bare SQLite (all but received_at): {same}"
    )
    return 0 if not posted.failures and rows == args.events and same else 1


if __name__ == "__main__":
    sys.exit(main())
