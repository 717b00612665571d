"""A throw-away PostgreSQL database for a test: created empty, dropped afterwards even if
connections were left open. Without a PostgreSQL to talk to, the test is skipped (and
says so in pytest's summary).

The server is CLICKTHRU_TEST_POSTGRES, by default the local one with trust auth.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

ADMIN_URL = os.environ.get(
    "CLICKTHRU_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin() -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


def database_url(name: str) -> str:
    """ADMIN_URL with another database."""
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """Yields the URL of a new, empty database, which is dropped on the way out."""
    name = f"clickthru_test_{secrets.token_hex(6)}"
    try:
        admin = _admin()
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):  # in CI a missing server is a failure, never a quiet skip
            raise
        pytest.skip(f"no PostgreSQL at {ADMIN_URL}: {error}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(name)
    finally:
        with _admin() as admin:
            # FORCE: a store the test did not close still holds connections.
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def drop_connections(url: str) -> int:
    """Ends every other session on the database of ``url`` (a server restart, as far as a
    client can tell); returns how many."""
    name = urlsplit(url).path.lstrip("/")
    with _admin() as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid != pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(ended[0]) if ended else 0
