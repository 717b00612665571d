"""The dashboard and the reports API on 10 million events: time to first render of the
overview and the time of every report query.

What it measures (goal: the overview renders in 300 ms on 10 million events):

- the data: N events (default 10,000,000) written straight into a fresh SQLite file with
  the store's own schema (``clickthru.store.sqlite.connect`` + ``migrate``; rows in arrival
  order, ``executemany`` in big transactions, synchronous=OFF while loading). The shape:
  30 days up to now, 5 sites of unequal size, 3 placements, 2,000 items per site picked by
  popularity, lists of 10 items, views falling off and CTR falling with the position (about
  4 % clicks, 96 % views), 3 % of lists from bots, some views and clicks sent twice with
  new ids; rejects (0.5 %) in ``rejects`` and duplicates (1.5 %) in ``duplicate_counts``.
  Then ``clickthru rollup --rebuild`` builds the rollups, as after an upgrade: timed;
- the collector: ``clickthru serve`` on that file (one worker, the default), restarted
  before each query so its first run is cold (empty SQLite caches; the OS page cache stays
  warm); then ``--runs`` warm runs: median and max;
- the overview: its first contentful paint in Chromium after signing in
  (``performance.getEntriesByName('first-contentful-paint')``), the figure held to 300 ms,
  and the time to the complete HTML; the other pages; the API (report by placement, item
  with limit 20, position, day and hour; health; latest clicks, and the live.js poll for
  clicks newer than the newest), each for the last 30 and 7 days of the biggest site; the
  raw CSV export of one day of that site, to its first byte and to its end.

Run (needs Chromium at /usr/bin/chromium and Playwright, unless --no-browser)::

    .venv/bin/python bench/dashboard_10m.py                  # 10M events: ~10 min on 2 cores
    .venv/bin/python bench/dashboard_10m.py --events 1000000 # 1M: ~1.5 min
    .venv/bin/python bench/dashboard_10m.py --db /var/tmp/ct10m.db          # a given --db stays
    .venv/bin/python bench/dashboard_10m.py --db /var/tmp/ct10m.db --reuse  # measure it again
    .venv/bin/python bench/dashboard_10m.py --db /var/tmp/ct10m.db --reuse --only latest
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import http.client
import itertools
import math
import operator
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import free_port, start, stop, wait_http
from clickthru.backend import open_store
from clickthru.clock import HOUR_MS
from clickthru.store.rows import EventRow
from clickthru.store.sqlite import INSERT_REJECT, connect, migrate

# The test helpers live beside the package, not in it: importable from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

OVERVIEW_GOAL_MS = 300.0
USER, PASSWORD = "bench-ops", "bench password 10m"

# -- the shape of the data -------------------------------------------------------------------

DAYS = 30
SITES = {"books": 0.40, "games": 0.22, "garden": 0.16, "music": 0.12, "tools": 0.10}
PLACEMENTS = {"product-page-bottom": 0.5, "home-top": 0.3, "cart-side": 0.2}
ITEMS_PER_SITE = 2000
ITEM_SKEW = 0.9  # Zipf exponent of item popularity
LIST_LENGTH = 10
# Share of lists whose position p is seen (lower ones are often below the fold).
SEEN = (1.0, 1.0, 0.98, 0.95, 0.9, 0.85, 0.8, 0.72, 0.65, 0.6)
# Click-through rate of a seen item at position p: about 4 % of all events are clicks.
CTR = tuple(0.11 / p**0.8 for p in range(1, LIST_LENGTH + 1))
BOT_LISTS = 0.03
VIEWED_AGAIN = 0.03  # a second view event (new id) of the same item: not unique
CLICKED_AGAIN = 0.10  # back, and the same link again
REJECT_SHARE = 0.005
DUPLICATE_SHARE = 0.015  # events sent twice and stored once: counted, no row
VIA = (("fetch", 0.90), ("beacon", 0.08), ("img", 0.02))
REJECT_REASONS = (
    ("token_expired", 0.40, True),  # (reason, share, whether the site is known)
    ("origin_not_allowed", 0.25, True),
    ("token_bad_signature", 0.10, True),
    ("invalid_event", 0.10, False),
    ("token_malformed", 0.10, False),
    ("body_too_large", 0.05, False),
)
ROWS_PER_TRANSACTION = 250_000
INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EventRow._fields)})"
    f" VALUES ({', '.join('?' * len(EventRow._fields))})"
)
Row = tuple[Any, ...]  # an events row, in the order of EventRow's fields
RECEIVED_AT = EventRow._fields.index("received_at")
received_at = operator.itemgetter(RECEIVED_AT)
# What the data size line counts besides events: the rollups and what they are built from.
COUNTED_TABLES = (
    "rollup_hourly",
    "rollup_items",
    "rollup_positions",
    "firsts",
    "reject_counts",
    "duplicate_counts",
    "rejects",
)


def cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


@dataclass
class Catalogue:
    """Per site: item ids, their page URLs, and popularity for ``random.choices``."""

    items: dict[str, list[str]]
    urls: dict[str, list[str]]
    popularity: list[float] = field(
        default_factory=lambda: cumulative(
            1 / (rank + 1) ** ITEM_SKEW for rank in range(ITEMS_PER_SITE)
        )
    )

    @staticmethod
    def make() -> Catalogue:
        items = {site: [f"{site[:2]}-{n:05d}" for n in range(ITEMS_PER_SITE)] for site in SITES}
        urls = {
            site: [f"https://{site}.example/p/{item}" for item in names]
            for site, names in items.items()
        }
        return Catalogue(items, urls)


@dataclass
class Generated:
    events: int
    lists: int
    rejects: int
    duplicates: int
    seconds: float


class Lists:
    """Served lists and the events their visitors send, for one hour at a time."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.catalogue = Catalogue.make()
        self.sites, self.site_weights = list(SITES), cumulative(SITES.values())
        self.placements = list(PLACEMENTS)
        self.placement_weights = cumulative(PLACEMENTS.values())
        self.vias, self.via_weights = [v for v, _ in VIA], cumulative(w for _, w in VIA)
        self.lists = 0

    def one(self, start_ms: int) -> list[Row]:
        """The events of one list served at a moment of the hour from ``start_ms``."""
        rng = self.rng
        self.lists += 1
        served = start_ms + int(rng.random() * HOUR_MS)
        site = rng.choices(self.sites, cum_weights=self.site_weights)[0]
        placement = rng.choices(self.placements, cum_weights=self.placement_weights)[0]
        bot = rng.random() < BOT_LISTS
        list_id = f"{rng.getrandbits(64):016x}"
        visitor = f"{rng.getrandbits(64):016x}"
        urls, names = self.catalogue.urls[site], self.catalogue.items[site]
        page = urls[rng.randrange(ITEMS_PER_SITE)]
        origin = f"https://{site}.example"
        via = rng.choices(self.vias, cum_weights=self.via_weights)[0]
        # Ten distinct items, popular ones more often: draw a few more and keep the first ten.
        ranks = list(
            dict.fromkeys(
                rng.choices(range(ITEMS_PER_SITE), cum_weights=self.catalogue.popularity, k=16)
            )
        )
        while len(ranks) < LIST_LENGTH:
            ranks = list(dict.fromkeys([*ranks, rng.randrange(ITEMS_PER_SITE)]))
        issued = served // 1000
        events: list[Row] = []

        def event(kind: str, rank: int, position: int, at: int) -> None:
            client_ts = at - rng.randrange(300)
            event_id = f"{base36(client_ts)}-{rng.getrandbits(32)}-{rng.getrandbits(32)}"
            # A plain tuple in EventRow's order: a NamedTuple per row costs a minute at 10M.
            row = (
                event_id, kind, site, list_id, names[rank], position, placement, "k1",
                issued, client_ts, at, page, urls[rank], via, origin, bot, visitor,
            )  # fmt: skip
            events.append(row)

        for position, rank in enumerate(ranks[:LIST_LENGTH], start=1):
            if rng.random() >= SEEN[position - 1]:
                continue
            seen_at = served + 1000 + position * 300 + rng.randrange(2000)
            event("view", rank, position, seen_at)
            if rng.random() < VIEWED_AGAIN:
                event("view", rank, position, seen_at + rng.randrange(5000, 60_000))
            if rng.random() < CTR[position - 1]:
                clicked_at = seen_at + rng.randrange(2000, 30_000)
                event("click", rank, position, clicked_at)
                if rng.random() < CLICKED_AGAIN:
                    event("click", rank, position, clicked_at + rng.randrange(5000, 120_000))
        return events

    def rejects(self, start_ms: int, count: int) -> list[tuple[object, ...]]:
        rng = self.rng
        rows: list[tuple[object, ...]] = []
        reasons = [r for r, _, _ in REJECT_REASONS]
        weights = cumulative(w for _, w, _ in REJECT_REASONS)
        knows_site = {r: known for r, _, known in REJECT_REASONS}
        for _ in range(count):
            reason = rng.choices(reasons, cum_weights=weights)[0]
            site = rng.choices(self.sites, cum_weights=self.site_weights)[0]
            rows.append(
                (
                    start_ms + int(rng.random() * HOUR_MS),
                    reason,
                    None,
                    site if knows_site[reason] else None,
                    f"https://{site}.example",
                    '{"id":"x","kind":"click","token":"..."}',
                )
            )
        return rows


def hour_weights(hours: int, first_hour_utc: int) -> list[float]:
    """Busier in the (European) evening than at night."""
    return [
        1 + 0.6 * math.sin(2 * math.pi * ((first_hour_utc + h) % 24 - 12) / 24)
        for h in range(hours)
    ]


def generate(path: Path, events: int, seed: int, say: Callable[[str], None]) -> Generated:
    """A fresh store with the bench sites and ``events`` events ending now."""
    started = time.perf_counter()
    store = open_store(str(path))
    for site in SITES:
        store.admin.add_site(site, [f"https://{site}.example"])
    store.close()
    conn = connect(str(path))
    migrate(conn)
    conn.execute("PRAGMA synchronous = OFF")  # a lost bench file is made again
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB: the id index stays in memory
    lists = Lists(seed)
    hours = DAYS * 24
    end_ms = (int(time.time()) - 120) * 1000  # clicks come up to a couple of minutes later
    first_ms = end_ms - hours * HOUR_MS
    weights = hour_weights(hours, first_ms // HOUR_MS)
    # Cumulative targets, so that a list's overshoot in one hour is not carried to the end.
    targets = [round(events * w) for w in cumulative(w / sum(weights) for w in weights)]
    targets[-1] = events
    duplicates: defaultdict[tuple[str, int], int] = defaultdict(int)
    made_so_far = stored = rejected = pending = 0
    carry: list[Row] = []  # made by lists of an earlier hour, arriving later
    conn.execute("BEGIN")
    for hour, target in enumerate(targets):
        hour_ms = first_ms + hour * HOUR_MS
        made: list[Row] = []
        while made_so_far + len(made) < target:
            made.extend(lists.one(hour_ms))
        made_so_far += len(made)
        arriving = sorted([*carry, *made], key=received_at)
        cut = bisect.bisect_left(arriving, hour_ms + HOUR_MS, key=received_at)
        if hour == len(targets) - 1:
            cut = len(arriving)
        batch, carry = arriving[:cut], arriving[cut:]
        batch = batch[: events - stored]  # exactly N: the last hour's tail is left out
        conn.executemany(INSERT_EVENT, batch)
        rng = lists.rng
        for e in batch:
            if rng.random() < DUPLICATE_SHARE:
                duplicates[(e[2], e[RECEIVED_AT] // HOUR_MS)] += 1
        refused = lists.rejects(hour_ms, round(len(made) * REJECT_SHARE))
        conn.executemany(INSERT_REJECT, refused)
        stored += len(batch)
        rejected += len(refused)
        pending += len(batch)
        if pending >= ROWS_PER_TRANSACTION:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            pending = 0
        if hour % 72 == 71:
            rate = stored / (time.perf_counter() - started)
            say(f"  {stored:,} events ({hour + 1} of {hours} hours), {rate:,.0f} events/s")
    conn.executemany(
        "INSERT INTO duplicate_counts (site, hour, count) VALUES (?, ?, ?)",
        [(site, hour, count) for (site, hour), count in duplicates.items()],
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return Generated(
        stored, lists.lists, rejected, sum(duplicates.values()), time.perf_counter() - started
    )


def rebuild(path: Path) -> tuple[float, float]:
    """``clickthru rollup --rebuild``: (seconds it reports, wall seconds of the command)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "clickthru", "--store", str(path), "rollup", "--rebuild"],
        capture_output=True,
        text=True,
        check=False,
        cwd=path.parent,  # so no ./clickthru.toml of the caller's is picked up
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"clickthru rollup --rebuild failed: {done.stderr.strip()}")
    found = re.search(r"in ([\d.]+) s", done.stdout)
    return (float(found[1]) if found else wall), wall


def count(conn: sqlite3.Connection, table: str) -> int:
    found: int = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return found


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    name: str
    span: str
    path: str  # with its query string
    expect: str  # a piece of the body that shows the answer is the real one
    browser: bool = False  # first contentful paint in Chromium, not an HTTP client
    first_byte: bool = False  # also a row for the time to the first byte
    goal_ms: float | None = None


@dataclass
class Timing:
    cold: float
    warm: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.warm) if self.warm else self.cold

    @property
    def most(self) -> float:
        return max(self.warm) if self.warm else self.cold


@dataclass
class Answer:
    first_byte_ms: float
    complete_ms: float
    size: int


def fetch(port: int, path: str, headers: dict[str, str], expect: str) -> Answer:
    """One GET on a new connection: ms to the first byte of the body and to its end."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        first = response.read(1)
        first_byte = time.perf_counter()
        rest = response.read()
        done = time.perf_counter()
    finally:
        conn.close()
    body = first + rest
    if response.status != 200 or expect.encode() not in body[:200_000]:
        raise RuntimeError(f"GET {path}: {response.status}, no {expect!r}: {body[:300]!r}")
    return Answer((first_byte - started) * 1000, (done - started) * 1000, len(body))


FCP_JS = """() => new Promise((resolve) => {
  const found = performance.getEntriesByName('first-contentful-paint')[0];
  if (found) return resolve(found.startTime);
  new PerformanceObserver((list) => {
    const entry = list.getEntriesByName('first-contentful-paint')[0];
    if (entry) resolve(entry.startTime);
  }).observe({ type: 'paint', buffered: true });
  setTimeout(() => resolve(-1), 10000);
})"""


class Browser:
    """One Chromium, signed in once through the sign-in form; a new tab per load."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        self.context = self.browser.new_context()
        self.signed_in = False

    def sign_in(self, port: int) -> None:
        page = self.context.new_page()
        # next: the stylesheet, so that signing in does not render (and warm) the overview.
        page.goto(f"http://127.0.0.1:{port}/dashboard/sign-in?next=/dashboard/static/dashboard.css")
        page.fill("input[name=name]", USER)
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        if "/sign-in" in page.url:
            raise RuntimeError("signing in to the dashboard failed")
        page.close()
        self.signed_in = True

    def first_paint(self, port: int, path: str, expect: str) -> Answer:
        page = self.context.new_page()
        try:
            page.goto(f"http://127.0.0.1:{port}{path}", wait_until="load")
            if expect not in page.content():
                raise RuntimeError(f"{path} in Chromium: no {expect!r} ({page.url})")
            fcp: float = page.evaluate(FCP_JS)
            response_end: float = page.evaluate(
                "() => performance.getEntriesByType('navigation')[0].responseEnd"
            )
        finally:
            page.close()  # and with it live.js's polling
        if fcp < 0:
            raise RuntimeError(f"{path}: Chromium reported no first contentful paint")
        # The HTML's end (navigation timing) where an HTTP answer has its first byte.
        return Answer(response_end, fcp, 0)

    def close(self) -> None:
        self.browser.close()
        self._playwright.stop()


@dataclass
class Server:
    path: Path
    port: int
    log: Path
    startups: list[float] = field(default_factory=list)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        started = time.perf_counter()
        env = {**os.environ, "CLICKTHRU_LOG_LEVEL": "warning"}
        argv = [sys.executable, "-m", "clickthru", "--store", str(self.path), "serve"]
        proc = start([*argv, "--port", str(self.port)], self.log, env)
        try:
            wait_http(f"http://127.0.0.1:{self.port}/healthz", 600, proc)
            self.startups.append(time.perf_counter() - started)
            yield
        finally:
            stop(proc)


def measure(
    probe: Probe,
    server: Server,
    browser: Browser | None,
    headers: dict[str, str],
    runs: int,
) -> tuple[Timing, Timing, int]:
    """Cold (a just-started collector) and warm runs: (complete, first byte, body size)."""
    answers: list[Answer] = []
    with server.running():
        for _ in range(1 + runs):
            if probe.browser:
                assert browser is not None
                if not browser.signed_in:
                    browser.sign_in(server.port)
                answers.append(browser.first_paint(server.port, probe.path, probe.expect))
            else:
                answers.append(fetch(server.port, probe.path, headers, probe.expect))
    complete = Timing(answers[0].complete_ms, [a.complete_ms for a in answers[1:]])
    first = Timing(answers[0].first_byte_ms, [a.first_byte_ms for a in answers[1:]])
    return complete, first, answers[0].size


def probes(site: str, end: date, latest_seq: int) -> list[Probe]:
    """Every query, for the last 30 and 7 days (up to the data's last day) of ``site``."""
    # The anchor: a page with no report on it, same stylesheet: what any page costs.
    found = [
        Probe("sign-in page: first contentful paint", "-", "/dashboard/sign-in", "password", True)
    ]
    until = (end + timedelta(days=1)).isoformat()  # the API's until: the next midnight
    for days in (30, 7):
        since = (end - timedelta(days=days)).isoformat()
        page_range = f"site={site}&since={since}&until={end.isoformat()}"
        api_range = f"site={site}&since={since}&until={until}"
        span = f"{days} d"
        found += [
            Probe(
                "overview: first contentful paint",
                span,
                f"/dashboard/?{page_range}",
                "Latest clicks",
                browser=True,
                goal_ms=OVERVIEW_GOAL_MS,
            ),
            Probe("overview: complete HTML", span, f"/dashboard/?{page_range}", "Latest clicks"),
            *(
                Probe(f"{name} page", span, f"/dashboard/{name}?{page_range}", "</html>")
                for name in ("placements", "items", "positions", "health")
            ),
            *(
                Probe(
                    f"API report by {by}{' (limit 20)' if by == 'item' else ''}",
                    span,
                    f"/api/v1/report?by={by}&{api_range}{'&limit=20' if by == 'item' else ''}",
                    '"rows"',
                )
                for by in ("placement", "item", "position", "day", "hour")
            ),
            Probe("API health", span, f"/api/v1/health?{api_range}", '"events"'),
            Probe("API latest (limit 20)", span, f"/api/v1/latest?{api_range}", '"clicks"'),
            Probe(
                "API latest after newest (live.js)",
                span,
                f"/api/v1/latest?{api_range}&after={latest_seq}",
                '"clicks"',
            ),
        ]
    day = end - timedelta(days=1)  # the last whole day
    found.append(
        Probe(
            "API export CSV",
            "1 d",
            f"/api/v1/export?site={site}&since={day}&until={end}",
            "seq,id,kind",
            first_byte=True,
        )
    )
    return found


# -- the run -------------------------------------------------------------------------------------


def say(text: str) -> None:
    print(text, flush=True)


def ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="events to generate")
    parser.add_argument("--db", type=Path, help="the SQLite file, kept (default: a temp one)")
    parser.add_argument(
        "--reuse", action="store_true", help="use --db as it is if it holds --events events"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--runs", type=int, default=5, help="warm runs after the cold one")
    parser.add_argument("--seed", type=int, default=1, help="of the generated data")
    parser.add_argument("--only", help="run only the queries whose name contains this")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium FCP")
    parser.add_argument("--tmpdir", help="where the temporary folder goes (a real disk)")
    args = parser.parse_args()
    if args.reuse and args.db is None:
        parser.error("--reuse needs --db")
    if not args.no_browser and not Path(CHROMIUM).exists():
        parser.error(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or --no-browser)")

    run_started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="clickthru-dash10m-", dir=args.tmpdir))
    path: Path = args.db.resolve() if args.db else tmp / "clickthru.db"
    say(
        f"{args.events:,} events; {os.cpu_count()} CPUs, load average"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}; store {path}"
    )
    generated: Generated | None = None
    rebuilt: tuple[float, float] | None = None
    browser: Browser | None = None
    try:
        made = built = False
        if path.exists():
            if not args.reuse:
                parser.error(f"{path} exists: pass --reuse, or remove it")
            conn = sqlite3.connect(path)
            have, built = count(conn, "events"), count(conn, "rollup_hourly") > 0
            conn.close()
            if have != args.events:
                say(f"{path} holds {have:,} events, not {args.events:,}: making it again")
                for suffix in ("", "-wal", "-shm", ".writer-lock"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            else:
                made = True
                say(f"reusing {path}" + ("" if built else " (its rollups are to be built)"))
        if not made:
            say(f"generating {args.events:,} events over {DAYS} days ...")
            generated = generate(path, args.events, args.seed, say)
            say(
                f"generated in {generated.seconds:.1f} s"
                f" ({generated.events / generated.seconds:,.0f} events/s)"
            )
        if not made or not built:
            say("clickthru rollup --rebuild ...")
            rebuilt = rebuild(path)
            say(f"rebuilt in {rebuilt[0]:.1f} s ({rebuilt[1]:.1f} s with the command's start)")

        store = open_store(str(path))
        access = store.access
        if USER not in {user.name for user in access.users()}:
            access.add_user(USER, PASSWORD, operator=True, sites=[])
        user = access.user(USER)
        token, _ = access.start_session(user)
        key = access.add_read_key(USER)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes = {table: count(conn, table) for table in ("events", *COUNTED_TABLES)}
        site = conn.execute(
            "SELECT site FROM rollup_hourly GROUP BY site ORDER BY sum(clicks + views) DESC"
        ).fetchone()[0]
        # The site's newest seq: what live.js sends as after= when nothing newer came in.
        last_ms, latest_seq = conn.execute(
            "SELECT max(received_at), max(seq) FROM events WHERE site = ?", (site,)
        ).fetchone()
        conn.close()
        store.close()
        file_bytes = path.stat().st_size
        end = datetime.fromtimestamp(last_ms / 1000, UTC).date()

        cookie = {"Cookie": f"ct_session={token}"}
        bearer = {"Authorization": f"Bearer {key}"}
        server = Server(path, free_port(), tmp / "collector.log")
        if not args.no_browser:
            browser = Browser()
            say(f"Chromium {browser.browser.version}, headless")
        rows: list[tuple[str, str, Timing, float | None]] = []
        notes: list[str] = []
        for probe in probes(site, end, latest_seq):
            if args.only and args.only not in probe.name:
                continue
            if probe.browser and browser is None:
                continue
            headers = cookie if probe.path.startswith("/dashboard") else bearer
            complete, first, size = measure(probe, server, browser, headers, args.runs)
            if probe.first_byte:
                rows.append((f"{probe.name}: first byte", probe.span, first, None))
                rows.append((f"{probe.name}: complete", probe.span, complete, None))
                notes.append(f"{probe.name}, {probe.span}: {size / 1e6:.1f} MB, {probe.path}")
            else:
                rows.append((probe.name, probe.span, complete, probe.goal_ms))
            if probe.browser:
                notes.append(
                    f"{probe.name}, {probe.span}: HTML complete in Chromium"
                    f" {ms(first.cold)} ms cold, {ms(first.median)} ms warm median"
                )
            say(
                f"  {probe.name}, {probe.span}: {ms(complete.cold)} ms cold,"
                f" {ms(complete.median)} ms warm"
            )
    finally:
        if browser is not None:
            browser.close()
        if args.keep or args.db:
            say(f"kept {path}")
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"site {site} (the biggest), ranges ending {end}; {args.runs} warm runs after 1 cold")
    header = f"{'query':<40} {'range':>5} {'cold ms':>8} {'warm med':>8} {'warm max':>8}  goal"
    print(header)
    print("-" * len(header))
    for name, span, timing, goal in rows:
        verdict = ""
        if goal is not None:
            good = timing.median <= goal
            verdict = f"{goal:.0f} ms {'OK' if good else 'MISSED'}"
        print(
            f"{name:<40} {span:>5} {ms(timing.cold):>8} {ms(timing.median):>8}"
            f" {ms(timing.most):>8}  {verdict}"
        )
    print()
    print(
        f"data: {sizes['events']:,} events, file {file_bytes / 1e9:.2f} GB; "
        + ", ".join(f"{table} {sizes[table]:,}" for table in COUNTED_TABLES)
    )
    if generated is not None:
        print(
            f"generation: {generated.seconds:.0f} s ({generated.events / generated.seconds:,.0f}"
            f" events/s), {generated.lists:,} lists"
        )
    if rebuilt is not None:
        print(f"rollup --rebuild: {rebuilt[0]:.1f} s ({rebuilt[1]:.1f} s with the command's start)")
    print(
        f"collector start to healthy: {statistics.median(server.startups):.1f} s median,"
        f" {max(server.startups):.1f} s max ({len(server.startups)} starts)"
    )
    for note in notes:
        print(note)
    print(
        "cold: the first run on a collector just started (its SQLite caches empty, the OS page"
        " cache warm); warm: the runs after it. Times are to the complete answer, on a new"
        " connection; FCP is on the browser's clock from navigation start."
    )
    print(
        f"whole run: {time.perf_counter() - run_started:.0f} s; load average now"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    return 0  # a missed goal is a finding, not a failure of the run


if __name__ == "__main__":
    sys.exit(main())
