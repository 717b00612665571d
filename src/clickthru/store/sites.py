"""Site administration: customer sites, their origins and signing keys, the daily salts
for visitor keys, and the copy of them a spool keeps. Names and origins are checked here,
so every way in (the CLI, the dashboard, a script) gets the same clear refusal."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from typing import Any

from clickthru.clock import now_ms
from clickthru.errors import StoreError
from clickthru.store.database import Database
from clickthru.store.rows import NewSite, Site, SiteKey, hash_api_key, hash_site

SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9a-f:]+\](:\d{1,5})?$")


def valid_name(name: str) -> str:
    if not SITE_NAME.match(name):
        raise StoreError(
            f"{name!r} is not a site name: lower-case letters, digits, - and _ (at most 63)"
        )
    return name


def valid_origins(origins: Sequence[str]) -> list[str]:
    """Origins as the browser sends them (scheme://host[:port], lower case, no slash)."""
    cleaned = [origin.strip().rstrip("/").lower() for origin in origins]
    if not cleaned:
        raise StoreError("a site needs at least one origin, like https://shop.example")
    for origin in cleaned:
        if not ORIGIN.match(origin):
            raise StoreError(f"{origin!r} is not an origin like https://shop.example")
    return list(dict.fromkeys(cleaned))


class SiteAdmin:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reads -------------------------------------------------------------------------

    def sites(self) -> list[Site]:
        conn = self.db.connection()
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

    # -- administration ----------------------------------------------------------------

    def add_site(self, name: str, origins: Sequence[str]) -> NewSite:
        name, cleaned = valid_name(name), valid_origins(origins)
        api_key = "ctk_" + secrets.token_urlsafe(24)
        now = now_ms()

        def work(conn: Any) -> None:
            added = conn.execute(
                "INSERT INTO sites (name, origins, api_key_hash, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, json.dumps(cleaned), hash_api_key(api_key), now),
            ).fetchone()
            if added is None:
                raise StoreError(f"a site named {name!r} exists already")
            # A name used again after an erasure: its new events are shipped as any others.
            conn.execute("DELETE FROM erased_sites WHERE name_hash = ?", (hash_site(name),))
            conn.execute(
                "INSERT INTO site_keys (site, key_id, secret, created_at) VALUES (?, ?, ?, ?)",
                (name, "k1", secrets.token_hex(32), now),
            )

        self.db.write(work)
        return NewSite(self.site(name), api_key)

    def set_origins(self, name: str, origins: Sequence[str]) -> Site:
        cleaned = valid_origins(origins)

        def work(conn: Any) -> None:
            changed = conn.execute(
                "UPDATE sites SET origins = ? WHERE name = ? RETURNING name",
                (json.dumps(cleaned), name),
            ).fetchone()
            if changed is None:
                raise StoreError(f"no site named {name!r}")

        self.db.write(work)
        return self.site(name)

    def rotate_key(self, name: str) -> Site:
        """A new signing key; the previous one still verifies, older ones are retired."""
        now = now_ms()

        def work(conn: Any) -> None:
            # Two rotations at once take turns rather than make the same key number.
            if not conn.execute(
                f"SELECT 1 FROM sites WHERE name = ?{self.db.lock_row}", (name,)
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

        self.db.write(work)
        return self.site(name)

    # -- visitor salts -----------------------------------------------------------------

    def daily_salt(self, day: str) -> bytes:
        """The salt for a UTC day (YYYY-MM-DD), shared by every collector on this store;
        only that day's is kept."""
        found = self.db.connection().execute("SELECT salt FROM salts WHERE day = ?", (day,))
        row = found.fetchone()
        if row:  # the common case: one read, no lock
            return bytes(row[0])

        def work(conn: Any) -> bytes:
            # Collectors asking together: the first insert wins, the others read its salt.
            conn.execute(
                "INSERT INTO salts (day, salt) VALUES (?, ?) ON CONFLICT (day) DO NOTHING",
                (day, secrets.token_bytes(16)),
            )
            conn.execute("DELETE FROM salts WHERE day < ?", (day,))
            return bytes(conn.execute("SELECT salt FROM salts WHERE day = ?", (day,)).fetchone()[0])

        return self.db.write(work)

    # -- a spool's copy of the shared store's ----------------------------------------------

    def mirror(self, sites: Sequence[Site], day: str, salt: bytes) -> None:
        """Keep a copy of the shared store's sites and salt of the day: a spool verifies
        tokens and keys visitors with it while the shared store is away."""
        current = self.db.connection().execute("SELECT salt FROM salts WHERE day = ?", (day,))
        row = current.fetchone()
        if row is not None and bytes(row[0]) == salt and self.sites() == list(sites):
            return  # the usual case, every few seconds: nothing changed, nothing to write

        def work(conn: Any) -> None:
            conn.execute("DELETE FROM site_keys")
            conn.execute("DELETE FROM sites")
            conn.executemany(
                "INSERT INTO sites (name, origins, api_key_hash, created_at) VALUES (?, ?, ?, 0)",
                [(s.name, json.dumps(list(s.origins)), s.api_key_hash) for s in sites],
            )
            conn.executemany(
                "INSERT INTO site_keys (site, key_id, secret, created_at, retired_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (s.name, k.key_id, k.secret.hex(), k.created_at, k.retired_at)
                    for s in sites
                    for k in s.keys
                ],
            )
            conn.execute(
                "INSERT INTO salts (day, salt) VALUES (?, ?)"
                " ON CONFLICT (day) DO UPDATE SET salt = excluded.salt",
                (day, salt),
            )
            conn.execute("DELETE FROM salts WHERE day < ?", (day,))

        self.db.write(work)
