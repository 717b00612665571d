"""Sites, their signing keys and the daily salts, in SQL that SQLite and PostgreSQL both
run (qmark parameters; the PostgreSQL store adapts them). Both stores delegate here."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from clickthru.clock import now_ms
from clickthru.store import NewSite, Site, SiteKey, StoreError, hash_api_key

Transaction = Callable[[Any], AbstractContextManager[Any]]


class SiteTables:
    def __init__(self, connect: Callable[[], Any], transaction: Transaction, lock_row: str) -> None:
        self._connect = connect
        self._transaction = transaction
        # What makes a SELECT lock the row it reads (" FOR UPDATE"); SQLite's write
        # transaction locks the whole file already.
        self._lock_row = lock_row

    def sites(self) -> list[Site]:
        conn = self._connect()
        keys: dict[str, list[SiteKey]] = {}
        for site, key_id, secret, created, retired in conn.execute(
            "SELECT site, key_id, secret, created_at, retired_at FROM site_keys"
            " ORDER BY created_at DESC, CAST(substr(key_id, 2) AS INTEGER) DESC"
        ):
            keys.setdefault(site, []).append(
                SiteKey(key_id, bytes.fromhex(secret), created, retired)
            )
        return [
            Site(name, tuple(json.loads(origins)), api_hash, tuple(keys.get(name, ())))
            for name, origins, api_hash in conn.execute(
                "SELECT name, origins, api_key_hash FROM sites ORDER BY name"
            )
        ]

    def site(self, name: str) -> Site:
        for site in self.sites():
            if site.name == name:
                return site
        raise StoreError(f"no site named {name!r}")

    def add_site(self, name: str, origins: list[str]) -> NewSite:
        api_key = "ctk_" + secrets.token_urlsafe(24)
        now = now_ms()
        with self._transaction(self._connect()) as conn:
            added = conn.execute(
                "INSERT INTO sites (name, origins, api_key_hash, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, json.dumps(origins), hash_api_key(api_key), now),
            ).fetchone()
            if added is None:
                raise StoreError(f"a site named {name!r} exists already")
            conn.execute(
                "INSERT INTO site_keys (site, key_id, secret, created_at) VALUES (?, ?, ?, ?)",
                (name, "k1", secrets.token_hex(32), now),
            )
        return NewSite(self.site(name), api_key)

    def set_origins(self, name: str, origins: list[str]) -> Site:
        self.site(name)  # a clear error for an unknown site
        self._connect().execute(
            "UPDATE sites SET origins = ? WHERE name = ?", (json.dumps(origins), name)
        )
        return self.site(name)

    def rotate_key(self, name: str) -> Site:
        """A new signing key; the previous one still verifies, older ones are retired."""
        now = now_ms()
        with self._transaction(self._connect()) as conn:
            # Two rotations at once take turns rather than make the same key number.
            if not conn.execute(
                f"SELECT 1 FROM sites WHERE name = ?{self._lock_row}", (name,)
            ).fetchone():
                raise StoreError(f"no site named {name!r}")
            numbers = conn.execute(
                "SELECT CAST(substr(key_id, 2) AS INTEGER) FROM site_keys WHERE site = ?", (name,)
            ).fetchall()
            newest = max(number for (number,) in numbers)
            conn.execute(
                "INSERT INTO site_keys (site, key_id, secret, created_at) VALUES (?, ?, ?, ?)",
                (name, f"k{newest + 1}", secrets.token_hex(32), now),
            )
            conn.execute(
                "UPDATE site_keys SET retired_at = ?"
                " WHERE site = ? AND key_id != ? AND key_id != ? AND retired_at IS NULL",
                (now, name, f"k{newest}", f"k{newest + 1}"),
            )
        return self.site(name)

    def daily_salt(self, day: str) -> bytes:
        """The salt for a UTC day (YYYY-MM-DD), shared by every collector on this store;
        only that day's is kept."""
        conn = self._connect()
        found = conn.execute("SELECT salt FROM salts WHERE day = ?", (day,)).fetchone()
        if found:  # the common case: one read, no lock
            return bytes(found[0])
        with self._transaction(conn):
            # Collectors asking together: the first insert wins, the others read its salt.
            conn.execute(
                "INSERT INTO salts (day, salt) VALUES (?, ?) ON CONFLICT (day) DO NOTHING",
                (day, secrets.token_bytes(16)),
            )
            conn.execute("DELETE FROM salts WHERE day < ?", (day,))
            salt = conn.execute("SELECT salt FROM salts WHERE day = ?", (day,)).fetchone()[0]
        return bytes(salt)
