"""The collector's ASGI application: routes, and the store's lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from clickthru import openapi
from clickthru.answers import json_response, store_health
from clickthru.backend import Store, open_store
from clickthru.collector import metrics
from clickthru.collector.asgi import Receive, Scope, Send, error, header_text
from clickthru.collector.guard import EXCEPTION_HANDLERS, Bounded, guarded
from clickthru.collector.intake import Intake
from clickthru.collector.receivers import Beacon, Ping, Pixel
from clickthru.collector.site_cache import SiteCache
from clickthru.collector.snippet import Snippet, snippet_source
from clickthru.config import Settings
from clickthru.dashboard.app import Dashboard
from clickthru.privacy import VisitorKeys
from clickthru.proxies import TrustedProxies

SETTINGS_ENV = "CLICKTHRU_RESOLVED_SETTINGS"  # how `serve` hands settings to worker processes
HEALTH_TIMEOUT = 2.0
GIL_SWITCH_INTERVAL = 0.001
MAINTENANCE_EVERY = 5.0  # seconds; below the site cache's own refresh age, so it rarely reads
MB = 1024 * 1024
DOCUMENT_HEADERS = {"access-control-allow-origin": "*", "cache-control": "no-cache"}

log = logging.getLogger(__name__)


def collector_store(settings: Settings) -> Store:
    """SQLite alone, or a spool in front of a shared PostgreSQL."""
    return open_store(
        settings.store,
        spool=settings.spool,
        collector_name=settings.collector_name,
        spool_max_events=settings.spool_max_events,
        commit_max_rows=settings.commit_max_rows,
        retention=settings.retention,
    )


def create_app(settings: Settings, store: Store | None = None) -> HotPaths:
    store = store or collector_store(settings)
    sites = SiteCache(store.lookups)
    visitors = VisitorKeys(store.lookups.daily_salt)
    intake = Intake(sites, visitors, attribution_days=settings.attribution_days)
    proxies = TrustedProxies(settings.trusted_proxies, settings.first_party_proxies)

    def maintain() -> None:
        """Reads the hot path would otherwise do on the event loop."""
        store.maintain()  # with a shared store: its sites and salt, into the spool
        refresh()

    def refresh() -> None:
        sites.refresh()
        visitors.prepare()

    async def keep_fresh() -> None:
        while True:
            try:
                await asyncio.to_thread(maintain)
            except Exception:
                log.exception("refreshing sites and salts failed; trying again")
            await asyncio.sleep(MAINTENANCE_EVERY)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The writer thread gives up the GIL for every SQLite step and then waits for the
        # busy event loop to hand it back; at Python's default 5 ms that wait, not the
        # disk, paced group commits. 1 ms measured best (bench/ingest_vs_executemany.py).
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        await asyncio.to_thread(
            store.start,
            aggregate=settings.aggregate,
            on_commit=metrics.observe_commit,
            on_failure=metrics.observe_write_failure,
            purge=settings.retention.purge,
        )
        refresh()  # local reads: a shared store that is away must not delay the start
        refresher = asyncio.create_task(keep_fresh())
        try:
            yield
        finally:
            refresher.cancel()
            await asyncio.to_thread(store.close)

    async def healthz(request: Request) -> Response:
        problem: tuple[str, str] | None = None
        try:
            # A real, durable write: a full disk or a stuck writer shows here.
            await asyncio.wait_for(store.sink.check(), HEALTH_TIMEOUT)
        except Exception as exc:
            problem = ("store_unavailable", str(exc))
        status = await asyncio.to_thread(store.status)
        free, floor = status["free_bytes"], settings.min_free_disk_mb * MB
        if problem is None and status["write_failing"]:
            problem = ("write_failing", f"the last durable write failed: {status['write_failing']}")
        if problem is None and free is not None and free < floor:
            problem = ("disk_low", f"{free // MB} MB free, below the floor of {floor // MB} MB")
        if problem is None and status.get("spool", {}).get("full"):
            problem = ("spool_full", "the spool holds its most events; shipping is behind")
        return json_response(store_health(status, problem), 200 if problem is None else 503)

    async def metrics_text(request: Request) -> Response:
        metrics.observe_status(await asyncio.to_thread(store.status))
        body, content_type = metrics.exposition()
        return Response(body, headers={"content-type": content_type})

    described = msgspec.json.encode(openapi.document(settings))

    async def api_document(request: Request) -> Response:
        return Response(described, headers=DOCUMENT_HEADERS, media_type="application/json")

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_text),
        Route(openapi.PATH, api_document),  # before the API's /api/v1/{name}
        *Dashboard(store, settings.secure_cookies, proxies).routes(),
    ]
    rest = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    rest.router.redirect_slashes = False  # its redirect names whatever host the client sent
    return HotPaths(
        {
            "/e": Beacon(intake, store.sink, settings, proxies),
            "/p.gif": Pixel(intake, store.sink, settings, proxies),
            "/ping": Ping(intake, store.sink, settings, proxies),
            "/ct.js": Snippet(),
            "/ctc.js": Snippet(snippet_source("ctc.js")),  # order confirmation pages only
        },
        rest,
        proxies,
    )


class HotPaths:
    """Sends the intake paths straight to their raw-ASGI endpoints and everything else
    (and the lifespan) to Starlette: a beacon pays for no router or middleware. Every
    request is guarded (``guard.py``). Only the intake paths are public: what came through
    a shop's first-party proxy reaches nothing else."""

    def __init__(self, paths: dict[str, ASGIApp], rest: Starlette, proxies: TrustedProxies) -> None:
        self.paths = paths
        self.rest = rest
        self.bounded_rest = Bounded(rest)  # the intake paths bound and record their own
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.rest(scope, receive, send)  # the lifespan
            return
        endpoint = self.paths.get(scope["path"])
        if endpoint is None and self._forwarded(scope):
            endpoint = not_public
        await guarded(endpoint or self.bounded_rest, scope, receive, send)

    def _forwarded(self, scope: Scope) -> bool:
        client = scope.get("client")
        return self.proxies.through_first_party(
            client[0] if client else "",
            header_text(scope, b"x-forwarded-for"),
            header_text(scope, b"forwarded"),
        )


async def not_public(scope: Scope, receive: Receive, send: Send) -> None:
    await error(
        send, 404, "not_public", "only the event paths and ct.js are served through a proxy"
    )


def app_from_env() -> HotPaths:
    """Factory for worker processes started by ``clickthru serve --workers N``."""
    return create_app(msgspec.json.decode(os.environ[SETTINGS_ENV], type=Settings))
