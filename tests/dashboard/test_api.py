"""The API's numbers equal counts made independently from the events sent, for random
mixes of clicks, views, duplicates, bots and refused events; exports stream the events;
``clickthru rollup --rebuild`` agrees with the live rollups."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import OTHER_ORIGIN
from tests.conftest import AppCollector as Collector
from tests.dashboard.conftest import Users

BOT = "Googlebot/2.1 (+http://www.google.com/bot.html)"
PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
PLACEMENTS = ("home", "product-page-bottom")
COUNTED = ("clicks", "views", "unique_clicks", "unique_views")

planned = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["click", "view"]),
        "list": st.integers(0, 3),
        "item": st.integers(0, 4),
        "position": st.integers(1, 5),
        "placement": st.sampled_from(PLACEMENTS),
        "bot": st.booleans(),
        "sent": st.integers(1, 3),  # more than once: a retry, stored once
    }
)
refusals = st.lists(st.sampled_from(["token_bad_signature", "origin_not_allowed"]), max_size=3)


def api(collector: Collector, key: str, path: str, **params: Any) -> Any:
    answer = collector.http.get(
        f"{collector.url}/api/v1/{path}",
        params={"site": "shop", "since": "2d", **params},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def numbers(collector: Collector, key: str) -> dict[str, Counter[Any]]:
    """Everything the API says, once the counters have caught up, as counters that can be
    subtracted."""
    collector.counted()
    seen: dict[str, Counter[Any]] = {}
    for bots in ("0", "1"):
        for by in ("placement", "item", "position"):
            rows = api(collector, key, "report", by=by, bots=bots)["rows"]
            seen[f"{by}/{bots}"] = Counter(
                {(row["key"], field): row[field] for row in rows for field in COUNTED}
            )
        totals = api(collector, key, "report", bots=bots)["totals"]
        seen[f"totals/{bots}"] = Counter({field: totals[field] for field in COUNTED})
    health = api(collector, key, "health")
    seen["health"] = Counter(
        {
            "events": health["events"],
            "bot_events": health["bot_events"],
            "duplicates": health["duplicates"],
            **{f"rejected/{r}": n for r, n in health["rejects_by_reason"].items()},
        }
    )
    return seen


def expected(plan: list[dict[str, Any]], refused: list[str], run: str) -> dict[str, Counter[Any]]:
    # The first event of each (list, item, kind), bot or not, is the one counted unique.
    seen: set[tuple[Any, ...]] = set()
    first = []
    for p in plan:
        pair = (p["list"], p["item"], p["kind"])
        first.append(pair not in seen)
        seen.add(pair)
    counts: dict[str, Counter[Any]] = {}
    for bots in ("0", "1"):
        kept = [(p, f) for p, f in zip(plan, first, strict=True) if bots == "1" or not p["bot"]]
        totals: Counter[Any] = Counter()
        for p, is_first in kept:
            totals[p["kind"] + "s"] += 1
            totals["unique_" + p["kind"] + "s"] += is_first
        counts[f"totals/{bots}"] = +totals
        for by in ("placement", "item", "position"):
            counter: Counter[Any] = Counter()
            for p, is_first in kept:
                label = f"{run}-item-{p['item']}" if by == "item" else p[by]
                counter[(label, p["kind"] + "s")] += 1
                counter[(label, "unique_" + p["kind"] + "s")] += is_first
            counts[f"{by}/{bots}"] = +counter
    counts["health"] = +Counter(
        {
            "events": len(plan),
            "bot_events": sum(p["bot"] for p in plan),
            "duplicates": sum(p["sent"] - 1 for p in plan),
            **Counter(f"rejected/{reason}" for reason in refused),
        }
    )
    return counts


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=st.lists(planned, min_size=1, max_size=15), refused=refusals)
def test_the_apis_numbers_equal_an_independent_count(
    served: tuple[Collector, Users], plan: list[dict[str, Any]], refused: list[str]
) -> None:
    collector, users = served
    run = uuid.uuid4().hex[:8]  # lists and items of this example only
    before = numbers(collector, users.operator_key)

    for p in plan:
        event = collector.event(
            list_id=f"{run}-list-{p['list']}",
            item=f"{run}-item-{p['item']}",
            position=p["position"],
            placement=p["placement"],
            kind=p["kind"],
        )
        for _ in range(p["sent"]):
            answer = collector.post(event, headers={"user-agent": BOT if p["bot"] else PERSON})
            assert answer.status_code == 200
    for reason in refused:
        event = collector.event(item=f"{run}-refused")
        if reason == "token_bad_signature":
            event["token"] = event["token"][:-4] + (
                "AAAA" if event["token"][-4:] != "AAAA" else "BBBB"
            )
            collector.post(event)
        else:
            collector.post(event, origin=OTHER_ORIGIN)

    after = numbers(collector, users.operator_key)
    wanted = expected(plan, refused, run)
    for name, counter in wanted.items():
        got = Counter(after[name])
        got.subtract(before[name])
        assert +got == +counter, name


def test_exports_stream_every_event_of_the_range(served: tuple[Collector, Users]) -> None:
    collector, users = served
    run = uuid.uuid4().hex[:8]
    sent = [collector.event(item=f"{run}-export-{n}") for n in range(30)]
    assert collector.post(sent, headers={"user-agent": PERSON}).status_code == 200
    headers = {"authorization": f"Bearer {users.customer_key}"}
    params = {"site": "shop", "since": "1h"}
    collector.counted()
    as_csv = collector.http.get(
        f"{collector.url}/api/v1/export", params={**params, "format": "csv"}, headers=headers
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {e["id"] for e in sent} <= {row["id"] for row in rows}
    as_ndjson = collector.http.get(
        f"{collector.url}/api/v1/export", params={**params, "format": "ndjson"}, headers=headers
    )
    lines = [json.loads(line) for line in as_ndjson.text.splitlines()]
    assert [line["id"] for line in lines] == [row["id"] for row in rows]
    assert as_ndjson.headers["content-type"].startswith("application/x-ndjson")
    report = collector.http.get(
        f"{collector.url}/api/v1/report",
        params={**params, "by": "item", "format": "csv"},
        headers=headers,
    )
    exported = {row["item"]: row for row in csv.DictReader(io.StringIO(report.text))}
    assert exported[f"{run}-export-0"]["clicks"] == "1"


def test_bad_parameters_get_400_with_a_reason(served: tuple[Collector, Users]) -> None:
    collector, users = served
    headers = {"authorization": f"Bearer {users.operator_key}"}
    for params in ({"since": "yesterday-ish"}, {"by": "colour"}, {"limit": "0"}, {"bots": "2"}):
        answer = collector.http.get(
            f"{collector.url}/api/v1/report", params=params, headers=headers
        )
        assert answer.status_code == 400
        assert answer.json()["error"] == "bad_parameter"


def test_a_rebuild_agrees_with_the_live_rollups(served: tuple[Collector, Users]) -> None:
    collector, _ = served
    collector.counted()
    tables = ("rollup_hourly", "rollup_items", "rollup_positions", "firsts", "reject_counts")
    live = {table: sorted(collector.query(f"SELECT * FROM {table}")) for table in tables}
    assert live["rollup_hourly"], "the tests above stored events"
    rebuilt = subprocess.run(
        [sys.executable, "-m", "clickthru", "--store", str(collector.db), "rollup", "--rebuild"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "rollups rebuilt" in rebuilt.stdout
    assert {table: sorted(collector.query(f"SELECT * FROM {table}")) for table in tables} == live


def test_the_cli_report_prints_the_apis_numbers(served: tuple[Collector, Users]) -> None:
    collector, users = served
    run = uuid.uuid4().hex[:8]
    sent = [collector.event(item=f"{run}-cli-{n % 3}", kind="click") for n in range(7)]
    assert collector.post(sent, headers={"user-agent": PERSON}).status_code == 200
    moment = {"since": "2000-01-01", "until": "2100-01-01"}
    collector.counted()
    for by in ("item", "position", "placement", "day"):
        printed = subprocess.run(
            [
                sys.executable, "-m", "clickthru", "--store", str(collector.db), "report",
                "--site", "shop", "--by", by, "--format", "json",
                "--since", moment["since"], "--until", moment["until"],
            ],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        answered = api(collector, users.operator_key, "report", by=by, **moment)
        assert json.loads(printed) == answered, by
