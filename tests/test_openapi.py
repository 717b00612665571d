"""schemathesis over the OpenAPI document (``GET /api/v1/openapi.json``), against the real
app in this process on a real SQLite store that holds events: every documented route with
requests made from the document, and requests that break it, as an operator and as a
customer (read keys, and a customer's session cookie). It must find no 5xx and no answer
(status, content type, headers, body) that differs from what the document says."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from starlette.routing import Route

from clickthru import openapi
from clickthru.answers import AggregationStatus, SpoolStatus, StoreHealth
from clickthru.backend import open_store
from clickthru.collector.app import HotPaths, create_app
from clickthru.config import Settings
from clickthru.dashboard.api import READS
from tests.inprocess import App, running_app
from tests.pg import throwaway_database
from tests.sites import OTHER_ORIGIN, SHOP_ORIGIN

PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
BOT = "Googlebot/2.1 (+http://www.google.com/bot.html)"

CONFIG = schemathesis.Config.from_dict(
    {
        # Credentials are the test's (``Seeded.identities``), never made up.
        "generation": {"max-examples": 25, "with-security-parameters": False},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # What a schema cannot say is refused with a 4xx even when the schema allows
            # it: a token that does not verify, a date no calendar has, since after until.
            "positive_data_acceptance": {"enabled": False},
        },
        "operations": [
            {
                # One bad event never costs its batch: the batch is answered 200, and the
                # bad event is listed as rejected, with its reason.
                "include-path": "/e",
                "checks": {"negative_data_rejection": {"enabled": False}},
            }
        ],
    }
)


@dataclass(frozen=True)
class Seeded:
    """A store with both sites' events in it, and who may read it."""

    db: Path
    identities: dict[str, dict[str, str]]  # name -> the headers that say who asks


def seed(app: App) -> None:
    """Clicks, views and serves on both sites, from people and bots, a retry and a
    refusal: every report has rows, and the health report reasons."""
    for site, origin in (("shop", SHOP_ORIGIN), ("other", OTHER_ORIGIN)):
        for agent in (PERSON, BOT):
            browser = app.client(headers={"origin": origin, "user-agent": agent})
            events = [
                app.event(
                    site, kind=kind, list_id=f"{site}-list-{n % 2}", item=f"{site}-item-{n}",
                    placement=("home", "=cart")[n % 2], position=n + 1,
                )
                for n in range(4)
                for kind in ("view", "click")
            ]  # fmt: skip
            assert browser.post("/e", json=events).json()["accepted"] == len(events)
            assert browser.post("/e", json=events[:1]).json()["duplicates"] == 1
        service = app.client(headers={"authorization": f"Bearer {app.sites[site].api_key}"})
        served = service.post("/e", json=app.event(site, kind="serve", page=None, dest=None))
        assert served.json()["accepted"] == 1, served.text
    stray = app.client(headers={"origin": SHOP_ORIGIN})
    assert stray.post("/e", json=app.event("other")).json()["rejected"]
    app.counted()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    directory = tmp_path_factory.mktemp("openapi")
    with running_app(directory) as app:
        seed(app)
        browser = app.client()
        assert browser.sign_in("shopkeeper").status_code == 303
        session = browser.http.cookies["ct_session"]
        identities = {
            "operator, read key": {"Authorization": f"Bearer {app.keys['ops']}"},
            "customer, read key": {"Authorization": f"Bearer {app.keys['shopkeeper']}"},
            "customer, session": {"Cookie": f"ct_session={session}"},
        }
        return Seeded(app.db, identities)


schema = schemathesis.openapi.from_dict(openapi.document(Settings()), config=CONFIG)


@pytest.fixture
def app(seeded: Seeded) -> HotPaths:
    """A fresh app on the seeded store, for one route's test (schemathesis starts its
    lifespan at the first request and ends it after the test)."""
    return create_app(Settings(store=str(seeded.db), log_level="warning"))


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one app a route
def test_the_app_answers_as_its_document_says(case: Case, seeded: Seeded, app: HotPaths) -> None:
    # In this process: the requests, and the probes of checks (ignored_auth sends each
    # request again without credentials, and with wrong ones).
    case.operation.app = case.operation.schema.app = app
    for who in seeded.identities.values():
        case.call_and_validate(headers=who)


def test_the_document_is_valid_openapi_3_1() -> None:
    """Against the specification's own JSON Schema (as schemathesis ships it)."""
    OPENAPI_31_VALIDATOR.validate(openapi.document(Settings()))


def test_the_document_is_the_one_the_app_serves_for_its_settings(tmp_path: Path) -> None:
    with running_app(tmp_path, max_batch_events=7) as app:
        served = app.client().get(openapi.PATH)
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.json() == openapi.document(Settings(max_batch_events=7))
    batch = served.json()["paths"]["/e"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["oneOf"][-1]["maxItems"] == 7


def test_every_route_but_the_dashboards_pages_is_described(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        routes = {route.path for route in app.app.rest.routes if isinstance(route, Route)}
        served = {*app.app.paths, *routes}
    api = {f"/api/v1/{name}" for name in READS}
    pages = {path for path in served if path.startswith("/dashboard")}  # HTML, for people
    assert served - pages - {"/api/v1/{name}"} | api == set(openapi.document(Settings())["paths"])


def test_the_documents_patterns_are_ecma_262_as_json_schema_reads_them() -> None:
    """Each pattern compiles in JavaScript and takes what it is for, but not with a
    newline after it (Python's $ would take that; the app's \\Z does not)."""
    patterns = sorted(set(_patterns(openapi.document(Settings()))))
    assert len(patterns) >= 3  # ids, URLs, moments
    probes = ["abcdefgh", "https://shop.example/a", "7d", "2024-11-28T10:00Z", "GBP"]
    script = """
        const [patterns, probes] = JSON.parse(require("fs").readFileSync(0, "utf8"));
        console.log(JSON.stringify(patterns.map((p) => {
            const pattern = new RegExp(p, "u");
            const takes = (suffix) => probes.some((t) => pattern.test(t + suffix));
            return [takes(""), takes("\\n")];
        })));
    """
    done = subprocess.run(
        ["node", "-e", script], input=json.dumps([patterns, probes]), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for pattern, (takes, takes_newline) in zip(patterns, json.loads(done.stdout), strict=True):
        assert takes and not takes_newline, pattern


def _patterns(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


def test_healthz_describes_every_field_of_the_store_status(tmp_path: Path) -> None:
    """/healthz answers what its Structs describe: a field the store's status gains must
    be added to them (and so to the document), or it would be left out of the answer."""
    with throwaway_database() as url:
        store = open_store(url, spool=str(tmp_path / "spool.db"), collector_name="a")
        try:
            store.aggregator.catch_up()
            status = store.status()
        finally:
            store.close()
    assert {*status, "ok", "error", "detail"} == set(StoreHealth.__struct_fields__)
    assert set(status["spool"]) == set(SpoolStatus.__struct_fields__)
    assert set(status["aggregation"]) == set(AggregationStatus.__struct_fields__)
