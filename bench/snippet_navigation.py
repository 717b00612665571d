"""Time from a click to the next page, with the snippet and without it, in every state a
collector can be in.

What it measures (the product's promise: no visitor delayed, no click lost):

- a shop page (``tests/snippet/site.py``) on 127.0.0.1 whose recommended links lead to
  another origin (localhost); same-tab clicks, the clicks a snippet that waited would delay;
- for each collector state (up, slow, hanging, refusing, unresolvable, answering 500,
  dropping SYNs; made by ``tests/faults.py`` as ``tests/snippet/test_failures.py`` does),
  ``--clicks`` clicks on the page with ``ct.js`` and as many on the same page without it,
  alternated click by click in two fresh browser contexts of one Chromium, so both see the
  same machine at the same moment;
- per click, on the browser's clock: from the click event to the destination's navigation
  start (``performance.timeOrigin``), and to its load event;
- the anchor, "classic": the usual fix, a page script that on click of an ``a[data-ct]``
  calls ``preventDefault()``, fires ``new Image().src = endpoint + '/p.gif?...'`` and
  navigates on the image's load or error, capped here (``--classic-cap``) so hanging states
  do not stall the run;
- stored: the share of the with-snippet clicks found in the collector's SQLite file once the
  state is put back to "up" and one more page of the site is loaded (replays), waiting up to
  ``--replay-wait`` seconds. For "unresolvable" the name never resolves in this browser, so
  that page lists the collector by 127.0.0.1: the outbox replays to whatever the page lists.

Run (needs Chromium at /usr/bin/chromium and Playwright; load goes to 127.0.0.1 only)::

    .venv/bin/python bench/snippet_navigation.py
    .venv/bin/python bench/snippet_navigation.py --clicks 100 --states up hang drop
    .venv/bin/python bench/snippet_navigation.py --json > navigation.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from clickthru import tokens
from clickthru.backend import open_store

# The test helpers live beside the package, not in it: importable from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import Collector
from tests.faults import FaultyEndpoint, Mode
from tests.snippet.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    GONE_HOST,
    NETWORK_NOISE,
    RESOLVE_NOTHING,
)
from tests.snippet.site import Page, Site
from tests.snippet.visitor import Visit, Visitor

# State name -> what the table calls it.
STATES: dict[str, str] = {
    "up": "up",
    "slow": "slow (3 s)",
    "hang": "hanging",
    "refuse": "refusing",
    "unresolvable": "unresolvable",
    "error": "500",
    "drop": "drop SYNs",
}
VARIANTS = ("without", "with", "classic")
LINKS = 5
SITE_NAME = "shop"

# The classic fix: hold the navigation until the tracking image has loaded or failed.
# The cap is the bench's, so a hanging collector costs seconds, not the whole run.
CLASSIC = """<script>
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-ct]');
  if (!link || event.defaultPrevented || event.button || event.ctrlKey || event.metaKey
      || event.shiftKey || event.altKey || link.target == '_blank') return;
  event.preventDefault();
  let gone = false;
  const go = () => { if (!gone) { gone = true; location.href = link.href; } };
  const image = new Image();
  image.onload = image.onerror = go;
  setTimeout(go, CAP);
  image.src = ENDPOINT + '/p.gif?' + new URLSearchParams({
    id: Date.now().toString(36) + '-' + crypto.getRandomValues(new Uint32Array(2)).join('-'),
    kind: 'click', token: link.dataset.ct, ts: Date.now(), page: location.href, dest: link.href,
  });
});
</script>"""


@dataclass
class BenchPage(Page):
    """A shop page; with ``classic`` (an endpoint), the classic fix instead of the snippet."""

    classic: str = ""
    cap: int = 5000  # ms


@dataclass
class BenchSite(Site):
    """The test shop, which also serves the classic fix's page."""

    def shop_page(self, query: dict[str, list[str]]) -> bytes:
        page = super().shop_page(query)
        endpoint = query.get("classic", [""])[0]
        if not endpoint:
            return page
        cap = int(query.get("cap", ["5000"])[0])
        script = CLASSIC.replace("ENDPOINT", json.dumps(endpoint)).replace("CAP", str(cap))
        return page + script.encode()


@dataclass
class Clicks:
    """Each click's delays in ms, from the click event on the browser's clock."""

    nav_start: list[float] = field(default_factory=list)
    request_start: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)

    def add(self, visit: Visit) -> None:
        self.nav_start.append(visit.navigation_start - visit.clicked_at)
        self.request_start.append(visit.request_start - visit.clicked_at)
        self.load.append(visit.loaded - visit.clicked_at)


@dataclass
class StateRun:
    state: str
    endpoint: str
    clicks: dict[str, Clicks] = field(default_factory=lambda: {v: Clicks() for v in VARIANTS})
    stored: int = 0  # after one more page
    stored_later: int = 0  # after a second page, where the first did not bring all home
    classic_stored: int = 0
    seconds: float = 0.0


@dataclass
class Bench:
    """What every state shares: the shop, the collector, the faulty endpoint, the browser."""

    site: BenchSite
    collector: Collector
    faulty: FaultyEndpoint
    browser: Browser
    errors: list[str] = field(default_factory=list)

    def endpoint(self, state: str) -> str:
        """Puts ``state`` in force; the URL a page names the collector by."""
        if state == "unresolvable":
            self.faulty.set_mode("up")  # reachable, were its name known
            return f"http://{GONE_HOST}:{self.faulty.port}"
        self.faulty.set_mode(cast(Mode, state))
        return self.faulty.url

    def visitor(self, stack: contextlib.ExitStack) -> Visitor:
        """A fresh visitor (empty localStorage, cold connections), closed with ``stack``."""
        context: BrowserContext = self.browser.new_context()
        stack.callback(_quietly(context.close))
        visitor = Visitor(context)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not any(n in message.text for n in NETWORK_NOISE):
                self.errors.append(f"console: {message.text}")

        visitor.page.on("console", on_console)
        visitor.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        return visitor

    def click(self, visitor: Visitor, page: Page, position: int, into: Clicks) -> None:
        """One same-tab click from a freshly loaded shop page; checks where it landed."""
        visitor.open(self.site.url(page))
        visit = visitor.click("same", position)
        expected = f"{self.site.destination}/landing/{page.list_id}-book-{position}"
        if visit.destination.url != expected:
            raise RuntimeError(f"the click led to {visit.destination.url}, not {expected}")
        into.add(visit)

    def stored(self, list_id: str) -> int:
        """Clicks of ``list_id`` in the collector's SQLite file."""
        sql = "SELECT count(*) FROM events WHERE kind = 'click' AND list_id = ?"
        with contextlib.closing(
            sqlite3.connect(f"file:{self.collector.db}?mode=ro", uri=True, timeout=10)
        ) as conn:
            count: int = conn.execute(sql, (list_id,)).fetchone()[0]
            return count

    def wait_stored(self, list_id: str, wanted: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (count := self.stored(list_id)) < wanted and time.monotonic() < deadline:
            time.sleep(0.25)
        return count


def _quietly(close: Callable[[], None]) -> Callable[[], None]:
    """A closer that ignores a browser already gone (Ctrl+C reaches Chromium too)."""

    def run() -> None:
        with contextlib.suppress(Exception):
            close()

    return run


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


def run_state(bench: Bench, state: str, args: argparse.Namespace) -> StateRun:
    started = time.monotonic()
    run = StateRun(state, bench.endpoint(state))
    pages = {
        "without": BenchPage(list_id=f"without-{state}", links=LINKS),
        "with": BenchPage(endpoints=run.endpoint, list_id=f"with-{state}", links=LINKS),
        "classic": BenchPage(
            classic=run.endpoint, cap=args.classic_cap, list_id=f"classic-{state}", links=LINKS
        ),
    }
    with contextlib.ExitStack() as stack:
        visitors = {variant: bench.visitor(stack) for variant in VARIANTS}
        for number in range(args.clicks):
            position = number % LINKS + 1
            # Alternate who goes first, so neither always follows the other's traffic.
            order = ("without", "with") if number % 2 == 0 else ("with", "without")
            for variant in order:
                bench.click(visitors[variant], pages[variant], position, run.clicks[variant])
        for number in range(args.classic_clicks):
            position = number % LINKS + 1
            bench.click(visitors["classic"], pages["classic"], position, run.clicks["classic"])
        bench.faulty.set_mode("up")
        # Any page of the site starts the replays; for "unresolvable", one whose name resolves.
        after = BenchPage(endpoints=bench.faulty.url, list_id=f"after-{state}", links=1)
        visitors["with"].open(bench.site.url(after))
        run.stored = bench.wait_stored(f"with-{state}", args.clicks, args.replay_wait)
        run.stored_later = run.stored
        if run.stored < args.clicks:
            # A page's replay that fails is not retried on that page: the next page's is.
            # Tells "arrives later" from "lost"; the table's figure stays the first one.
            again = BenchPage(endpoints=bench.faulty.url, list_id=f"again-{state}", links=1)
            visitors["with"].open(bench.site.url(again))
            run.stored_later = bench.wait_stored(f"with-{state}", args.clicks, args.replay_wait)
        run.classic_stored = bench.stored(f"classic-{state}")
    run.seconds = time.monotonic() - started
    return run


# -- figures and the table -----------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def summary(values: list[float]) -> dict[str, float]:
    return {
        name: round(figure(values), 2)
        for name, figure in (("median", median), ("p95", p95), ("max", max))
    }


def as_json(runs: list[StateRun], header: dict[str, Any]) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for run in runs:
        figures: dict[str, Any] = {
            "endpoint": run.endpoint,
            "stored": run.stored,
            "stored_share": run.stored / header["clicks"],
            "stored_after_second_page": run.stored_later,
            "classic_stored": run.classic_stored,
            "seconds": round(run.seconds, 1),
        }
        for variant, clicks in run.clicks.items():
            figures[variant] = {
                "summary": {
                    "nav_start": summary(clicks.nav_start),
                    "request_start": summary(clicks.request_start),
                    "load": summary(clicks.load),
                },
                "nav_start": [round(v, 2) for v in clicks.nav_start],
                "request_start": [round(v, 2) for v in clicks.request_start],
                "load": [round(v, 2) for v in clicks.load],
            }
        states[run.state] = figures
    return {**header, "states": states}


def print_table(runs: list[StateRun], clicks: int, cap: int) -> None:
    def pair(values: list[float]) -> str:
        return f"{median(values):5.1f} /{p95(values):6.1f}"

    def classic(values: list[float]) -> str:
        middle = median(values)
        return f"≥ {cap}" if middle >= cap else f"{middle:.0f}"

    columns = [
        ("state", 12, "<"),
        ("without", 13, ">"),
        ("with", 13, ">"),
        ("added", 6, ">"),
        ("without", 13, ">"),
        ("with", 13, ">"),
        ("classic", 8, ">"),
        ("stored", 6, ">"),
    ]
    groups = f"{'':12}  {'nav start, ms: median / p95':^34}  {'load, ms: median / p95':^28}"
    groups += f"  {'nav start':>8}"
    header = "  ".join(f"{name:{align}{width}}" for name, width, align in columns)
    print(groups)
    print(header)
    print("-" * len(header))
    for run in runs:
        without, with_snippet = run.clicks["without"], run.clicks["with"]
        added = median(with_snippet.nav_start) - median(without.nav_start)
        cells = [
            STATES[run.state],
            pair(without.nav_start),
            pair(with_snippet.nav_start),
            f"{added:+.1f}",
            pair(without.load),
            pair(with_snippet.load),
            classic(run.clicks["classic"].nav_start),
            f"{run.stored / clicks:.0%}",
        ]
        print("  ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells, columns, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clicks", type=int, default=50, help="clicks per state, with and without")
    parser.add_argument(
        "--classic-clicks", type=int, default=10, help="clicks per state for the classic fix"
    )
    parser.add_argument(
        "--classic-cap", type=int, default=5000, help="ms the classic fix waits at most"
    )
    parser.add_argument(
        "--states", nargs="+", choices=list(STATES), default=list(STATES), help="states to run"
    )
    parser.add_argument(
        "--replay-wait", type=float, default=30, help="s to wait for replays to be stored"
    )
    parser.add_argument("--slow", type=float, default=3.0, help="s a slow collector holds back")
    parser.add_argument("--headed", action="store_true", help="show the browser")
    parser.add_argument("--tmpdir", help="where the temporary folder goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    if args.clicks < 2 or args.classic_clicks < 1:
        parser.error("--clicks must be at least 2 and --classic-clicks at least 1")
    if not 0 < args.classic_cap < 9000:
        parser.error("--classic-cap must be below 9000 ms (a click waits 10 s for navigation)")
    STATES["slow"] = f"slow ({args.slow:g} s)"

    # With --json, standard output is the JSON alone.
    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    # Ctrl+C reaches Playwright's driver too, which may close the browser under a click
    # before Python sees the signal: remember it, to tell that from a real failure.
    interrupted: list[bool] = []

    def on_interrupt(signum: int, frame: object) -> None:
        interrupted.append(True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="clickthru-nav-", dir=args.tmpdir))
    runs: list[StateRun] = []
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            site = BenchSite(mint=lambda item, position: "")
            site.start()
            stack.callback(site.stop)
            # As tests/snippet/conftest.py's `world`: a site whose origin is the shop's.
            store = open_store(str(tmp / "clickthru.db"))
            collector = Collector(tmp / "clickthru.db")
            collector.sites[SITE_NAME] = store.admin.add_site(SITE_NAME, [site.origin])
            store.close()
            key = collector.sites[SITE_NAME].site.signing_key

            def mint(item: str, position: int) -> str:
                list_id = item.rsplit("-book-", 1)[0]  # the site names items "<list>-book-<n>"
                return tokens.mint(
                    site=SITE_NAME, key_id=key.key_id, secret=key.secret, list_id=list_id,
                    item=item, position=position, placement="product-page-bottom",
                )  # fmt: skip

            site.mint = mint
            stack.callback(collector.stop)
            with stdout_to_stderr():  # it announces itself on stdout; --json owns stdout
                collector.start()
            faulty = FaultyEndpoint(collector.port, slow_seconds=args.slow)
            stack.callback(faulty.stop)
            faulty.start()
            playwright = stack.enter_context(sync_playwright())
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[*CHROMIUM_ARGS, RESOLVE_NOTHING],
                ignore_default_args=["--disable-back-forward-cache"],  # a real browser has one
                headless=not args.headed,
            )
            stack.callback(_quietly(browser.close))
            bench = Bench(site, collector, faulty, browser)
            header: dict[str, Any] = {
                "chromium": browser.version,
                "clicks": args.clicks,
                "classic_clicks": args.classic_clicks,
                "classic_cap_ms": args.classic_cap,
                "slow_s": args.slow,
                "kind": "same",
            }
            say(
                f"Chromium {browser.version}, headless={not args.headed}; same-tab clicks to"
                f" another origin, {args.clicks} per cell with and without the snippet"
                f" (alternated), {args.classic_clicks} for classic (capped at"
                f" {args.classic_cap} ms); in {tmp}"
            )
            for state in args.states:
                run = run_state(bench, state, args)
                runs.append(run)
                added = median(run.clicks["with"].nav_start) - median(
                    run.clicks["without"].nav_start
                )
                say(
                    f"  {STATES[state]}: nav start {added:+.1f} ms median with the snippet,"
                    f" stored {run.stored}/{args.clicks}"
                    + (f" ({run.stored_later} after 2 pages)" if run.stored < args.clicks else "")
                    + f" ({run.seconds:.0f} s)"
                )
    except (KeyboardInterrupt, PlaywrightError):
        if not interrupted:
            raise
        say("interrupted")
        return 130
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    wall = time.monotonic() - started
    if args.json:
        figures = as_json(runs, header)
        figures.update(seconds=round(wall, 1), page_errors=bench.errors)
        print(json.dumps(figures, indent=1))
        return 0 if not bench.errors else 1
    print()
    print(
        f"Chromium {header['chromium']}; {args.clicks} same-tab clicks per cell"
        f" (classic: {args.classic_clicks}); {wall:.0f} s"
    )
    print_table(runs, args.clicks, args.classic_cap)
    print()
    print("nav start: click event -> destination's navigation start; load: -> its load event.")
    print("added: median with - median without. classic: preventDefault, image, navigate on")
    print(f"         its load or error; '≥ {args.classic_cap}': the bench's cap was hit.")
    print("stored: with-snippet clicks in SQLite after the collector is up and a page loaded")
    print(f"        (waiting up to {args.replay_wait:g} s).")
    for run in runs:
        if run.stored < args.clicks:
            print(
                f"  {STATES[run.state]}: {run.stored}/{args.clicks} after one page,"
                f" {run.stored_later}/{args.clicks} once a second page was loaded"
            )
    if bench.errors:
        print(f"page errors ({len(bench.errors)}):")
        for error in bench.errors[:20]:
            print(f"  {error}")
    return 0 if not bench.errors else 1


if __name__ == "__main__":
    sys.exit(main())
