"""Sites, keys and salts (``store/site_tables.py``), on both stores: what SQLite does,
PostgreSQL does alike, and another collector on the same store sees the same."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clickthru.store import Store, StoreError
from clickthru.store.postgres import PostgresStore
from clickthru.store.sqlite import SQLiteStore
from tests.pg import throwaway_database

Opener = Callable[[], Store]  # another collector opening the same store


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[Store] = []

    def open_sqlite() -> Store:
        opened.append(SQLiteStore(tmp_path / "store.db"))
        return opened[-1]

    if request.param == "sqlite":
        yield open_sqlite
    else:
        with throwaway_database() as url:

            def open_postgres() -> Store:
                opened.append(PostgresStore(url))
                return opened[-1]

            yield open_postgres
            for store in opened:
                store.close()
            return
    for store in opened:
        store.close()


def test_sites_keys_rotate_and_the_previous_key_stays_valid(opener: Opener) -> None:
    store = opener()
    created = store.add_site("shop", ["http://shop.test"])
    assert created.api_key.startswith("ctk_") and created.site.signing_key.key_id == "k1"
    with pytest.raises(StoreError, match="exists already"):
        store.add_site("shop", ["http://shop.test"])
    store.rotate_key("shop")
    twice = store.rotate_key("shop")
    assert [(k.key_id, k.retired_at is None) for k in twice.keys] == [
        ("k3", True), ("k2", True), ("k1", False),
    ]  # fmt: skip
    with pytest.raises(StoreError, match="no site"):
        store.rotate_key("nowhere")
    store.set_origins("shop", ["https://shop.test", "https://www.shop.test"])
    other = opener()
    assert other.sites() == store.sites() == [store.site("shop")]
    assert other.site("shop").origins == ("https://shop.test", "https://www.shop.test")


def test_the_daily_salt_is_shared_and_old_salts_are_forgotten(opener: Opener) -> None:
    store = opener()
    first = store.daily_salt("2026-11-01")
    assert len(first) == 16 and store.daily_salt("2026-11-01") == first
    store.daily_salt("2026-11-02")
    third = store.daily_salt("2026-11-03")
    assert opener().daily_salt("2026-11-03") == third  # one salt for every collector
    assert store.daily_salt("2026-11-01") != first  # forgotten: asked again, it is new
    with ThreadPoolExecutor(4) as pool:  # collectors meeting a new day together
        salts = set(pool.map(lambda _: opener().daily_salt("2026-11-04"), range(4)))
    assert len(salts) == 1
