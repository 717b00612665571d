"""Who may read which site's reports: users, passwords, sessions and read-only API keys.

Operators see every site; a customer sees only the sites it is given. Passwords are kept
as scrypt hashes, session tokens and API keys as SHA-256 hashes: the database never holds
anything that signs someone in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from clickthru.clock import DAY_MS, now_ms
from clickthru.errors import StoreError
from clickthru.store.database import Database

SESSION_DAYS = 14
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # about 50 ms and 16 MiB per check
USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
READ_KEY_PREFIX = "ctr_"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    operator: bool
    sites: tuple[str, ...]  # for a customer; an operator sees all

    def may_see(self, site: str) -> bool:
        return self.operator or site in self.sites


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf: str
    expires_at: int


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        computed = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# A password check that runs even for an unknown user, so timing does not tell names apart.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


class Access:
    """Users and their credentials (in PostgreSQL a bare `user` is the session user, hence
    "user" quoted)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._connect = db.connection

    # -- users ---------------------------------------------------------------------------

    def add_user(self, name: str, password: str, operator: bool, sites: list[str]) -> User:
        if not USER_NAME.match(name):
            raise StoreError("a user name is 1-64 letters, digits or . _ @ -")
        if len(password) < 10:
            raise StoreError("a password needs at least 10 characters")
        if operator == bool(sites):
            raise StoreError("a user is either an operator or a customer of some sites")
        conn = self._connect()
        known = {name for (name,) in conn.execute("SELECT name FROM sites")}
        unknown = sorted(set(sites) - known)
        if unknown:
            raise StoreError(f"no site named {', '.join(map(repr, unknown))}")
        password_hash = hash_password(password)  # slow on purpose: not on the writer

        def work(conn: Any) -> None:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise StoreError(f"a user named {name!r} exists already")
            conn.execute(
                "INSERT INTO users (name, password_hash, operator, created_at) VALUES (?, ?, ?, ?)",
                (name, password_hash, int(operator), now_ms()),
            )
            conn.executemany(
                'INSERT INTO user_sites ("user", site) VALUES (?, ?)', [(name, s) for s in sites]
            )

        self._db.write(work)
        return self.user(name)

    def user(self, name: str) -> User:
        conn = self._connect()
        row = conn.execute("SELECT operator FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise StoreError(f"no user named {name!r}")
        sites = conn.execute(
            'SELECT site FROM user_sites WHERE "user" = ? ORDER BY site', (name,)
        ).fetchall()
        return User(name, bool(row[0]), tuple(site for (site,) in sites))

    def users(self) -> list[User]:
        names = self._connect().execute("SELECT name FROM users ORDER BY name").fetchall()
        return [self.user(name) for (name,) in names]

    def remove_user(self, name: str) -> None:
        self.user(name)
        self._db.write(lambda conn: conn.execute("DELETE FROM users WHERE name = ?", (name,)))

    def check_password(self, name: str, password: str) -> User | None:
        row = (
            self._connect()
            .execute("SELECT password_hash FROM users WHERE name = ?", (name,))
            .fetchone()
        )
        if not password_matches(password, row[0] if row else _DUMMY_HASH) or row is None:
            return None
        return self.user(name)

    # -- sessions ------------------------------------------------------------------------

    def start_session(self, user: User) -> tuple[str, Session]:
        """A new session; returns the token for the cookie (shown once) and the session."""
        token = secrets.token_urlsafe(32)
        now = now_ms()
        session = Session(user, secrets.token_urlsafe(24), now + SESSION_DAYS * DAY_MS)

        def work(conn: Any) -> None:
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
            conn.execute(
                'INSERT INTO sessions (token_hash, "user", csrf, created_at, expires_at)'
                " VALUES (?, ?, ?, ?, ?)",
                (_sha256(token), user.name, session.csrf, now, session.expires_at),
            )

        self._db.write(work)
        return token, session

    def session(self, token: str) -> Session | None:
        row = (
            self._connect()
            .execute(
                'SELECT "user", csrf, expires_at FROM sessions'
                " WHERE token_hash = ? AND expires_at > ?",
                (_sha256(token), now_ms()),
            )
            .fetchone()
        )
        return Session(self.user(row[0]), row[1], row[2]) if row else None

    def end_session(self, token: str) -> None:
        token_hash = _sha256(token)
        self._db.write(
            lambda conn: conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
        )

    # -- read-only API keys --------------------------------------------------------------

    def add_read_key(self, name: str) -> str:
        self.user(name)
        key = READ_KEY_PREFIX + secrets.token_urlsafe(24)
        row = (_sha256(key), name, now_ms())
        self._db.write(
            lambda conn: conn.execute(
                'INSERT INTO read_keys (key_hash, "user", created_at) VALUES (?, ?, ?)', row
            )
        )
        return key

    def key_user(self, key: str) -> User | None:
        row = (
            self._connect()
            .execute('SELECT "user" FROM read_keys WHERE key_hash = ?', (_sha256(key),))
            .fetchone()
        )
        return self.user(row[0]) if row else None
