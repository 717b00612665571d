"""Shared fixtures: the collector on a real SQLite file, in the test's process (the app
through ``httpx.ASGITransport``) or as a real ``clickthru serve`` process where the
process is the point (kill -9, signals, workers, browsers)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from clickthru.backend import open_store
from clickthru.config import Settings
from clickthru.store.rows import NewSite
from tests.inprocess import Bridge, started
from tests.sites import OTHER_ORIGIN, SHOP_ORIGIN, mint_token, new_id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    """The URL answers 200 right now."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_until_answering(
    process: subprocess.Popen[bytes], *urls: str, timeout: float = 15.0
) -> None:
    """Until every URL answers 200; fails at once if the process exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not all(answers(url) for url in urls):
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"the server exited with {process.returncode}\n{output}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer from {', '.join(urls)} within {timeout} s")
        time.sleep(0.05)


def stop_group(process: subprocess.Popen[Any]) -> None:
    """SIGTERM a server's process group, then SIGKILL what has not left within 10 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL: no shutdown, no flush, nothing but what is already on disk."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@dataclass
class CollectorBase:
    """A collector and the SQLite file it stores into, reached over HTTP with ``http``."""

    db: Path
    sites: dict[str, NewSite] = field(default_factory=dict)

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def http(self) -> httpx.Client:
        """A client for the test's requests (full URLs or paths)."""
        raise NotImplementedError

    def client(self, **options: Any) -> httpx.Client:
        """A client of its own (its own cookies), based at the collector's URL."""
        raise NotImplementedError

    def token(self, site: str = "shop", **claims: Any) -> str:
        return mint_token(self.sites[site], **claims)

    def event(self, site: str = "shop", **fields: Any) -> dict[str, Any]:
        claims = {
            k: fields.pop(k)
            for k in ("list_id", "item", "position", "placement", "variant")
            if k in fields
        }
        event: dict[str, Any] = {
            "id": new_id(),
            "kind": "click",
            "token": self.token(site, **claims),
        }
        event.update(page=f"{SHOP_ORIGIN}/book/a", dest=f"{SHOP_ORIGIN}/book/b", via="beacon")
        event.update(fields)
        return event

    def post(self, body: Any, origin: str | None = SHOP_ORIGIN, **kwargs: Any) -> httpx.Response:
        headers = {"content-type": "text/plain;charset=UTF-8", **kwargs.pop("headers", {})}
        if origin:
            headers["origin"] = origin
        return self.http.post(f"{self.url}/e", json=body, headers=headers, timeout=10, **kwargs)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the store's file directly, as an operator would."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return conn.execute(sql, params).fetchall()

    def counted(self, timeout: float = 30.0) -> None:
        """Until the report counters have caught up with every event stored so far."""
        deadline = time.monotonic() + timeout
        while True:
            lag = self.http.get(f"{self.url}/healthz", timeout=10).json()["aggregation"]
            if lag["lag_events"] == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the counters did not catch up within {timeout} s: {lag}")
            time.sleep(0.02)


@dataclass
class AppCollector(CollectorBase):
    """The collector's app in this process."""

    _stack: contextlib.ExitStack | None = None
    _http: httpx.Client | None = None
    _transport: Bridge | None = None

    @property
    def url(self) -> str:
        return "http://collector.test"

    @property
    def http(self) -> httpx.Client:
        assert self._http is not None, "start() it first"
        return self._http

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(transport=self._transport, base_url=self.url, **options)

    def start(self, **settings: Any) -> None:
        self._stack = contextlib.ExitStack()
        settings = {"store": str(self.db), "log_level": "warning", **settings}
        app, portal = self._stack.enter_context(started(Settings(**settings)))
        self._transport = Bridge(app, portal)
        self._http = self._stack.enter_context(self.client())

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = self._http = self._transport = None


@dataclass
class Collector(CollectorBase):
    """A `clickthru serve` subprocess."""

    port: int = field(default_factory=free_port)
    workers: int = 1
    process: subprocess.Popen[bytes] | None = None
    _http: httpx.Client = field(default_factory=httpx.Client)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def http(self) -> httpx.Client:
        return self._http

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, **options)

    def start(self, timeout: float = 15.0) -> None:
        env = {**os.environ, "CLICKTHRU_LOG_LEVEL": "warning"}
        command = [sys.executable, "-m", "clickthru", "--store", str(self.db), "serve"]
        command += ["--port", str(self.port), "--workers", str(self.workers)]
        self.process = subprocess.Popen(command, env=env, start_new_session=True)
        wait_until_answering(self.process, f"{self.url}/healthz", timeout=timeout)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
        self.process = None

    def kill(self) -> None:
        assert self.process is not None
        kill_group(self.process)
        self.process = None


def register_sites(db: Path) -> dict[str, NewSite]:
    """The two sites every collector test uses, in a new store file."""
    store = open_store(str(db))
    try:
        return {
            "shop": store.admin.add_site("shop", [SHOP_ORIGIN]),
            "other": store.admin.add_site("other", [OTHER_ORIGIN]),
        }
    finally:
        store.close()


def make_collector(path: Path, workers: int = 1) -> Collector:
    db = path / "clickthru.db"
    return Collector(db, register_sites(db), workers=workers)


def make_app_collector(path: Path) -> AppCollector:
    db = path / "clickthru.db"
    return AppCollector(db, register_sites(db))


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppCollector]:
    """One collector app for a module's tests; each test uses its own event ids."""
    running = make_app_collector(tmp_path_factory.mktemp("collector"))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def fresh_collector(tmp_path: Path) -> Iterator[Collector]:
    """A collector process of the test's own, not yet started (for restarts and kills)."""
    created = make_collector(tmp_path)
    yield created
    created.stop()


@pytest.fixture
def fresh_app(tmp_path: Path) -> Iterator[AppCollector]:
    """A collector app of the test's own, not yet started (for settings of its own)."""
    created = make_app_collector(tmp_path)
    yield created
    created.stop()
