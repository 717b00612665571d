"""The collector's app in the test's own process: its lifespan and requests run on an
event loop of their own, and tests talk to it with a plain (sync) ``httpx.Client`` whose
transport hands each request to ``httpx.ASGITransport`` on that loop. No port, no process:
fast, and the same app a real server runs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from clickthru.backend import Store
from clickthru.collector.app import HotPaths, create_app
from clickthru.config import Settings

ANSWER_WITHIN = 60.0  # seconds; a request of the app that takes longer is a hung test


class LoopThread:
    """An asyncio event loop running in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Any, timeout: float = ANSWER_WITHIN) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Bridge(httpx.BaseTransport):
    """A sync transport over ``httpx.ASGITransport`` running on the app's loop."""

    def __init__(self, loop: LoopThread, app: HotPaths, client: tuple[str, int]) -> None:
        self._loop = loop
        self._inner = httpx.ASGITransport(app=app, client=client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()

        async def call() -> tuple[int, httpx.Headers, bytes]:
            response = await self._inner.handle_async_request(request)
            body = b"".join([chunk async for chunk in response.stream])  # as sent: not decoded
            return response.status_code, response.headers, body

        status, headers, body = self._loop.run(call())
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


@contextlib.contextmanager
def running_app(
    settings: Settings, store: Store | None = None, client: tuple[str, int] = ("127.0.0.1", 50000)
) -> Iterator[tuple[HotPaths, httpx.BaseTransport]]:
    """The app with its lifespan entered (store started, sites loaded), and a transport to
    reach it; everything is stopped on the way out."""
    loop = LoopThread()
    app = create_app(settings, store)
    lifespan = app.rest.router.lifespan_context(app.rest)
    try:
        loop.run(lifespan.__aenter__())
        try:
            yield app, Bridge(loop, app, client)
        finally:
            loop.run(lifespan.__aexit__(None, None, None))
    finally:
        loop.close()
