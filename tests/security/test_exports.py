"""CSV and NDJSON exports never hand a spreadsheet a formula: every text cell that starts
with =, +, -, @, a tab or a carriage return gets a ' in front, in every text column of
every export (raw events, reports, rejects by reason). The real app, a real store."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from clickthru.reports import EXPORT_COLUMNS
from tests.conftest import new_id
from tests.inprocess import App, Client, running_app

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_SITE = "formula"  # site names cannot start a formula: the store refuses them
FORMULA_ORIGIN = "http://formula.test"
SERVICE_ORIGIN = "=1+2"  # a serve event's Origin header is stored as sent
# A formula-like value for each text column an event carries a chosen value in.
LIST_ID = '=HYPERLINK("http://evil.test","x")'
ITEMS = ("+cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "=served")
PLACEMENT = "-2+3"
PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """Events whose every chosen text starts a formula."""
    more = {FORMULA_SITE: [FORMULA_ORIGIN]}
    with running_app(tmp_path_factory.mktemp("exports"), more) as app:
        send(app)
        yield app.client(headers={"authorization": f"Bearer {app.keys['ops']}"})


def send(app: App) -> None:
    claims: dict[str, Any] = {"list_id": LIST_ID, "placement": PLACEMENT}
    browser = app.client(
        headers={"origin": FORMULA_ORIGIN, "content-type": "text/plain", "user-agent": PERSON}
    )
    events = [
        app.event(
            FORMULA_SITE,
            id="-" + new_id()[:20],  # an id may start with -
            item=item,
            page=f"{FORMULA_ORIGIN}/=1+1",
            dest=f"{FORMULA_ORIGIN}/@x",
            **claims,
        )
        for item in ITEMS[:3]
    ]
    assert browser.post("/e", json=events).json()["accepted"] == len(events)
    service = app.client(
        headers={
            "authorization": f"Bearer {app.sites[FORMULA_SITE].api_key}",
            "origin": SERVICE_ORIGIN,
        }
    )
    serve = app.event(FORMULA_SITE, kind="serve", item=ITEMS[3], via="server", **claims)
    assert service.post("/e", json=serve).json()["accepted"] == 1
    app.counted()


def assert_inert(cell: object, where: str) -> None:
    if isinstance(cell, str) and cell.startswith(TRIGGERS):
        raise AssertionError(f"{where}: {cell!r} would run as a formula")


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_the_raw_csv_export_neutralises_every_text_column(operator: Client) -> None:
    answer = operator.get("/api/v1/export", params={"site": FORMULA_SITE, "since": "1h"})
    rows = csv_rows(answer.text)
    assert len(rows) == 4
    for row in rows:
        assert list(row) == list(EXPORT_COLUMNS)
        for column, cell in row.items():
            assert_inert(cell, f"csv {column}")
    # Spreadsheets hide the ' and show the text as it came.
    assert {row["item"] for row in rows} == {"'" + item for item in ITEMS}
    assert {row["list_id"] for row in rows} == {"'" + LIST_ID}
    assert {row["placement"] for row in rows} == {"'" + PLACEMENT}
    assert all(row["id"].startswith("'-") for row in rows if row["kind"] == "click")
    assert {row["origin"] for row in rows} == {FORMULA_ORIGIN, "'" + SERVICE_ORIGIN}


def test_the_ndjson_export_neutralises_every_text_value(operator: Client) -> None:
    answer = operator.get(
        "/api/v1/export", params={"site": FORMULA_SITE, "since": "1h", "format": "ndjson"}
    )
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert len(lines) == 4
    for line in lines:
        assert list(line) == list(EXPORT_COLUMNS)
        for column, value in line.items():
            assert_inert(value, f"ndjson {column}")
    assert {line["item"] for line in lines} == {"'" + item for item in ITEMS}
    assert all(isinstance(line["position"], int) for line in lines)  # numbers stay numbers


@pytest.mark.parametrize("by", ["placement", "item", "position", "day", "hour"])
def test_report_csvs_neutralise_their_keys(operator: Client, by: str) -> None:
    answer = operator.get(
        "/api/v1/report", params={"site": FORMULA_SITE, "since": "1h", "by": by, "format": "csv"}
    )
    rows = csv_rows(answer.text)
    assert rows
    for row in rows:
        for column, cell in row.items():
            assert_inert(cell, f"report by {by}: {column}")


def test_the_rejects_csv_is_inert_too(operator: Client) -> None:
    answer = operator.get("/api/v1/health", params={"since": "1h", "format": "csv"})
    for row in csv_rows(answer.text):
        for column, cell in row.items():
            assert_inert(cell, f"rejects {column}")
