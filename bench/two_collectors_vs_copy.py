"""End-to-end ingest through two collectors into PostgreSQL, next to a bare COPY.

What it measures (the two-datacenter deployment: collectors that acknowledge from a
SQLite spool and ship it to one shared PostgreSQL):

- N events (default 200,000) with valid tokens (one per event by default, minted with
  ``clickthru.tokens.mint``), in batches of 250, every body encoded before the clock
  starts, as in ``ingest_vs_executemany.py``;
- two collectors, ``dc-a`` and ``dc-b``: ``clickthru --store postgresql://... serve``,
  each with its own spool, on a throw-away database; half the batches go to each, POSTed
  by a few concurrent keep-alive clients (threads) per collector; every answer must be
  200 with all 250 accepted;
- two clocks from the first request: until the last answer (events/s acknowledged) and
  until PostgreSQL's ``events`` holds all N (``count(*)`` polled every 50 ms after the
  last answer): events/s end to end; and how fast PostgreSQL drained the spools after
  the last answer, when only the forwarders work (shipments take turns on one lock, so
  that is the shared store's ceiling, whatever the number of collectors);
- the anchor: a bare ``COPY ... FROM STDIN`` of the same rows, pre-formatted before the
  clock, one stream and one commit, into a plain ``events`` table (the same columns and
  types, unpartitioned) in a second throw-away database, twice: without any index, and
  with the indexes the shared store keeps on the events path (``(site, received_at)``,
  and the id's unique key, which the store keeps in ``event_ids``). Both run before and
  after the collectors (disk speed drifts); ratios use the mean of the two runs.

CPU is read from /proc as in ``_common.py``: the collectors' process trees (HTTP, spool,
forwarder), every ``postgres`` process (the server is shared by nothing else here) and
this process (the clients). "Per core" is events per CPU second, the figure a sizing on
paper for a billion events a day starts from; it is printed with that sizing.

It checks that PostgreSQL ended with exactly the rows the anchor copied (every column but
``received_at``), each id once, and both spools empty.

Run::

    .venv/bin/python bench/two_collectors_vs_copy.py
    .venv/bin/python bench/two_collectors_vs_copy.py --events 50000 --workers 2 --clients 4
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from _common import (
    BATCH,
    BROWSER_HEADERS,
    CLK_TCK,
    SITE,
    SITE_ORIGIN,
    SystemCpu,
    Workload,
    free_port,
    make_workload,
    start,
    stop,
    tree_cpu,
    wait_http,
)
from clickthru.backend import open_store
from clickthru.store.aggregator import Aggregator
from clickthru.store.postgres import PostgresDatabase
from clickthru.store.rows import Batch, EventRow
from clickthru.store.sink import EventSink
from clickthru.store.spool import SHIP_EVENTS
from ingest_vs_executemany import Client

ADMIN_URL = os.environ.get(
    "CLICKTHRU_BENCH_POSTGRES",
    os.environ.get("CLICKTHRU_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
BILLION_A_DAY = 1e9 / 86_400  # events/s on average
POLL = 0.05
COPY_CHUNK = 1 << 20
# The shared store's events columns (store/pg_migrations/0001_initial.sql) without seq.
PLAIN_EVENTS = """
CREATE TABLE events (
    id text NOT NULL, kind text NOT NULL, site text NOT NULL, list_id text NOT NULL,
    item text NOT NULL, position bigint NOT NULL, placement text NOT NULL,
    key_id text NOT NULL, issued_at bigint NOT NULL, client_ts bigint,
    received_at bigint NOT NULL, page text, dest text, via text, origin text,
    bot integer NOT NULL, visitor text
)"""
SAME_INDEXES = (
    "CREATE INDEX events_site_received ON events (site, received_at)",
    "CREATE UNIQUE INDEX events_id ON events (id)",
)


# -- throw-away databases ------------------------------------------------------------------


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -- the workload ----------------------------------------------------------------------------


# -- the anchor: bare COPY -------------------------------------------------------------------


def _copy_field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return str(int(value))
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


def copy_text(rows: Sequence[EventRow]) -> list[bytes]:
    """COPY's text format, in chunks of about COPY_CHUNK bytes."""
    chunks, lines, size = [], [], 0
    for row in rows:
        line = "\t".join(map(_copy_field, row)) + "\n"
        lines.append(line)
        size += len(line)
        if size >= COPY_CHUNK:
            chunks.append("".join(lines).encode())
            lines, size = [], 0
    if lines:
        chunks.append("".join(lines).encode())
    return chunks


def bare_copy(url: str, chunks: list[bytes], indexed: bool) -> tuple[float, float]:
    """Seconds (wall, PostgreSQL CPU) to COPY the rows into a fresh plain table."""
    columns = ", ".join(EventRow._fields)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS events")
        conn.execute(PLAIN_EVENTS)
        for statement in SAME_INDEXES if indexed else ():
            conn.execute(statement)
        conn.execute("CHECKPOINT")  # the last run's dirty pages are not this run's bill
        cpu = postgres_cpu()
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cursor,
            cursor.copy(f"COPY events ({columns}) FROM STDIN") as copy,
        ):
            for chunk in chunks:
                copy.write(chunk)
        seconds = time.perf_counter() - started
        return seconds, postgres_cpu() - cpu


# -- CPU -------------------------------------------------------------------------------------


def postgres_cpu() -> float:
    """CPU seconds used so far by every living ``postgres`` process on the machine."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")] != "postgres":
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


# -- the collectors --------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    acked_s: float  # first request to last answer
    stored_at_ack: int  # events in PostgreSQL at the last answer
    stored_s: float  # first request to all N in PostgreSQL
    counted_s: float  # first request to all N counted in the rollups
    collectors_cpu: float  # seconds, both process trees, over stored_s
    postgres_cpu: float
    client_cpu: float
    machine_busy: float
    failures: list[str]


def count_events(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def post_and_wait(
    url: str, ports: list[int], pids: list[int], work: Workload, clients: int, events: int
) -> Run:
    headers = {
        **BROWSER_HEADERS,
        "Content-Type": "text/plain;charset=UTF-8",
        "Origin": SITE_ORIGIN,
    }
    failures: list[str] = []
    workers: list[Client] = []
    for n, port in enumerate(ports):  # batch i goes to collector i % 2
        bodies, counts = work.bodies[n :: len(ports)], work.counts[n :: len(ports)]
        workers += [
            Client(port, bodies[i::clients], headers, counts[i::clients], failures)
            for i in range(clients)
        ]
    threads = [threading.Thread(target=w.run, name=f"client-{i}") for i, w in enumerate(workers)]
    with psycopg.connect(url, autocommit=True) as conn:
        mine = resource.getrusage(resource.RUSAGE_SELF)
        collectors, pg, machine = sum(map(tree_cpu, pids)), postgres_cpu(), SystemCpu.now()
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        acked = time.perf_counter() - started
        at_ack = count_events(conn)
        if any(thread.is_alive() for thread in threads):
            failures.append("a client did not finish within 600 s")
        deadline = time.monotonic() + 600
        while count_events(conn) < events and time.monotonic() < deadline:
            time.sleep(POLL)
        stored = time.perf_counter() - started
        while uncounted(conn) and time.monotonic() < deadline:
            time.sleep(POLL)
        counted = time.perf_counter() - started
        collectors = sum(map(tree_cpu, pids)) - collectors
        pg = postgres_cpu() - pg
        busy = SystemCpu.now().since(machine)
        after = resource.getrusage(resource.RUSAGE_SELF)
        if count_events(conn) < events:
            failures.append(f"only {count_events(conn):,} of {events:,} in PostgreSQL after 600 s")
    client = (after.ru_utime + after.ru_stime) - (mine.ru_utime + mine.ru_stime)
    return Run(acked, at_ack, stored, counted, collectors, pg, client, busy, failures)


def uncounted(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT (SELECT seq FROM aggregation WHERE name = 'events') < max(seq) FROM events"
    ).fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class Drain:
    seconds: float  # two forwarders shipping everything
    postgres_cpu: float
    count_seconds: float  # one aggregator counting it all afterwards
    count_postgres_cpu: float


def ship_and_count(url: str, rows: Sequence[EventRow], forwarders: int = 2) -> Drain:
    """The shared store alone: ``forwarders`` threads ship the rows in shipments of 5,000,
    as the spools' forwarders do, straight from memory; then one aggregator counts them."""
    db = PostgresDatabase(url)
    sink, aggregator = EventSink(db), Aggregator(db)
    db.prepare(rows)  # migrated, and the day partitions made, before the clock starts
    shipments = [rows[i : i + SHIP_EVENTS] for i in range(0, len(rows), SHIP_EVENTS)]

    def forward(n: int) -> None:
        for number, shipment in enumerate(shipments[n::forwarders], start=1):
            sink.ship(f"bench-{n}", number, Batch(list(shipment)))

    threads = [threading.Thread(target=forward, args=(n,)) for n in range(forwarders)]
    cpu, started = postgres_cpu(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds, shipped_cpu = time.perf_counter() - started, postgres_cpu() - cpu
    cpu, started = postgres_cpu(), time.perf_counter()
    aggregator.catch_up()
    counting, counting_cpu = time.perf_counter() - started, postgres_cpu() - cpu
    db.close()
    return Drain(seconds, shipped_cpu, counting, counting_cpu)


def stored_rows(url: str) -> list[tuple[Any, ...]]:
    """PostgreSQL's events without seq and received_at, sorted as Python sorts."""
    columns = ", ".join(c for c in EventRow._fields if c != "received_at")
    with psycopg.connect(url) as conn:
        return sorted(conn.execute(f"SELECT {columns} FROM events").fetchall())


def spooled(path: Path) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-n", "--events", type=int, default=200_000, help="events to ingest")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per collector")
    parser.add_argument("--clients", type=int, default=4, help="HTTP clients per collector")
    parser.add_argument(
        "--lists",
        type=int,
        default=None,
        help="distinct lists, 10 tokens each (default: events / 10, a token per event)",
    )
    parser.add_argument("--peak", type=float, default=3.0, help="peak / average, for the sizing")
    parser.add_argument("--tmpdir", help="where the spools go (a real disk)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="clickthru-2dc-", dir=args.tmpdir))
    procs: list[Any] = []
    try:
        with (
            throwaway_database("clickthru_bench_2dc") as url,
            throwaway_database("clickthru_bench_copy") as anchor_url,
        ):
            central = open_store(url)
            central.admin.add_site(SITE, [SITE_ORIGIN])
            made = time.perf_counter()
            lists = args.lists or max(1, args.events // 10)
            work = make_workload(central.admin, args.events, lists, 10)
            chunks = copy_text(work.rows)
            central.close()
            print(
                f"{args.events:,} events in {len(work.bodies)} batches of {BATCH},"
                f" {lists * 10:,} tokens, made in {time.perf_counter() - made:.1f}s;"
                f" {os.cpu_count()} CPUs; spools in {tmp}",
                flush=True,
            )

            anchors: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for indexed in (False, True):
                anchors[indexed].append(bare_copy(anchor_url, chunks, indexed))

            ports, spools = [free_port(), free_port()], []
            for name, port in zip(("dc-a", "dc-b"), ports, strict=True):
                spool = tmp / f"{name}-spool.db"
                spools.append(spool)
                env = {
                    **os.environ,
                    "CLICKTHRU_LOG_LEVEL": "warning",
                    "CLICKTHRU_SPOOL": str(spool),
                    "CLICKTHRU_COLLECTOR_NAME": name,
                }
                argv = [sys.executable, "-m", "clickthru", "--store", url, "serve"]
                argv += ["--port", str(port), "--workers", str(args.workers)]
                procs.append(start(argv, tmp / f"{name}.log", env))
            for port, proc in zip(ports, procs, strict=True):
                wait_http(f"http://127.0.0.1:{port}/healthz", 30, proc)
            run = post_and_wait(url, ports, [p.pid for p in procs], work, args.clients, args.events)
            for proc in procs:
                stop(proc)
            procs = []

            for indexed in (False, True):
                anchors[indexed].append(bare_copy(anchor_url, chunks, indexed))
            with throwaway_database("clickthru_bench_drain") as drain_url:
                drained = ship_and_count(drain_url, work.rows)

            expected = sorted(
                tuple(int(v) if isinstance(v, bool) else v for i, v in enumerate(row) if i != 10)
                for row in work.rows
            )
            found = stored_rows(url)
            ids = {row[0] for row in found}
            left = [spooled(path) for path in spools]
    finally:
        for proc in procs:
            stop(proc)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    n = args.events
    e2e, acked = n / run.stored_s, n / run.acked_s
    bare = {k: sum(s for s, _ in v) / len(v) for k, v in anchors.items()}  # mean seconds
    bare_rate = {k: n / s for k, s in bare.items()}
    print()
    header = f"{'what':<44} {'events/s':>9} {'seconds':>8} {'vs COPY':>8} {'vs COPY+ix':>10}"
    print(header)
    print("-" * len(header))
    for indexed, label in ((False, "bare COPY, no index"), (True, "bare COPY, same indexes")):
        for when, (seconds, _) in zip(("before", "after"), anchors[indexed], strict=True):
            print(f"{f'{label}, {when}':<44} {n / seconds:>9,.0f} {seconds:>8.2f}")
    for label, rate, seconds in (
        (f"two collectors w={args.workers}, acknowledged (HTTP)", acked, run.acked_s),
        (f"two collectors w={args.workers}, end to end (in PG)", e2e, run.stored_s),
        (f"two collectors w={args.workers}, counted", n / run.counted_s, run.counted_s),
        ("PostgreSQL alone: 2 forwarders shipping", n / drained.seconds, drained.seconds),
        (
            "PostgreSQL alone: 1 aggregator counting",
            n / drained.count_seconds,
            drained.count_seconds,
        ),
    ):
        print(
            f"{label:<44} {rate:>9,.0f} {seconds:>8.2f}"
            f" {rate / bare_rate[False]:>8.1%} {rate / bare_rate[True]:>10.1%}"
        )
    lag = run.stored_s - run.acked_s
    # After the last answer only the forwarders work: how fast the shared store drains.
    drain = (n - run.stored_at_ack) / lag if lag > 0 else float("inf")
    print(
        f"PostgreSQL caught up {lag:.2f} s after the last answer, when it held"
        f" {run.stored_at_ack:,}: it drained the spools at {drain:,.0f} events/s;"
        f" the counters caught up {run.counted_s - run.stored_s:.2f} s after that"
    )
    print()
    pg_copy_cpu = sum(c for _, c in anchors[True]) / len(anchors[True])
    per_core = n / run.collectors_cpu
    pg_per_core = n / run.postgres_cpu
    print("CPU over the end-to-end run (seconds; cores = seconds / wall):")
    print(
        f"  collectors (both trees) {run.collectors_cpu:7.1f} s"
        f"  {run.collectors_cpu / run.stored_s:4.2f} cores  -> {per_core:,.0f} events per CPU s"
    )
    print(
        f"  PostgreSQL (all procs)  {run.postgres_cpu:7.1f} s"
        f"  {run.postgres_cpu / run.stored_s:4.2f} cores  -> {pg_per_core:,.0f} events per CPU s"
        f"  (bare COPY with indexes: {n / max(pg_copy_cpu, 1e-9):,.0f})"
    )
    print(
        f"  PostgreSQL alone, shipping {n / drained.postgres_cpu:,.0f} events per CPU s,"
        f" counting {n / drained.count_postgres_cpu:,.0f} events per CPU s"
    )
    print(
        f"  HTTP clients (this)     {run.client_cpu:7.1f} s"
        f"  {run.client_cpu / run.stored_s:4.2f} cores;"
        f"  machine busy {run.machine_busy:.0%}"
    )
    print()
    print(
        f"sizing on paper, 1e9 events/day = {BILLION_A_DAY:,.0f}/s on average,"
        f" x{args.peak:g} at peak = {BILLION_A_DAY * args.peak:,.0f}/s, in batches like these:"
    )
    for what, rate in (("collector", per_core), ("PostgreSQL", pg_per_core)):
        print(
            f"  {what:<11} {BILLION_A_DAY / rate:5.1f} cores on average,"
            f" {BILLION_A_DAY * args.peak / rate:5.1f} at peak"
        )
    alone = n / drained.seconds
    print(
        f"  shared store: shipments take turns on one lock for their insert; alone it drained"
        f" {alone:,.0f} events/s here: {BILLION_A_DAY / alone:.0%} of that on average,"
        f" {BILLION_A_DAY * args.peak / alone:.0%} at peak"
    )
    print(
        "  (single-event beacons cost the collector more per event than batches of 250:"
        " see bench/collector_vs_nginx.py)"
    )
    print()
    same = found == expected
    print(f"answers not 200 with all {BATCH} accepted: {len(run.failures)}")
    for failure in run.failures[:5]:
        print(f"  {failure}")
    print(
        f"rows in PostgreSQL's events: {len(found):,} (expected {n:,}), distinct ids:"
        f" {len(ids):,}; same rows as the COPY (all but received_at): {same};"
        f" left in the spools: {left}"
    )
    return 0 if not run.failures and same and len(ids) == n and not any(left) else 1


if __name__ == "__main__":
    sys.exit(main())
