"""The Node.js minting function: the vectors byte for byte, and its tokens through a real
collector (in-process, on a real SQLite file) next to every invalid vector."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from clickthru.backend import open_store
from clickthru.clock import utc_day
from clickthru.collector.app import create_app
from clickthru.config import Settings
from clickthru.reports import Query
from tests.conftest import new_id
from tests.token_vectors import VECTORS as VECTORS_FILE

VECTORS: dict[str, Any] = json.loads(VECTORS_FILE.read_text())
MINTER = Path(__file__).parent.parent / "clients" / "node" / "clickthru-token.cjs"
DRIVER = Path(__file__).parent / "node_mint.cjs"
SHOP = "http://shop.test"
NEWS = "http://news.test"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def node_mint(inputs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the Node.js function answers for each input: a token, or the error it threw."""
    done = subprocess.run(
        ["node", str(DRIVER)], input=json.dumps(inputs), capture_output=True, text=True, check=True
    )
    results: list[dict[str, str]] = json.loads(done.stdout)
    return results


def key(site: str, key_id: str) -> dict[str, Any]:
    [found] = [k for k in VECTORS["keys"] if (k["site"], k["key_id"]) == (site, key_id)]
    return found


def test_node_mints_every_valid_vector_byte_for_byte() -> None:
    minted = node_mint([vector["input"] for vector in VECTORS["valid"]])
    assert [m.get("token", m.get("error")) for m in minted] == [
        vector["token"] for vector in VECTORS["valid"]
    ]


def test_node_refuses_to_mint_what_the_vectors_say() -> None:
    refused = node_mint([vector["input"] for vector in VECTORS["mint_refuses"]])
    for vector, result in zip(VECTORS["mint_refuses"], refused, strict=True):
        assert "error" in result, vector["name"]
        assert result["error"].startswith(("RangeError", "TypeError")), result


def test_node_refuses_a_secret_that_is_not_hex() -> None:
    given = {**VECTORS["valid"][0]["input"], "secret_hex": "not hex"}
    [result] = node_mint([given])
    assert result == {"error": "TypeError: secret must be hex, as `clickthru site add` prints it"}


def test_the_file_imports_as_an_es_module_too() -> None:
    given = VECTORS["valid"][0]["input"]
    claims = {
        "site": given["site"], "keyId": given["key_id"], "secret": given["secret_hex"],
        "listId": given["list_id"], "item": given["item"], "position": given["position"],
        "placement": given["placement"], "now": given["issued_at"],
    }  # fmt: skip
    script = (
        f"import {{ mintToken }} from {json.dumps(str(MINTER))};"
        f"process.stdout.write(mintToken({json.dumps(claims)}));"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, check=True
    )
    assert done.stdout == VECTORS["valid"][0]["token"]


def store_with_the_vectors_keys(db: Path) -> None:
    """Sites with the vectors' keys: bookshop rotated twice (k1 retired), newsroom."""
    store = open_store(str(db))
    admin = store.admin
    admin.add_site("bookshop", [SHOP])
    admin.rotate_key("bookshop")
    admin.rotate_key("bookshop")
    admin.add_site("newsroom", [NEWS])
    sites = admin.sites()
    states = {(s.name, k.key_id): k.retired_at is None for s in sites for k in s.keys}
    assert states == {(k["site"], k["key_id"]): k["state"] != "retired" for k in VECTORS["keys"]}
    admin.mirror(
        [
            replace(
                site,
                keys=tuple(
                    replace(k, secret=bytes.fromhex(key(site.name, k.key_id)["secret_hex"]))
                    for k in site.keys
                ),
            )
            for site in sites
        ],
        utc_day(),
        admin.daily_salt(utc_day()),
    )
    store.close()


def click(token: str) -> dict[str, Any]:
    return {
        "id": new_id(), "kind": "click", "token": token, "page": f"{SHOP}/book/a",
        "dest": f"{SHOP}/book/b", "via": "beacon",
    }  # fmt: skip


async def post_to_collector(db: Path, batches: list[list[dict[str, Any]]]) -> list[Any]:
    """Each batch through the collector's /e from the shop's pages; the answers."""
    app = create_app(Settings(store=str(db)))
    headers = {"origin": SHOP, "content-type": "text/plain;charset=UTF-8", "user-agent": BROWSER}
    async with (
        app.rest.router.lifespan_context(app.rest),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://collector.test"
        ) as client,
    ):
        return [(await client.post("/e", json=batch, headers=headers)).json() for batch in batches]


def test_node_tokens_are_counted_as_clicks_and_every_invalid_vector_refused(
    tmp_path: Path,
) -> None:
    db = tmp_path / "clickthru.db"
    store_with_the_vectors_keys(db)
    fresh = [  # minted now, with the default ttl
        {"site": "bookshop", "key_id": "k3", "list_id": "L1", "item": "emma", "position": 1,
         "placement": "product-page-bottom"},
        {"site": "bookshop", "key_id": "k2", "list_id": "L1", "item": "persuasion",
         "position": 300, "placement": "product-page-bottom"},
        {"site": "bookshop", "key_id": "k3", "list_id": "L2", "item": "Le Petit Prince 📖",
         "position": 128, "placement": "accueil-sélection"},
        {"site": "newsroom", "key_id": "k1", "list_id": "L3", "item": "front-page",
         "position": 2, "placement": "home"},
    ]  # fmt: skip
    for given in fresh:
        given["secret_hex"] = key(given["site"], given["key_id"])["secret_hex"]
    minted = [result["token"] for result in node_mint(fresh)]
    good = [click(token) for token in minted[:3]]
    foreign = click(minted[3])  # newsroom's token on the shop's page
    refused = [click(vector["token"]) for vector in VECTORS["invalid"]]
    expected = [v.get("collector_reason", v["reason"]) for v in VECTORS["invalid"]]

    accepted, judged = asyncio.run(
        post_to_collector(db, [good, [*refused, foreign, good[0] | {"id": new_id()}]])
    )

    assert accepted == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert judged["accepted"] == 1  # the good event among the refused ones is kept
    assert [r["reason"] for r in judged["rejected"]] == [*expected, "origin_not_allowed"]
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT site, key_id, list_id, item, position, placement, kind FROM events"
            " ORDER BY rowid"
        ).fetchall()
        for event, reason in [
            *zip(refused, expected, strict=True),
            (foreign, "origin_not_allowed"),
        ]:
            recorded = conn.execute(
                "SELECT reason FROM rejects WHERE input LIKE ?", (f"%{event['id']}%",)
            ).fetchall()
            assert recorded == [(reason,)], event["token"][:40]
    assert rows == [
        (g["site"], g["key_id"], g["list_id"], g["item"], g["position"], g["placement"], "click")
        for g in [*fresh[:3], fresh[0]]
    ]
    store = open_store(str(db))
    store.aggregator.catch_up()
    now_ms = int(time.time() * 1000)
    asked = Query(("bookshop",), now_ms - 3_600_000, now_ms + 3_600_000)
    report = store.reports.document(asked, "item")
    store.close()
    assert report.totals.clicks == 4
    assert {row.key: row.clicks for row in report.rows} == {
        "emma": 2, "persuasion": 1, "Le Petit Prince 📖": 1,
    }  # fmt: skip
