"""The collector's ASGI application: routes, and the store's lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from clickthru.collector import metrics
from clickthru.collector.asgi import Receive, Scope, Send
from clickthru.collector.guard import EXCEPTION_HANDLERS, Bounded, guarded
from clickthru.collector.intake import Intake
from clickthru.collector.receivers import Beacon, Ping, Pixel
from clickthru.collector.snippet import Snippet
from clickthru.config import Settings
from clickthru.dashboard.app import Dashboard
from clickthru.privacy import VisitorKeys
from clickthru.sites import SiteRegistry
from clickthru.store import Store, open_store
from clickthru.store.spooled import SpooledStore

SETTINGS_ENV = "CLICKTHRU_RESOLVED_SETTINGS"  # how `serve` hands settings to worker processes
HEALTH_TIMEOUT = 2.0
GIL_SWITCH_INTERVAL = 0.001
MAINTENANCE_EVERY = 5.0  # seconds; below the registry's own refresh age, so it rarely reads

log = logging.getLogger(__name__)


def collector_store(settings: Settings) -> Store:
    """SQLite alone, or with a shared PostgreSQL: a spool in front of it."""
    if not settings.store.startswith(("postgres://", "postgresql://")):
        return open_store(settings.store, commit_max_rows=settings.commit_max_rows)
    from clickthru.store.postgres import PostgresStore
    from clickthru.store.spooled import SpooledStore
    from clickthru.store.sqlite import SQLiteStore

    spool = SQLiteStore(settings.spool, max_batch_rows=settings.commit_max_rows, keep_rollups=False)
    return SpooledStore(
        spool,
        PostgresStore(settings.store),
        name=settings.collector_name or socket.gethostname(),
        max_backlog=settings.spool_max_events,
    )


def create_app(settings: Settings, store: Store | None = None) -> HotPaths:
    store = store or collector_store(settings)
    sites = SiteRegistry(store)
    visitors = VisitorKeys(store.daily_salt)
    intake = Intake(sites, visitors)

    def maintain() -> None:
        """Reads the hot path would otherwise do on the event loop."""
        if isinstance(store, SpooledStore):
            store.sync()  # the shared store's sites and salt, into the spool
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
        store.start(on_commit=metrics.observe_commit)
        if isinstance(store, SpooledStore) and not store.spool.sites():
            # A new spool knows no sites yet, so no token would verify: fetch them first.
            await asyncio.to_thread(store.sync)
        refresh()  # local reads: a shared store that is away must not delay the start
        refresher = asyncio.create_task(keep_fresh())
        try:
            yield
        finally:
            refresher.cancel()
            store.close()

    spooled = store if isinstance(store, SpooledStore) else None

    async def healthz(request: Request) -> Response:
        spool = {"spool": await asyncio.to_thread(spooled.status)} if spooled else {}
        try:
            await asyncio.wait_for(store.check(), HEALTH_TIMEOUT)
        except Exception as exc:
            return JSONResponse(
                {"ok": False, "error": "store_unavailable", "detail": str(exc), **spool}, 503
            )
        if spooled and spooled.forwarder.backlog >= spooled.max_backlog:
            return JSONResponse({"ok": False, "error": "spool_full", **spool}, 503)
        return JSONResponse({"ok": True, **spool})

    async def metrics_text(request: Request) -> Response:
        if spooled:
            metrics.observe_spool(await asyncio.to_thread(spooled.status))
        body, content_type = metrics.exposition()
        return Response(body, headers={"content-type": content_type})

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_text),
        *Dashboard(store, settings.secure_cookies, settings.trust_forwarded_for).routes(),
    ]
    rest = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    rest.router.redirect_slashes = False  # its redirect names whatever host the client sent
    return HotPaths(
        {
            "/e": Beacon(intake, store, settings),
            "/p.gif": Pixel(intake, store, settings),
            "/ping": Ping(intake, store, settings),
            "/ct.js": Snippet(),
        },
        rest,
    )


class HotPaths:
    """Sends the intake paths straight to their raw-ASGI endpoints and everything else
    (and the lifespan) to Starlette: a beacon pays for no router or middleware. Every
    request is guarded (``guard.py``)."""

    def __init__(self, paths: dict[str, ASGIApp], rest: Starlette) -> None:
        self.paths = paths
        self.rest = rest
        self.bounded_rest = Bounded(rest)  # the intake paths bound and record their own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.rest(scope, receive, send)  # the lifespan
            return
        await guarded(self.paths.get(scope["path"], self.bounded_rest), scope, receive, send)


def app_from_env() -> HotPaths:
    """Factory for worker processes started by ``clickthru serve --workers N``."""
    return create_app(msgspec.json.decode(os.environ[SETTINGS_ENV], type=Settings))
