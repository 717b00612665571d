"""The `clickthru` command on a real SQLite file: in-process, and `serve` as a process."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from clickthru import tokens
from clickthru.backend import open_store
from clickthru.cli import cli
from clickthru.store.rows import Batch, EventRow
from tests.conftest import free_port, wait_until_answering


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", str(db), *args], catch_exceptions=False)


def test_site_add_prints_the_secrets_once_and_list_shows_the_site(db: Path) -> None:
    added = run(
        db,
        "site",
        "add",
        "shop",
        "--origin",
        "https://Shop.example/",
        "--origin",
        "http://localhost:8000",
    )
    assert added.exit_code == 0, added.output
    assert re.search(r"signing secret: [0-9a-f]{64}", added.output)
    assert re.search(r"API key: +ctk_", added.output)
    listed = run(db, "site", "list")
    assert "shop\torigins: https://shop.example, http://localhost:8000\tkeys: k1" in listed.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["site", "add", "shop", "--origin", "shop.example"], "is not an origin"),
        (["site", "add", "shop", "--origin", "https://shop.example/path"], "is not an origin"),
        (["site", "add", "Bad Name", "--origin", "https://shop.example"], "lower-case"),
        (["site", "rotate-key", "nowhere"], "no site named 'nowhere'"),
        (
            [
                "token",
                "--site",
                "nowhere",
                "--list-id",
                "L",
                "--item",
                "i",
                "--position",
                "1",
                "--placement",
                "p",
            ],
            "no site named",
        ),
        (
            [
                "token",
                "--site",
                "x",
                "--list-id",
                "L",
                "--item",
                "i",
                "--position",
                "0",
                "--placement",
                "p",
            ],
            "0 is not in the range",
        ),
        (["report", "--since", "yesterday-ish"], "is not a time"),
    ],
)
def test_bad_input_gets_a_clear_message_and_a_failing_exit(
    db: Path, args: list[str], message: str
) -> None:
    result = run(db, *args)
    assert result.exit_code != 0
    assert message in result.output


def test_a_second_site_with_the_same_name_is_refused(db: Path) -> None:
    run(db, "site", "add", "shop", "--origin", "https://shop.example")
    again = run(db, "site", "add", "shop", "--origin", "https://shop.example")
    assert again.exit_code == 1 and "exists already" in again.output


def test_minted_tokens_verify_with_the_stored_key_across_a_rotation(db: Path) -> None:
    run(db, "site", "add", "shop", "--origin", "https://shop.example")
    args = [
        "token",
        "--site",
        "shop",
        "--list-id",
        "L1",
        "--item",
        "emma",
        "--position",
        "4",
        "--placement",
        "home",
    ]
    before = run(db, *args).output.strip()
    rotated = run(db, "site", "rotate-key", "shop")
    assert "signing key id: k2" in rotated.output
    after = run(db, *args).output.strip()
    keys = {(k.key_id): k.secret for k in open_store(str(db)).admin.site("shop").keys}

    def lookup(site: str, key_id: str) -> bytes | None:
        return keys.get(key_id) if site == "shop" else None

    assert tokens.verify(before, lookup).key_id == "k1"
    claims = tokens.verify(after, lookup)
    assert (claims.key_id, claims.item, claims.position, claims.placement) == (
        "k2",
        "emma",
        4,
        "home",
    )


def test_report_counts_stored_clicks_and_views(db: Path) -> None:
    store = open_store(str(db))
    store.admin.add_site("shop", ["https://shop.example"])
    now = int(time.time() * 1000)

    def event(event_id: str, kind: str, item: str, position: int) -> EventRow:
        return EventRow(event_id, kind, "shop", "L", item, position, "home", "k1", 0, None, now,
                        None, None, "beacon", None, False, None)  # fmt: skip

    rows = [
        event("c-emma-1", "click", "emma", 1),
        event("c-emma-2", "click", "emma", 1),
        event("v-emma-1", "view", "emma", 1),
        event("c-dune-1", "click", "dune", 2),
    ]
    asyncio.run(store.sink.write(Batch(rows)))
    store.close()
    assert "counted 4 events" in run(db, "aggregate", "--once").output
    # columns: views, clicks, unique views, unique clicks, CTR (unique clicks / unique views)
    lines = [line.split() for line in run(db, "report", "--since", "1h").output.splitlines()]
    assert ["home", "1", "3", "1", "2", "200.0", "%"] in lines
    lines = [
        line.split()
        for line in run(db, "report", "--since", "1h", "--by", "item").output.splitlines()
    ]
    assert ["emma", "1", "2", "1", "1", "100.0", "%"] in lines
    assert ["dune", "0", "1", "0", "1", "-"] in lines
    assert ["total", "1", "3", "1", "2", "200.0", "%"] in lines
    empty = run(db, "report", "--since", "2000-01-01", "--until", "2000-01-02").output
    assert "no clicks" in empty


def test_site_origins_replaces_the_allowed_origins(db: Path) -> None:
    run(db, "site", "add", "shop", "--origin", "https://shop.example")
    changed = run(db, "site", "origins", "shop", "--origin", "https://new.example")
    assert changed.output.strip() == "site shop: origins https://new.example"
    assert open_store(str(db)).admin.site("shop").origins == ("https://new.example",)
    assert run(db, "site", "origins", "nope", "--origin", "https://x.example").exit_code == 1


def test_serve_explains_a_store_it_cannot_open(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder" / "events.db"
    result = CliRunner().invoke(cli, ["--store", str(missing), "serve"])
    assert result.exit_code == 1
    assert "cannot open the SQLite store" in result.output


def test_serve_takes_its_settings_from_a_toml_file_in_the_working_folder(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "clickthru.toml").write_text(f'port = {port}\nstore = "from-toml.db"\n')
    server = subprocess.Popen(
        [sys.executable, "-m", "clickthru", "serve"], cwd=tmp_path, start_new_session=True
    )
    try:
        wait_until_answering(server, f"http://127.0.0.1:{port}/healthz")
        assert (tmp_path / "from-toml.db").exists()
    finally:
        server.terminate()
        server.wait(10)


def test_a_token_minted_with_a_variant_carries_it(db: Path) -> None:
    run(db, "site", "add", "shop", "--origin", "https://shop.example")
    minted = run(
        db, "token", "--site", "shop", "--list-id", "L1", "--item", "emma", "--position", "1",
        "--placement", "home", "--variant", "B",
    ).output.strip()  # fmt: skip
    keys = {k.key_id: k.secret for k in open_store(str(db)).admin.site("shop").keys}
    assert tokens.verify(minted, lambda site, key_id: keys.get(key_id)).variant == "B"


def test_conversions_and_experiment_print_what_the_store_counted(db: Path) -> None:
    run(db, "site", "add", "shop", "--origin", "https://shop.example")
    store = open_store(str(db))
    shop = store.admin.site("shop")
    now = int(time.time() * 1000)
    views = [
        EventRow(f"v{n}", "view", "shop", f"L{n}", "emma", 1, "home", "k1", 0, None, now, None,
                 None, "fetch", None, False, None, "AB"[n % 2])
        for n in range(10)
    ]  # fmt: skip
    order = views[0]._replace(
        id="o1", kind="conversion", order_id="A-1", value=23_500_000, currency="GBP",
        items='["emma"]', click_id="c1", click_at=now,
    )  # fmt: skip
    asyncio.run(store.sink.write(Batch(events=[*views, order])))
    store.aggregator.catch_up()
    store.close()
    assert shop.name == "shop"
    table = run(db, "conversions", "--by", "variant").output
    assert "A" in table and "23.5" in table and "unattributed: 0 orders" in table
    rows = list(csv.reader(io.StringIO(run(db, "experiment", "--format", "csv").output)))
    assert rows[0][:3] == ["variant", "views", "clicks"]
    assert [row[0] for row in rows[1:]] == ["A", "B"]
    assert rows[0][-2:] == ["revenue_GBP", "revenue_per_1000_views_GBP"]
    assert rows[1][-2:] == ["23.5", "4700.0"]


def test_outcomes_print_one_line_per_shown_item(db: Path) -> None:
    run(db, "site", "add", "shop", "--origin", "https://shop.example")
    store = open_store(str(db))
    now = int(time.time() * 1000)
    shown = [
        EventRow(f"s{n}", kind, "shop", "L1", f"i{n}", n + 1, "home", "k1", 0, None, now, None,
                 None, "server", None, False, None)
        for n, kind in enumerate(["serve", "view", "click"])
    ]  # fmt: skip
    asyncio.run(store.sink.write(Batch(events=shown)))
    store.aggregator.catch_up()
    store.close()
    lines = run(db, "outcomes").output.splitlines()
    assert [json.loads(line)["item"] for line in lines] == ["i0", "i1"]  # a click alone: not shown
    rows = list(csv.reader(io.StringIO(run(db, "outcomes", "--format", "csv").output)))
    assert rows[0][:3] == ["site", "list_id", "item"] and len(rows) == 3
