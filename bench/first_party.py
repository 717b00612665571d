"""First-party mode: what a collector hanging behind the shop's own proxy costs the shop's
navigation, beside the same clicks with the collector up and on pages without the snippet.

What it measures, for each proxy (nginx over HTTP/1.1, nginx over HTTP/2 with TLS, Caddy),
each running the configuration shipped in ``deploy/`` (``tests/shop_proxy.py``):

- the shop's pages (``tests/snippet/site.py``) behind the proxy, the collector at ``/_ct/``
  behind a faulty endpoint (``tests/faults.py``); every link leads to another page of the
  shop's own host, so the shop's navigations share the browser's connections with the
  snippet's requests;
- ``--clicks`` same-tab clicks with the snippet in Chromium, alternated click by click with
  as many by a visitor whose pages have no snippet, once with the collector up and once
  with it hanging (held connections, no answer: the proxy gives up after 2 s);
- nav start: the median ms from the click to the destination's navigation start; request:
  to its request leaving the browser (this is what waits when connections are taken);
- added: with the snippet minus without, in the same state;
- stored: the hanging run's clicks stored once the collector is back and one more page of
  the shop is opened.

Run (Debian's chromium, nginx and caddy; all traffic stays on 127.0.0.1)::

    flock /tmp/clickthru-bench.lock .venv/bin/python bench/first_party.py
    .venv/bin/python bench/first_party.py --proxies nginx --clicks 10
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from playwright.sync_api import Browser, sync_playwright
from tests.chromium import CHROMIUM
from tests.faults import Mode
from tests.shop_proxy import KINDS, FirstPartyWorld, Kind, first_party_world
from tests.snippet.conftest import CHROMIUM_ARGS
from tests.snippet.site import Page
from tests.snippet.visitor import Visitor

STATES = ("up", "hang")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """What the collector and proxies print goes to standard error: stdout stays ours."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One proxy in one state: medians in ms, with the snippet and without."""

    proxy: str
    state: str
    nav_with: float
    nav_without: float
    req_with: float
    req_without: float
    req_max_with: float
    stored: int
    clicks: int


def run(browser: Browser, world: FirstPartyWorld, kind: Kind, state: str, clicks: int) -> Row:
    origin = world.proxies[kind].origin
    list_id = f"bench-{kind}-{state}"
    pages = {
        "with": Page(endpoints="/_ct/", list_id=list_id, links=1, blank=False, landing=origin),
        "without": Page(list_id=f"{list_id}-none", links=1, blank=False, landing=origin),
    }
    visitors = {
        variant: Visitor(browser.new_context(ignore_https_errors=True)) for variant in pages
    }
    navigation: dict[str, list[float]] = {"with": [], "without": []}
    request: dict[str, list[float]] = {"with": [], "without": []}
    try:
        for variant, visitor in visitors.items():  # both start from a visited shop
            visitor.open(world.url(kind, pages[variant]))
        world.endpoint.set_mode(cast(Mode, state))
        for number in range(clicks):
            order = ("without", "with") if number % 2 == 0 else ("with", "without")
            for variant in order:
                visitor = visitors[variant]
                visitor.open(world.url(kind, pages[variant]))
                visit = visitor.click("same", 1)
                navigation[variant].append(visit.navigation_start - visit.clicked_at)
                request[variant].append(visit.delay)
        world.endpoint.set_mode("up")
        visitors["with"].open(world.url(kind, Page(endpoints="/_ct/", list_id="after", links=1)))
        deadline = time.monotonic() + 30
        while len(world.stored(list_id)) < clicks and time.monotonic() < deadline:
            time.sleep(0.1)
        stored = len(world.stored(list_id))
    finally:
        for visitor in visitors.values():
            visitor.context.close()
    return Row(
        kind,
        state,
        median(navigation["with"]),
        median(navigation["without"]),
        median(request["with"]),
        median(request["without"]),
        max(request["with"]),
        stored,
        clicks,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--proxies", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--clicks", type=int, default=20, help="clicks per proxy and state")
    args = parser.parse_args()
    rows = []
    with (
        tempfile.TemporaryDirectory() as directory,
        stdout_to_stderr(),
        first_party_world(Path(directory), tuple(args.proxies)) as world,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            ignore_default_args=["--disable-back-forward-cache"],
        )
        version = browser.version
        for kind in args.proxies:
            for state in STATES:
                rows.append(run(browser, world, kind, state, args.clicks))
                print(f"{kind} {state} done", file=sys.stderr, flush=True)
        browser.close()
    print(f"Chromium {version}; {args.clicks} clicks per proxy and state, medians in ms")
    header = (
        f"{'proxy':<9} {'collector':<9} {'nav start':>17} {'added':>6}"
        f" {'request':>17} {'added':>6} {'max':>6} {'stored':>7}"
    )
    print(header)
    print(f"{'':<9} {'':<9} {'with / without':>17} {'':>6} {'with / without':>17}")
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.proxy:<9} {row.state:<9} {row.nav_with:>8.1f} / {row.nav_without:<6.1f}"
            f" {row.nav_with - row.nav_without:>+6.1f}"
            f" {row.req_with:>8.1f} / {row.req_without:<6.1f}"
            f" {row.req_with - row.req_without:>+6.1f} {row.req_max_with:>6.0f}"
            f" {row.stored:>3}/{row.clicks:<3}"
        )
    print()
    print("nav start: click to the destination's navigation start; request: to its request")
    print("leaving the browser; added: with the snippet minus without; max: the slowest")
    print("request with the snippet; stored: the run's clicks stored after the collector's return.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
