"""The snippet in Chromium, Firefox and WebKit, in every state a collector can be in: what it
costs the visitor's navigation, and what reaches the collector, when.

What it measures, for each engine and state:

- a shop page (``tests/snippet/site.py``) on 127.0.0.1 whose recommended links lead to another
  origin (localhost); ``--clicks`` same-tab clicks on the page with ``ct.js`` and as many on
  the same page without it, alternated click by click by two fresh visitors of one browser;
- the collector (a real one, SQLite) behind ``tests/faults.py``'s endpoint, put in the state
  for the clicks (up, slow, hanging, refusing, answering 500, dropping SYNs), then back up,
  and one more shop page opened by the visitor with the snippet, left open up to
  ``--replay-wait`` seconds ("one page view") while what waits arrives;
- nav start added: the median, with minus without, of the time from the click event to the
  destination's navigation start, both on the browser's clock;
- stored once / twice / lost: the clicks with the snippet in the collector's store at the end
  (twice: rows beyond one per click id; lost: clicks never stored);
- requests and event copies per click: every request the visitor's pages sent that reached
  the collector (views and replays included), and how many click events they carried;
- click to first request: from the click (its event's own time) to the first request that
  carried it reaching the endpoint, median and max, whether or not the collector was up;
- return to last stored: from the collector's return to the last click's arrival in the store.

Run (Debian's chromium, firefox-esr, webkit2gtk-driver and xvfb; puppeteer-core from
``npm ci --prefix tests/browsers``; all traffic stays on 127.0.0.1)::

    .venv/bin/python bench/snippet_navigation.py
    .venv/bin/python bench/snippet_navigation.py --engines webkit --states up drop --clicks 10
    .venv/bin/python bench/snippet_navigation.py --snippet old-ct.js   # another build of ct.js
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

# The test helpers live beside the package, not in it: importable from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browsers import ENGINES, Engine, Tab, launch
from tests.conftest import Collector
from tests.faults import FaultyEndpoint, Mode
from tests.snippet.conftest import running_world
from tests.snippet.site import Page, Site

STATES: dict[str, str] = {
    "up": "up",
    "slow": "slow (3 s)",
    "hang": "hanging",
    "refuse": "refusing",
    "error": "500",
    "drop": "drop SYNs",
}
LINKS = 5


@dataclass
class Cell:
    """One engine in one state."""

    engine: str
    state: str
    clicks: int
    delays: dict[str, list[float]] = field(default_factory=lambda: {"with": [], "without": []})
    stored: int = 0
    twice: int = 0
    requests: int = 0
    copies: int = 0
    first_request: list[float] = field(default_factory=list)  # ms after each click
    recovery: float | None = None  # s from the return to the last click stored
    seconds: float = 0.0

    @property
    def added(self) -> float:
        return statistics.median(self.delays["with"]) - statistics.median(self.delays["without"])


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Child processes started meanwhile write to standard error: stdout stays ours."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def stored_clicks(db: Path, list_id: str) -> list[tuple[str, int]]:
    sql = "SELECT id, received_at FROM events WHERE kind = 'click' AND list_id = ?"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, (list_id,)).fetchall()


def run_cell(
    engine: Engine, site: Site, collector: Collector, faulty: FaultyEndpoint, state: str, args: Any
) -> Cell:
    started = time.monotonic()
    cell = Cell(engine.name, state, args.clicks)
    list_id = f"{engine.name}-{state}"
    pages = {
        "with": Page(endpoints=faulty.url, list_id=list_id, links=LINKS, blank=False),
        "without": Page(list_id=f"without-{list_id}", links=LINKS, blank=False),
    }
    tabs: dict[str, Tab] = {}
    try:
        for variant in ("with", "without"):
            tabs[variant] = engine.visitor()
        # A first page in each, so both start from a visited site.
        for variant, tab in tabs.items():
            tab.open(site.url(pages[variant]))
        first_request = len(faulty.requests)
        faulty.set_mode(cast(Mode, state))
        for number in range(args.clicks):
            position = number % LINKS + 1
            order = ("without", "with") if number % 2 == 0 else ("with", "without")
            for variant in order:
                tab = tabs[variant]
                visit = tab.click("same", position)
                expected = f"{site.destination}/landing/{pages[variant].list_id}-book-{position}"
                if visit.url != expected:
                    raise RuntimeError(f"{engine.name}: the click led to {visit.url}")
                tab.open(site.url(pages[variant]))
        faulty.set_mode("up")
        returned = time.time()
        tabs["with"].open(site.url(Page(endpoints=faulty.url, list_id="after", links=1)))
        deadline = time.monotonic() + args.replay_wait
        while len(rows := stored_clicks(collector.db, list_id)) < args.clicks:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for variant, tab in tabs.items():
            for visit in tab.visits:
                if visit.clicked_at is not None:
                    cell.delays[variant].append(visit.delay)
        ids = {event_id for event_id, _ in rows}
        cell.stored = len(ids)
        cell.twice = len(rows) - len(ids)
        if rows and cell.stored == args.clicks:
            cell.recovery = max(0.0, max(at for _, at in rows) / 1000 - returned)
        first: dict[str, float] = {}
        for request in faulty.requests[first_request:]:
            try:
                events = json.loads(request.body)
            except ValueError:
                continue
            reached = request.mode in ("up", "slow")
            cell.requests += reached
            for event in events:
                if event.get("kind") == "click" and list_id in json.dumps(event.get("page")):
                    cell.copies += reached
                    first.setdefault(event["id"], request.at * 1000 - event["ts"])
        cell.first_request = list(first.values())
    finally:
        for tab in tabs.values():
            with contextlib.suppress(Exception):
                tab.close()
    cell.seconds = time.monotonic() - started
    return cell


def print_table(cells: list[Cell]) -> None:
    columns = [
        ("engine", 8, "<"),
        ("state", 10, "<"),
        ("nav start added", 15, ">"),
        ("stored once/twice/lost", 22, ">"),
        ("requests/click", 14, ">"),
        ("copies/click", 12, ">"),
        ("click→1st request, ms", 21, ">"),
        ("return→last stored", 18, ">"),
    ]
    header = "  ".join(f"{name:{align}{width}}" for name, width, align in columns)
    print(header)
    print("-" * len(header))
    for cell in cells:
        firsts = cell.first_request
        cells_text = [
            cell.engine,
            STATES[cell.state],
            f"{cell.added:+.1f} ms",
            f"{cell.stored}/{cell.twice}/{cell.clicks - cell.stored}",
            f"{cell.requests / cell.clicks:.2f}",
            f"{cell.copies / cell.clicks:.2f}",
            f"{statistics.median(firsts):.0f} / {max(firsts):.0f}" if firsts else "-",
            f"{cell.recovery:.1f} s" if cell.recovery is not None else "not all",
        ]
        print("  ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells_text, columns, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--states", nargs="+", choices=list(STATES), default=list(STATES))
    parser.add_argument("--clicks", type=int, default=20, help="clicks per cell, with and without")
    parser.add_argument(
        "--replay-wait", type=float, default=30, help="s the page after the return stays open"
    )
    parser.add_argument("--slow", type=float, default=3.0, help="s a slow collector holds back")
    parser.add_argument("--snippet", type=Path, help="serve this ct.js instead of the package's")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    if args.clicks < 2:
        parser.error("--clicks must be at least 2")
    STATES["slow"] = f"slow ({args.slow:g} s)"

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="clickthru-nav-"))
    cells: list[Cell] = []
    versions: dict[str, str] = {}
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            with stdout_to_stderr():  # the collector announces itself; --json owns stdout
                world = stack.enter_context(running_world(tmp, slow_seconds=args.slow))
            site, collector, faulty = world.site, world.collector, world.a
            if args.snippet:
                site.snippet = args.snippet.read_bytes()
            for name in args.engines:
                with launch(name) as engine:
                    versions[name] = engine.version
                    say(f"{name} {engine.version}")
                    for state in args.states:
                        try:
                            cell = run_cell(engine, site, collector, faulty, state, args)
                        except Exception as error:  # a driver's hiccup costs one cell, not all
                            say(f"  {STATES[state]}: failed: {error}")
                            continue
                        cells.append(cell)
                        say(
                            f"  {STATES[state]}: added {cell.added:+.1f} ms, stored"
                            f" {cell.stored}/{cell.clicks}, {cell.requests} requests"
                            f" ({cell.seconds:.0f} s)"
                        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.monotonic() - started
    if args.json:
        print(json.dumps({"versions": versions, "cells": [vars(c) for c in cells]}, indent=1))
        return 0
    print()
    print(
        ", ".join(f"{name} {version}" for name, version in versions.items())
        + f"; {args.clicks} same-tab clicks per cell with the snippet and as many without;"
        + f" {wall:.0f} s"
    )
    print_table(cells)
    print()
    print("nav start added: median (click -> destination's navigation start), with - without.")
    print("requests, copies: what reached the collector from the snippet's pages, per click.")
    print("click→1st request: to the first request carrying the click reaching the endpoint.")
    print(
        f"return→last stored: the page after the return stays open {args.replay_wait:g} s at most."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
