"""The whole collector app (intake, API, dashboard) in the test's own process, driven
through ``httpx.ASGITransport`` on a real SQLite file: no port, no process, the same app
a real server runs. Its lifespan and requests run on an event loop in a thread (an anyio
portal), so tests call it synchronously: through ``App.client`` (many clients, requests
at once), or through a plain ``httpx.Client`` whose transport is ``Bridge``."""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from clickthru.backend import Store, open_store
from clickthru.collector.app import HotPaths, create_app
from clickthru.config import Settings
from clickthru.store.rows import NewSite
from tests.sites import OTHER_ORIGIN, SHOP_ORIGIN, mint_token, new_id

PASSWORD = "correct horse battery"
BASE_URL = "http://collector.test"
CLIENT_PORT = 50000


@contextlib.contextmanager
def started(
    settings: Settings, store: Store | None = None
) -> Iterator[tuple[HotPaths, BlockingPortal]]:
    """The app with its lifespan entered (store started, sites loaded) on a portal's
    event loop; stopped on the way out."""
    app = create_app(settings, store)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.rest.router.lifespan_context(app.rest)),
    ):
        yield app, portal


class Bridge(httpx.BaseTransport):
    """A sync transport over ``httpx.ASGITransport`` running on the app's event loop, for
    a plain ``httpx.Client`` (cookies, redirects, the whole API)."""

    def __init__(
        self,
        app: HotPaths,
        portal: BlockingPortal,
        client: tuple[str, int] = ("127.0.0.1", CLIENT_PORT),
    ) -> None:
        self._portal = portal
        self._inner = httpx.ASGITransport(app=app, client=client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()

        async def call() -> tuple[int, httpx.Headers, bytes]:
            response = await self._inner.handle_async_request(request)
            body = b"".join([chunk async for chunk in response.stream])  # as sent: not decoded
            return response.status_code, response.headers, body

        status, headers, body = self._portal.call(call)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


@dataclass
class App:
    """A started collector app, its store file, its sites ("shop", "other") and users
    ("ops", an operator; "shopkeeper", who sees "shop" only) with their read keys."""

    app: HotPaths
    db: Path
    portal: BlockingPortal
    sites: dict[str, NewSite]
    keys: dict[str, str]
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, address: str | None = None, **options: Any) -> Client:
        """A client of its own (cookies, and an address of its own unless given), closed
        with the app."""
        address = address or f"10.0.{len(self.clients) // 250}.{len(self.clients) % 250 + 1}"
        transport = httpx.ASGITransport(app=self.app, client=(address, CLIENT_PORT))
        async_client = httpx.AsyncClient(transport=transport, base_url=BASE_URL, **options)
        self.clients.append(async_client)
        return Client(async_client, self.portal)

    def run(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return self.portal.call(function, *args)

    def token(self, site: str = "shop", **claims: Any) -> str:
        return mint_token(self.sites[site], **claims)

    def event(self, site: str = "shop", **fields: Any) -> dict[str, Any]:
        claims = {
            k: fields.pop(k)
            for k in ("list_id", "item", "position", "placement", "variant")
            if k in fields
        }
        origin = self.sites[site].site.origins[0]
        return {
            "id": new_id(),
            "kind": "click",
            "token": self.token(site, **claims),
            "page": f"{origin}/book/a",
            "dest": f"{origin}/book/b",
            **fields,
        }

    def counted(self, timeout: float = 30.0) -> None:
        """Until the report counters have caught up with every event stored so far."""
        health = self.client()
        deadline = time.monotonic() + timeout
        while health.get("/healthz").json()["aggregation"]["lag_events"]:
            assert time.monotonic() < deadline, "the counters did not catch up"
            time.sleep(0.02)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            return conn.execute(sql, params).fetchall()


@dataclass
class Client:
    """Synchronous calls into the app's event loop."""

    http: httpx.AsyncClient
    portal: BlockingPortal

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        call = functools.partial(self.http.request, method, url, **options)
        response: httpx.Response = self.portal.call(call)
        return response

    def get(self, url: str, **options: Any) -> httpx.Response:
        return self.request("GET", url, **options)

    def post(self, url: str, **options: Any) -> httpx.Response:
        return self.request("POST", url, **options)

    def all(self, requests: Sequence[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
        """Several requests at once (their events share group commits), answers in order."""

        async def together() -> list[httpx.Response]:
            answers: list[httpx.Response | None] = [None] * len(requests)

            async def one(index: int, method: str, url: str, options: dict[str, Any]) -> None:
                answers[index] = await self.http.request(method, url, **options)

            async with anyio.create_task_group() as group:
                for index, (method, url, options) in enumerate(requests):
                    group.start_soon(one, index, method, url, options)
            return [answer for answer in answers if answer is not None]

        result: list[httpx.Response] = self.portal.call(together)
        return result

    def sign_in(self, name: str, password: str = PASSWORD) -> httpx.Response:
        form = self.get("/dashboard/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        return self.post(
            "/dashboard/sign-in", data={"name": name, "password": password, "csrf": csrf[1]}
        )


def add_sites_and_users(
    store: Store, more_sites: dict[str, list[str]]
) -> tuple[dict[str, NewSite], dict[str, str]]:
    origins = {"shop": [SHOP_ORIGIN], "other": [OTHER_ORIGIN], **more_sites}
    sites = {name: store.admin.add_site(name, listed) for name, listed in origins.items()}
    access = store.access
    access.add_user("ops", PASSWORD, operator=True, sites=[])
    access.add_user("shopkeeper", PASSWORD, operator=False, sites=["shop"])
    keys = {name: access.add_read_key(name) for name in ("ops", "shopkeeper")}
    return sites, keys


@contextlib.contextmanager
def running_app(
    directory: Path, more_sites: dict[str, list[str]] | None = None, **settings: Any
) -> Iterator[App]:
    """The app on a fresh store in ``directory``, started (its lifespan) and stopped;
    ``more_sites``: names and origins of sites beside "shop" and "other"."""
    db = directory / "clickthru.db"
    store = open_store(str(db))
    sites, keys = add_sites_and_users(store, more_sites or {})
    with started(Settings(store=str(db), **settings), store) as (app, portal):
        running = App(app, db, portal, sites, keys)
        try:
            yield running
        finally:
            for client in running.clients:
                portal.call(client.aclose)
