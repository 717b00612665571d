"""Erasing a site in the two-datacenter setup: two collectors spooling into one PostgreSQL,
one of them cut off from it while it acknowledges more of the site's events. After
`clickthru site erase`, no table of PostgreSQL nor of either spool has a row naming the
site, and the other site's numbers are what they were."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from clickthru.clock import DAY_MS, now_ms
from clickthru.reports import Query
from tests.conftest import SHOP_ORIGIN
from tests.deploy.conftest import Deployment, until
from tests.store.test_erase import traces

GONE = "erase-me"


def counted(dcs: Deployment) -> bool:
    (done,) = dcs.query(
        "SELECT (SELECT coalesce(max(seq), 0) FROM events)"
        " <= (SELECT seq FROM aggregation WHERE name = 'events')"
    )[0]
    return bool(done)


UNTIL = now_ms() + DAY_MS


def numbers(dcs: Deployment, site: str) -> Any:
    """The site's counters and health (not when they were read)."""
    query = Query((site,), 0, UNTIL, True)
    reports = dcs.pg.reports
    documents = [reports.document(query, by, None) for by in ("day", "item", "position")]
    return [(d.totals, d.rows) for d in documents], reports.health(query)


def test_erasing_a_site_leaves_no_trace_in_postgresql_or_any_spool(dcs: Deployment) -> None:
    dcs.sites[GONE] = dcs.pg.admin.add_site(GONE, [SHOP_ORIGIN])
    dcs.pg.access.add_user("both", "a long password", False, [GONE, "shop"])
    for collector in (dcs.a, dcs.b):  # each knows the new site within seconds
        until(
            lambda c=collector: c.post(dcs.events(1, GONE, "probe")).json()["accepted"] == 1,
            30,
            f"{collector.name} takes the new site's tokens",
            every=0.5,
        )
    ids = []
    for collector in (dcs.a, dcs.b):
        for site in (GONE, "shop"):
            events = dcs.events(20, site, f"{site}-{collector.name}")
            assert collector.post(events).json()["accepted"] == 20
            ids += [event["id"] for event in events]
    dcs.wait_stored(ids)
    until(lambda: counted(dcs), 30, "the shared counters caught up")
    shop_before = numbers(dcs, "shop")
    assert traces(dcs.url, GONE)

    # b is cut off from PostgreSQL and keeps acknowledging the site's events into its spool.
    dcs.b.proxy.set_mode("refuse")
    waiting = dcs.events(15, GONE, "while-cut")
    assert dcs.b.post(waiting).json()["accepted"] == 15
    assert dcs.b.spooled("while-cut") == 15

    erased = subprocess.run(
        [sys.executable, "-m", "clickthru", "--store", dcs.url, "site", "erase", GONE, "--yes"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=dcs.directory,
    )
    assert erased.returncode == 0, erased.stderr
    assert f"site {GONE} erased" in erased.stdout
    assert "events\t42 rows" in erased.stdout  # 20 from each collector and 2 probes

    dcs.b.proxy.set_mode("up")
    until(dcs.b.drained, 30, "b shipped what it held")
    for collector in (dcs.a, dcs.b):  # their copies of the sites follow
        until(lambda c=collector: not traces(str(c.spool), GONE), 30, f"{collector.name} clean")
    until(lambda: counted(dcs), 30, "the shared counters caught up")
    assert traces(dcs.url, GONE) == {}
    assert numbers(dcs, "shop") == shop_before
    assert dcs.pg.access.user("both").sites == ("shop",)
