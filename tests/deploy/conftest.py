"""Fixtures for the two-datacenter deployment: one real PostgreSQL, two collectors
(``dc-a`` and ``dc-b``) that spool into SQLite files of their own and ship to it, each
reaching PostgreSQL through a ``FaultyEndpoint`` so a test can cut either link.

Every collector is a real ``clickthru serve`` subprocess in its own process group, so a
test can SIGKILL it and start it again on the same spool.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from clickthru.backend import Store, open_store
from clickthru.store.rows import NewSite
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import SHOP_ORIGIN, free_port, kill_group, mint_token, new_id, stop_group
from tests.faults import FaultyEndpoint
from tests.pg import throwaway_database
from tests.snippet.site import Site, minter

T = TypeVar("T")

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36"
)


def until(condition: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Polls until ``condition()`` is truthy and returns it; fails saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)


def through(url: str, port: int) -> str:
    """The same database URL, reached through a local port (a proxy's)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@dataclass
class SpooledCollector:
    """``clickthru --store postgresql://... serve`` with its own spool, behind its own link."""

    name: str
    spool: Path
    store_url: str  # through the proxy
    proxy: FaultyEndpoint
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)  # kept across restarts: the page names it
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.spool.with_suffix(".log")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        env = {
            **os.environ,
            "CLICKTHRU_LOG_LEVEL": "warning",
            "CLICKTHRU_SPOOL": str(self.spool),
            "CLICKTHRU_COLLECTOR_NAME": self.name,
            **self.env,
        }
        command = [sys.executable, "-m", "clickthru", "--store", self.store_url, "serve"]
        command += ["--port", str(self.port)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.spool.parent,  # no ./clickthru.toml of the caller's
                start_new_session=True,
            )
        process = self.process
        deadline = time.monotonic() + timeout
        while not self._answers():
            if process.poll() is not None:
                self.process = None
                raise RuntimeError(
                    f"{self.name} exited with {process.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no answer within {timeout} s\n{self.log_tail()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        assert self.process is not None
        kill_group(self.process)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
        self.process = None

    def post(self, events: Sequence[dict[str, Any]], timeout: float = 10) -> httpx.Response:
        headers = {
            "content-type": "text/plain;charset=UTF-8",
            "origin": SHOP_ORIGIN,
            "user-agent": BROWSER_UA,  # httpx's own would be flagged as a bot
        }
        return httpx.post(f"{self.url}/e", json=list(events), headers=headers, timeout=timeout)

    def health(self) -> tuple[int, dict[str, Any]]:
        answer = httpx.get(f"{self.url}/healthz", timeout=5)
        return answer.status_code, answer.json()

    def metrics(self) -> dict[str, float]:
        """The unlabelled samples of /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, _, value = line.partition(" ")
                samples[name] = float(value)
        return samples

    def spooled(self, list_id: str | None = None) -> int:
        """Events (of one list) in the spool file right now, read as an operator would."""
        sql, params = "SELECT count(*) FROM events", ()
        if list_id is not None:  # a browser of an earlier test may still be sending its own
            sql, params = f"{sql} WHERE list_id = ?", (list_id,)
        with contextlib.closing(sqlite3.connect(f"file:{self.spool}?mode=ro", uri=True)) as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    def spool_meta(self, key: str) -> str | None:
        with contextlib.closing(sqlite3.connect(f"file:{self.spool}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def drained(self) -> bool:
        """Nothing waits in the spool file (the file, not /healthz's figure: that one lags)."""
        return self.spooled() == 0


@dataclass
class Deployment:
    url: str  # PostgreSQL, directly
    pg: Store  # the shared store, as an operator opens it
    site: Site  # the customer's pages, for the browser
    sites: dict[str, NewSite]
    collectors: dict[str, SpooledCollector]
    directory: Path

    @property
    def a(self) -> SpooledCollector:
        return self.collectors["a"]

    @property
    def b(self) -> SpooledCollector:
        return self.collectors["b"]

    def token(self, site: str = "shop", **claims: Any) -> str:
        return mint_token(self.sites[site], **claims)

    def events(
        self, count: int, site: str = "shop", list_id: str = "list-1"
    ) -> list[dict[str, Any]]:
        """Clicks with ids of their own, one distinct item each."""
        made = []
        for n in range(count):
            token = self.token(site, list_id=list_id, item=f"{list_id}-{n}", position=n % 10 + 1)
            made.append({"id": new_id(), "kind": "click", "token": token, "via": "fetch"})
        return made

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def copies(self, ids: Sequence[str]) -> dict[str, int]:
        """How many times each of these ids is in PostgreSQL's events (absent: not there)."""
        rows = self.query(
            "SELECT id, count(*) FROM events WHERE id = ANY(%s) GROUP BY id", list(ids)
        )
        return {event_id: int(count) for event_id, count in rows}

    def wait_stored(self, ids: Sequence[str], timeout: float = 30) -> dict[str, int]:
        """Until every id is in PostgreSQL; returns the copies of each."""
        until(
            lambda: len(self.copies(ids)) == len(set(ids)),
            timeout,
            f"all {len(set(ids))} acknowledged events in PostgreSQL",
            every=0.1,
        )
        return self.copies(ids)

    def heal(self) -> None:
        """Links up, collectors running, spools empty: where every test starts."""
        for collector in self.collectors.values():
            collector.proxy.set_mode("up")
        for collector in self.collectors.values():
            if not collector.running:
                collector.start()
        for collector in self.collectors.values():
            until(collector.drained, 30, f"{collector.name}'s spool drained")


def make_collector(
    directory: Path, name: str, url: str, env: dict[str, str] | None = None
) -> SpooledCollector:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("the link to cut is a local proxy: needs PostgreSQL on this machine")
    proxy = FaultyEndpoint(parts.port or 5432)
    proxy.start()
    return SpooledCollector(
        name, directory / f"{name}-spool.db", through(url, proxy.port), proxy, env or {}
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("deploy")
    site = Site(mint=lambda item, position: "")
    site.start()
    with throwaway_database() as url:
        pg = open_store(url)
        sites = {
            "shop": pg.admin.add_site("shop", [site.origin, SHOP_ORIGIN]),
            "twice": pg.admin.add_site("twice", [SHOP_ORIGIN]),
        }
        site.mint = minter(sites["shop"])
        collectors = {
            "a": make_collector(directory, "dc-a", url),
            "b": make_collector(directory, "dc-b", url),
        }
        deployed = Deployment(url, pg, site, sites, collectors, directory)
        try:
            for collector in collectors.values():
                collector.start()
            yield deployed
        finally:
            for collector in collectors.values():
                collector.stop()
                collector.proxy.stop()
            pg.close()
            site.stop()


@pytest.fixture
def dcs(deployment: Deployment) -> Deployment:
    """The deployment, healed from whatever the last test left."""
    deployment.heal()
    return deployment


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()
