"""The conversion and experiment reports equal counts made independently from what was
sent, for random mixes of clicks and views of variants, and orders reported by pages
(reloaded, following clicks in and out of the attribution window) and confirmed by the
shop; the statistics match scipy's."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickthru.reports import stats
from tests.conftest import AppCollector as Collector
from tests.conftest import new_id
from tests.dashboard.conftest import Users

DAY_MS = 24 * 3600 * 1000
VARIANT_OF_LIST = {0: "A", 1: "B", 2: "A", 3: ""}  # a list is served by one variant
PLACEMENTS = ("home", "product-page-bottom")
PERSON = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"}

shown = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["click", "view", "view"]),
        "list": st.integers(0, 3),
        "item": st.integers(0, 4),
        "position": st.integers(1, 5),
        "placement": st.sampled_from(PLACEMENTS),
        "days_ago": st.sampled_from([0, 0, 0, 9]),  # 9: out of the attribution window
    }
)
ordered = st.fixed_dictionaries(
    {
        "order": st.integers(0, 3),
        "server": st.booleans(),  # confirmed by the shop (no clicks), else by the page
        "follows": st.lists(st.integers(0, 30), max_size=3),  # indices of clicks shown
        "cents": st.integers(0, 20_000),
        "currency": st.sampled_from(["GBP", "EUR"]),
        "items": st.lists(st.integers(0, 4), max_size=3, unique=True),
    }
)


def api(collector: Collector, key: str, path: str, **params: Any) -> Any:
    answer = collector.http.get(
        f"{collector.url}/api/v1/{path}",
        params={"site": "shop", "since": "2d", **params},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json() if params.get("format") not in ("csv", "ndjson") else answer.text


def numbers(collector: Collector, key: str) -> Counter[Any]:
    """What the reports say, as one counter that can be subtracted."""
    collector.counted()
    seen: Counter[Any] = Counter()
    for by in ("placement", "item", "position", "variant"):
        report = api(collector, key, "conversions", by=by)
        for row in report["rows"]:
            seen[(by, row["key"], "conversions")] += row["conversions"]
            seen[(by, row["key"], "bought_clicked")] += row["bought_clicked"]
            for currency, value in row["revenue"].items():
                seen[(by, row["key"], currency)] += round(value * 100)
        for part in ("attributed", "unattributed"):
            for field in ("conversions", "confirmed", "page_reported"):
                seen[(by, part, field)] += report[part][field]
    for variant in api(collector, key, "experiment")["variants"]:
        for field in ("views", "clicks", "conversions"):
            seen[("experiment", variant["variant"], field)] += variant[field]
    return seen


def expected(run: str, plan: list[dict[str, Any]], orders: list[dict[str, Any]]) -> Counter[Any]:
    counts: Counter[Any] = Counter()
    first: set[tuple[int, int, str]] = set()
    for shown_ in plan:  # the first of each (list, item, kind) is the unique one
        pair = (shown_["list"], shown_["item"], shown_["kind"])
        if pair not in first:
            first.add(pair)
            counts[("experiment", VARIANT_OF_LIST[shown_["list"]], shown_["kind"] + "s")] += 1
    clicks = [s for s in plan if s["kind"] == "click"]
    by_order: dict[int, list[dict[str, Any]]] = {}
    for order in orders:
        by_order.setdefault(order["order"], []).append(order)
    for reports in by_order.values():
        confirmed = [r for r in reports if r["server"]]
        page = [r for r in reports if not r["server"]]
        told = confirmed[-1] if confirmed else page[0]
        followed = [
            clicks[i]
            for r in page
            for i in r["follows"]
            if i < len(clicks) and clicks[i]["days_ago"] == 0
        ]
        last = max(followed, key=lambda c: (c["ts"], c["id"]), default=None)
        part = "unattributed" if last is None else "attributed"
        if last is not None:
            counts[("experiment", VARIANT_OF_LIST[last["list"]], "conversions")] += 1
        for by in ("placement", "item", "position", "variant"):
            counts[(by, part, "conversions")] += 1
            counts[(by, part, "confirmed")] += bool(confirmed)
            counts[(by, part, "page_reported")] += bool(page)
            if last is None:
                continue
            key = {
                "placement": last["placement"],
                "item": f"{run}-item-{last['item']}",
                "position": last["position"],
                "variant": VARIANT_OF_LIST[last["list"]],
            }[by]
            counts[(by, key, "conversions")] += 1
            counts[(by, key, "bought_clicked")] += last["item"] in told["items"]
            counts[(by, key, told["currency"])] += told["cents"]
    return counts


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=st.lists(shown, min_size=1, max_size=25), orders=st.lists(ordered, max_size=6))
def test_conversion_and_variant_reports_equal_an_independent_count(
    served: tuple[Collector, Users], plan: list[dict[str, Any]], orders: list[dict[str, Any]]
) -> None:
    collector, users = served
    run = uuid.uuid4().hex[:8]  # lists, items and orders of this example only
    before = numbers(collector, users.operator_key)
    now = int(time.time() * 1000)
    for n, s in enumerate(plan):
        s["id"], s["ts"] = new_id(), now - s["days_ago"] * DAY_MS - len(plan) + n
        event = collector.event(
            id=s["id"], ts=s["ts"], kind=s["kind"], list_id=f"{run}-list-{s['list']}",
            item=f"{run}-item-{s['item']}", position=s["position"], placement=s["placement"],
            variant=VARIANT_OF_LIST[s["list"]] or None,
        )  # fmt: skip
        s["token"] = event["token"]
        assert collector.post(event, headers=PERSON).json()["accepted"] == 1
    clicks = [s for s in plan if s["kind"] == "click"]
    for order in orders:
        body = {
            "id": new_id(), "kind": "conversion", "site": "shop",
            "order": f"{run}-{order['order']}",
            "value": order["cents"] / 100, "currency": order["currency"],
            "items": [f"{run}-item-{i}" for i in order["items"]], "ts": now,
        }  # fmt: skip
        if order["server"]:
            key = collector.sites["shop"].api_key
            answer = collector.post(
                body, origin=None, headers={"authorization": f"Bearer {key}", **PERSON}
            )
        else:
            body["clicks"] = [
                {"id": clicks[i]["id"], "token": clicks[i]["token"], "ts": clicks[i]["ts"]}
                for i in order["follows"]
                if i < len(clicks)
            ]
            answer = collector.post(body, headers=PERSON)
        assert answer.json()["accepted"] == 1, answer.text
    got = numbers(collector, users.operator_key)
    got.subtract(before)
    assert +got == +expected(run, plan, orders)


@pytest.mark.parametrize(
    ("successes", "trials"), [(0, 1), (1, 1), (3, 10), (30, 1000), (512, 1024), (7, 100_000)]
)
def test_the_wilson_interval_is_scipys(successes: int, trials: int) -> None:
    low, high = scipy.stats.binomtest(successes, trials).proportion_ci(method="wilson")
    assert stats.wilson(successes, trials) == pytest.approx((low, high), abs=1e-12)


@pytest.mark.parametrize(
    "counts", [(30, 1000, 45, 1000), (1, 20, 9, 25), (500, 10_000, 520, 9_800), (0, 50, 3, 60)]
)
def test_the_z_test_is_the_chi_square_test_without_correction(
    counts: tuple[int, int, int, int],
) -> None:
    a, n, b, m = counts
    table = [[a, n - a], [b, m - b]]
    reference = scipy.stats.chi2_contingency(table, correction=False).pvalue
    assert stats.two_proportion_p(a, n, b, m) == pytest.approx(reference, rel=1e-9)


def test_no_trials_or_no_variance_give_no_statistic() -> None:
    assert stats.wilson(0, 0) is None
    assert stats.two_proportion_p(0, 0, 1, 2) is None
    assert stats.two_proportion_p(0, 10, 0, 10) is None
    assert stats.wilson(5, 4) is None  # clicks whose views were never reported
    assert stats.two_proportion_p(5, 4, 1, 10) is None


def test_the_experiment_states_the_statistics_and_the_csv_its_currencies(
    served: tuple[Collector, Users],
) -> None:
    collector, users = served
    run = uuid.uuid4().hex[:8]
    for variant, views, clicks in (("A", 40, 4), ("B", 40, 12)):
        for n in range(views):
            kind = "click" if n < clicks else "view"
            for k in {"view", kind}:
                event = collector.event(
                    kind=k, list_id=f"{run}-{variant}-{n}", item="x", variant=variant
                )
                collector.post(event, headers=PERSON)
    collector.counted()
    report = api(collector, users.operator_key, "experiment", site="other")
    assert report["variants"] == []  # nothing of "other"
    variants = {
        v["variant"]: v for v in api(collector, users.operator_key, "experiment")["variants"]
    }
    a, b = variants["A"], variants["B"]
    assert a["ctr_p_value"] is None  # the control
    low, high = scipy.stats.binomtest(b["clicks"], b["views"]).proportion_ci(method="wilson")
    assert (b["ctr_low"], b["ctr_high"]) == pytest.approx((low, high))
    table = [[b["clicks"], b["views"] - b["clicks"]], [a["clicks"], a["views"] - a["clicks"]]]
    p = scipy.stats.chi2_contingency(table, correction=False).pvalue
    assert b["ctr_p_value"] == pytest.approx(p)
    text = api(collector, users.operator_key, "experiment", format="csv")
    header = next(csv.reader(io.StringIO(text)))
    assert header[:3] == ["variant", "views", "clicks"]


def test_the_outcome_export_streams_ndjson_and_csv(served: tuple[Collector, Users]) -> None:
    collector, users = served
    run = uuid.uuid4().hex[:8]
    shown = {"list_id": f"{run}-list", "item": "=emma", "variant": "B"}
    view = collector.event(kind="view", **shown)
    hit = collector.event(kind="click", **shown)
    for event in (view, hit):
        collector.post(event, headers=PERSON)
    order = {
        "id": new_id(), "kind": "conversion", "site": "shop", "order": f"{run}-1", "value": 9.5,
        "currency": "EUR", "clicks": [{"id": hit["id"], "token": hit["token"], "ts": now_ms()}],
    }  # fmt: skip
    assert collector.post(order, headers=PERSON).json()["accepted"] == 1
    collector.counted()
    lines = api(collector, users.operator_key, "outcomes", format="ndjson").splitlines()
    [mine] = [json.loads(line) for line in lines if f"{run}-list" in line]
    assert mine["item"] == "'=emma"  # inert for a spreadsheet
    assert (mine["variant"], mine["viewed"], mine["clicked"]) == ("B", True, True)
    assert (mine["converted"], mine["value"]) == (1, {"EUR": 9.5})
    raw = api(collector, users.operator_key, "export", format="ndjson")
    assert f"{run}-list" in raw and '"conversion"' not in raw  # orders are not raw events
    text = api(collector, users.operator_key, "outcomes", format="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    [row] = [r for r in rows if r["list_id"] == f"{run}-list"]
    assert (row["viewed"], row["clicked"], row["converted"], row["value"]) == (
        "1",
        "1",
        "1",
        "9.5 EUR",
    )


def now_ms() -> int:
    return int(time.time() * 1000)
