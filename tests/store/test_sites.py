"""Site administration (``store/sites.py``) on both databases: what SQLite does,
PostgreSQL does alike, and another collector on the same store sees the same."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clickthru.backend import Store, open_store
from clickthru.errors import StoreError
from clickthru.store.sites import SiteAdmin
from tests.pg import throwaway_database

Opener = Callable[[], SiteAdmin]  # another collector opening the same store


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[Store] = []

    def opening(url: str) -> Opener:
        def open_one() -> SiteAdmin:
            opened.append(open_store(url))
            return opened[-1].admin

        return open_one

    if request.param == "sqlite":
        yield opening(str(tmp_path / "store.db"))
    else:
        with throwaway_database() as url:
            yield opening(url)
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


def test_names_and_origins_are_checked_here_for_every_way_in(opener: Opener) -> None:
    sites = opener()
    for name in ("Shop", "a b", "", "-shop", "x" * 64, "shop/../x"):
        with pytest.raises(StoreError, match="not a site name"):
            sites.add_site(name, ["https://shop.test"])
    for origin in ("shop.test", "https://shop.test/path", "ftp://shop.test", "https://"):
        with pytest.raises(StoreError, match="not an origin"):
            sites.add_site("shop", [origin])
    with pytest.raises(StoreError, match="at least one origin"):
        sites.add_site("shop", [])
    made = sites.add_site("shop", ["HTTPS://Shop.Test/", "https://shop.test"])
    assert made.site.origins == ("https://shop.test",)  # as browsers send them, once
    with pytest.raises(StoreError, match="not an origin"):
        sites.set_origins("shop", ["https://shop.test/?q"])
    with pytest.raises(StoreError, match="no site"):
        sites.set_origins("nowhere", ["https://shop.test"])
    assert sites.sites() == [made.site]


def test_a_spool_keeps_a_copy_of_the_shared_sites_and_salt(opener: Opener, tmp_path: Path) -> None:
    shared, spool = opener(), open_store(str(tmp_path / "spool.db"))
    copy = spool.admin
    shared.add_site("shop", ["https://shop.test"])
    copy.mirror(shared.sites(), "2026-12-05", b"s" * 16)
    assert copy.sites() == shared.sites() and copy.daily_salt("2026-12-05") == b"s" * 16
    shared.rotate_key("shop")
    copy.mirror(shared.sites(), "2026-12-06", b"t" * 16)
    assert copy.sites() == shared.sites() and copy.daily_salt("2026-12-06") == b"t" * 16
    spool.close()
