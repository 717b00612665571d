"""Two datacenters in front of one PostgreSQL: collectors killed, links to PostgreSQL cut,
spools full. Whatever happens, every event a collector acknowledged ends up in PostgreSQL,
exactly once, and the collectors keep answering.

Everything is real: ``clickthru serve`` subprocesses, PostgreSQL, Chromium; the faults are
SIGKILL and a TCP proxy on each collector's link to PostgreSQL.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage

from clickthru import tokens
from tests.conftest import new_id
from tests.deploy.conftest import Deployment, SpooledCollector, make_collector, until
from tests.faults import Mode
from tests.snippet.conftest import NETWORK_NOISE
from tests.snippet.site import Page
from tests.snippet.visitor import KINDS, NEW_TAB, Kind, Visitor

# How long a collector may take to show on /healthz and /metrics that its link is cut.
NOTICE = 15.0
# How long a collector may take to ship its backlog once the link is back (its forwarder
# waits up to 5 s between attempts while PostgreSQL is away).
CATCH_UP = 30.0

# Modes in which the proxy holds open connections silent: a PostgreSQL that accepts and
# never answers. The forwarder then waits on its open connection for ever (product bug 2).


def accepted_ids(collector: SpooledCollector, events: list[dict[str, Any]]) -> list[str]:
    """Posts and checks the collector acknowledged every one; returns their ids."""
    answer = collector.post(events)
    assert answer.status_code == 200, (collector.name, answer.status_code, answer.text)
    assert answer.json()["accepted"] == len(events), answer.text
    return [event["id"] for event in events]


# -- 1. a datacenter dies under a real browser ---------------------------------------------


def click_page(dcs: Deployment, visitor: Visitor, page: Page) -> None:
    """Clicks each link of the page once, every way in turn; each click lands."""
    visitor.open(dcs.site.url(page))
    for position in range(1, page.links + 1):
        kind: Kind = KINDS[(position - 1) % len(KINDS)]
        visit = visitor.click(kind, position)
        expected = f"{dcs.site.destination}/landing/{page.list_id}-book-{position}"
        assert visit.destination.url == expected + ("-blank" if kind == "blank" else "")
        visitor.done_with(visit)
        if kind not in NEW_TAB:
            visitor.open(dcs.site.url(page))


def stored_clicks(dcs: Deployment, list_id: str) -> dict[str, int]:
    rows = dcs.query(
        "SELECT item, count(*) FROM events WHERE kind = 'click' AND list_id = %s GROUP BY item",
        list_id,
    )
    return {item: int(count) for item, count in rows}


def test_collector_a_killed_mid_run_the_browser_clicks_on_through_b_and_none_is_lost(
    dcs: Deployment, browser: Browser
) -> None:
    a, b = dcs.a, dcs.b
    endpoints = f"{a.url},{b.url}"
    before = Page(endpoints=endpoints, list_id="before-kill", links=10)
    after = Page(endpoints=endpoints, list_id="after-kill", links=10)
    errors: list[str] = []
    context = browser.new_context()
    try:
        visitor = Visitor(context)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not any(n in message.text for n in NETWORK_NOISE):
                errors.append(message.text)

        visitor.page.on("console", on_console)
        visitor.page.on("pageerror", lambda error: errors.append(str(error)))

        # A's link is cut first, so A dies holding acknowledged clicks it has not shipped.
        a.proxy.set_mode("refuse")
        click_page(dcs, visitor, before)
        until(lambda: a.spooled() >= 5, 15, "A has acknowledged clicks of the first page")
        a.kill()
        held = a.spooled()
        click_page(dcs, visitor, after)
        visitor.open(dcs.site.url(Page(endpoints=endpoints, list_id="replay", links=1)))

        wanted_after = {f"after-kill-book-{n}" for n in range(1, 11)}
        until(
            lambda: set(stored_clicks(dcs, "after-kill")) == wanted_after,
            CATCH_UP,
            "every click made while A was dead is in PostgreSQL (through B)",
        )
        # Some of A's clicks may be here already: a click whose answer the page never read
        # (it had navigated away) stays in the outbox and goes to B too. Stored once, still.
        assert held > 0

        a.proxy.set_mode("up")
        a.start()  # the same spool: it ships what it acknowledged before it died
        wanted_before = {f"before-kill-book-{n}" for n in range(1, 11)}
        until(
            lambda: set(stored_clicks(dcs, "before-kill")) == wanted_before,
            CATCH_UP,
            "every click acknowledged by A before its death is in PostgreSQL",
        )
        until(a.drained, CATCH_UP, "A's spool drained")
        assert stored_clicks(dcs, "before-kill") == dict.fromkeys(wanted_before, 1)
        assert stored_clicks(dcs, "after-kill") == dict.fromkeys(wanted_after, 1)
        assert b.spooled() == 0
    finally:
        context.close()
    assert errors == []


# -- 2. the link to PostgreSQL cut for a while ---------------------------------------------


@pytest.mark.parametrize("outage", ["refuse", "drop"])
def test_both_links_cut_every_event_is_acknowledged_and_shipped_once_they_are_back(
    dcs: Deployment, outage: Mode
) -> None:
    collectors = [dcs.a, dcs.b]
    for collector in collectors:
        collector.proxy.set_mode(outage)
    acknowledged: list[str] = []
    noticed = {
        c.name: {"backlog": False, "unreachable": False, "metrics": False} for c in collectors
    }
    started = time.monotonic()
    # Keep posting while the link is down, at least 2 s, until both collectors show the
    # outage or NOTICE has passed.
    while time.monotonic() - started < 2 or (
        time.monotonic() - started < NOTICE
        and not all(all(seen.values()) for seen in noticed.values())
    ):
        for collector in collectors:
            acknowledged += accepted_ids(collector, dcs.events(10, list_id=f"cut-{outage}"))
            status, health = collector.health()
            assert status == 200, health  # the spool takes writes: the collector is healthy
            seen = noticed[collector.name]
            seen["backlog"] |= health["spool"]["backlog"] > 0
            seen["unreachable"] |= health["spool"]["shared_store"] == "unreachable"
            metrics = collector.metrics()
            seen["metrics"] |= (
                metrics["clickthru_shared_store_up"] == 0 and metrics["clickthru_spool_backlog"] > 0
            )
        time.sleep(0.1)
    assert dcs.copies(acknowledged) == {}, "shipped through a cut link?"
    assert sum(c.spooled(f"cut-{outage}") for c in collectors) == len(acknowledged)

    for collector in collectors:
        collector.proxy.set_mode("up")
    copies = dcs.wait_stored(acknowledged, CATCH_UP)
    assert copies == dict.fromkeys(acknowledged, 1)
    for collector in collectors:
        until(collector.drained, CATCH_UP, f"{collector.name}'s spool drained")
        until(
            functools.partial(caught_up, collector),
            CATCH_UP,
            f"{collector.name}'s /healthz shows the backlog gone",
        )
        assert collector.metrics()["clickthru_shared_store_up"] == 1

    blind = {name for name, seen in noticed.items() if not all(seen.values())}
    assert not blind, noticed


def caught_up(collector: SpooledCollector) -> bool:
    spool = collector.health()[1]["spool"]
    return bool(spool["backlog"] == 0 and spool["shared_store"] == "reachable")


# -- 3. SIGKILL with a non-empty spool -----------------------------------------------------


def test_a_killed_with_acknowledged_events_in_its_spool_ships_them_once_restarted(
    dcs: Deployment,
) -> None:
    a = dcs.a
    a.proxy.set_mode("refuse")
    acknowledged: list[str] = []
    for _ in range(3):
        acknowledged += accepted_ids(a, dcs.events(100, list_id="killed-spool"))
    a.kill()
    assert a.spooled() == len(acknowledged)
    assert dcs.copies(acknowledged) == {}

    a.proxy.set_mode("up")
    a.start()
    assert dcs.wait_stored(acknowledged, CATCH_UP) == dict.fromkeys(acknowledged, 1)
    until(a.drained, CATCH_UP, "A's spool drained")
    assert dcs.copies(acknowledged) == dict.fromkeys(acknowledged, 1)


def test_a_killed_after_postgresql_committed_but_before_the_spool_was_trimmed(
    dcs: Deployment,
) -> None:
    """The proxy passes A's statements on at once but holds PostgreSQL's answers back, so
    a shipment commits there while A still waits to hear it: A dies in that window."""
    a = dcs.a
    accepted_ids(a, dcs.events(1, list_id="warm-up"))  # a connection, today's partition
    until(a.drained, CATCH_UP, "the warm-up shipped")
    spool = a.health()[1]["spool"]["collector"]

    def shipped() -> int:
        rows = dcs.query("SELECT seq FROM forwarded WHERE collector = %s", spool)
        return int(rows[0][0]) if rows else 0

    def duplicates() -> int:
        rows = dcs.query("SELECT coalesce(sum(count), 0) FROM duplicate_counts")
        return int(rows[0][0])

    number, duplicates_before = shipped(), duplicates()
    a.proxy.slow_seconds = 0.5  # per answer: the shipment takes seconds, its commit is a window
    a.proxy.set_mode("slow")
    acknowledged = accepted_ids(a, dcs.events(40, list_id="commit-then-kill"))
    until(lambda: shipped() > number, 60, "the shipment committed", every=0.01)
    a.kill()
    # The window was hit: PostgreSQL has the shipment, the spool still has it pending.
    assert shipped() == number + 1
    assert dcs.copies(acknowledged) == dict.fromkeys(acknowledged, 1)
    assert a.spooled() == len(acknowledged)
    pending = a.spool_meta("events.pending")
    assert pending is not None and pending.startswith(f"{number + 1}:"), pending

    a.proxy.set_mode("up")
    a.start()
    until(a.drained, CATCH_UP, "A trimmed the shipment PostgreSQL already had")
    assert dcs.copies(acknowledged) == dict.fromkeys(acknowledged, 1)
    assert shipped() == number + 1  # sent again, recognised, not numbered anew
    assert duplicates() == duplicates_before  # skipped whole, not stored again as duplicates


def test_a_killed_while_taking_and_shipping_events_loses_and_doubles_none(
    dcs: Deployment,
) -> None:
    """SIGKILL at an arbitrary moment of a busy collector: mid-request, mid-shipment."""
    a = dcs.a
    acknowledged: list[str] = []
    sent: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            events = dcs.events(25, list_id="killed-busy")
            sent.extend(event["id"] for event in events)
            try:
                answer = a.post(events, timeout=5)
            except httpx.TransportError:
                continue  # not acknowledged: the browser would send it again
            if answer.status_code == 200:
                acknowledged.extend(event["id"] for event in events)

    clients = [threading.Thread(target=client) for _ in range(3)]
    for thread in clients:
        thread.start()
    try:
        until(lambda: len(acknowledged) >= 1000, 30, "1,000 events acknowledged")
        a.kill()
    finally:
        stop.set()
        for thread in clients:
            thread.join(10)
    a.start()
    copies = dcs.wait_stored(acknowledged, CATCH_UP)
    until(a.drained, CATCH_UP, "A's spool drained")
    assert copies == dict.fromkeys(acknowledged, 1)
    extra = dcs.copies(sent)  # sent, unanswered, but committed before the kill: once too
    assert set(extra.values()) == {1}


def test_a_collector_restarted_while_postgresql_is_away_answers_from_its_spool(
    dcs: Deployment,
) -> None:
    """The spool is there to take events while PostgreSQL is away; so must a restart be."""
    a = dcs.a
    a.kill()
    a.proxy.set_mode("refuse")
    a.start()
    acknowledged = accepted_ids(a, dcs.events(5, list_id="restart-cut"))
    a.proxy.set_mode("up")
    assert dcs.wait_stored(acknowledged, CATCH_UP) == dict.fromkeys(acknowledged, 1)


def test_an_unknown_key_while_postgresql_hangs_does_not_stall_the_collector(
    dcs: Deployment,
) -> None:
    """A token signed with a key the collector has not seen (a rotation, a forgery) makes
    it read the sites again; with PostgreSQL silent that read must not block answers."""
    a = dcs.a
    a.proxy.set_mode("hang")
    key = dcs.sites["shop"].site.signing_key
    forged = tokens.mint(
        site="shop", key_id="k9", secret=key.secret, list_id="l", item="i", position=1,
        placement="p",
    )  # fmt: skip
    answers: list[str] = []
    for _ in range(5):  # a miss re-reads the sites at most once a second
        try:
            answer = a.post([{"id": new_id(), "kind": "click", "token": forged}], timeout=3)
            answers.append(str(answer.status_code))
        except httpx.TimeoutException:
            answers.append("timeout")
            break
        time.sleep(0.5)  # paced: a miss re-reads at most once a second
    if "timeout" in answers:
        a.kill()  # the event loop would be stuck for as long as PostgreSQL is
    assert answers == ["200"] * 5


# -- 4. one event through both datacenters ------------------------------------------------


def test_the_same_event_sent_to_both_collectors_is_stored_and_counted_once(
    dcs: Deployment,
) -> None:
    [event] = dcs.events(1, site="twice", list_id="both")
    assert accepted_ids(dcs.a, [event]) == accepted_ids(dcs.b, [event])  # each spool takes it

    def duplicate_shipped() -> bool:
        rows = dcs.query("SELECT count FROM duplicate_counts WHERE site = 'twice'")
        return bool(rows) and rows[0][0] >= 1

    until(duplicate_shipped, CATCH_UP, "both copies shipped")
    assert dcs.copies([event["id"]]) == {event["id"]: 1}
    access = dcs.pg.access
    if not any(user.name == "ops" for user in access.users()):
        access.add_user("ops", "a long enough password", operator=True, sites=[])
    key = access.add_read_key("ops")
    auth = {"authorization": f"Bearer {key}"}
    report = httpx.get(f"{dcs.b.url}/api/v1/report?site=twice", headers=auth, timeout=10)
    assert report.status_code == 200, report.text
    totals = report.json()["totals"]
    assert (totals["clicks"], totals["unique_clicks"]) == (1, 1)
    health = httpx.get(f"{dcs.a.url}/api/v1/health?site=twice", headers=auth, timeout=10)
    assert health.status_code == 200, health.text
    assert (health.json()["events"], health.json()["duplicates"]) == (1, 1)


# -- 5. a full spool -----------------------------------------------------------------------

LIMIT = 50


@pytest.fixture
def small(dcs: Deployment) -> Iterator[SpooledCollector]:
    """A third collector whose spool holds at most LIMIT events."""
    collector = make_collector(
        dcs.directory, "dc-c", dcs.url, {"CLICKTHRU_SPOOL_MAX_EVENTS": str(LIMIT)}
    )
    try:
        collector.start()
        yield collector
    finally:
        collector.stop()
        collector.proxy.stop()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{collector.spool}{suffix}").unlink(missing_ok=True)


def test_a_full_spool_refuses_with_503_then_drains_and_accepts_again(
    dcs: Deployment, small: SpooledCollector
) -> None:
    small.proxy.set_mode("refuse")
    acknowledged: list[str] = []
    for _ in range(LIMIT // 10):
        acknowledged += accepted_ids(small, dcs.events(10, list_id="full"))
    until(
        lambda: small.health()[0] == 503,
        NOTICE,
        "/healthz answers 503 once the spool holds its limit",
    )
    status, health = small.health()
    assert (status, health["error"]) == (503, "spool_full"), health
    assert health["spool"]["backlog"] >= LIMIT
    assert health["spool"]["shared_store"] == "unreachable"
    refused = small.post(dcs.events(1, list_id="full"))
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"].startswith("application/json")
    assert refused.json()["error"] == "store_unavailable"
    assert small.spooled() == len(acknowledged)  # refused, so not kept: the browser keeps it

    small.proxy.set_mode("up")
    until(lambda: small.health()[0] == 200, CATCH_UP, "/healthz answers 200 once drained")
    until(small.drained, CATCH_UP, "the spool drained")
    acknowledged += accepted_ids(small, dcs.events(10, list_id="full"))
    assert dcs.wait_stored(acknowledged, CATCH_UP) == dict.fromkeys(acknowledged, 1)


def test_the_spool_limit_holds_from_the_event_that_reaches_it(
    dcs: Deployment, small: SpooledCollector
) -> None:
    small.proxy.set_mode("refuse")
    # The forwarder has tried and failed once: it now waits between attempts.
    accepted_ids(small, dcs.events(1, list_id="limit"))
    until(
        lambda: small.health()[1]["spool"]["shared_store"] == "unreachable",
        NOTICE,
        "the forwarder noticed the cut",
    )
    accepted_ids(small, dcs.events(LIMIT - 1, list_id="limit"))
    over = small.post(dcs.events(10, list_id="limit"))
    small.proxy.set_mode("up")
    assert over.status_code == 503, f"{small.spooled()} events in a spool of {LIMIT}"
