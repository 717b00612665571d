"""``clickthru demo``: the collector and two customer shops, in one process and one loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from types import FrameType

import click
import uvicorn
from starlette.types import ASGIApp

from clickthru.backend import Store
from clickthru.collector.app import collector_store, create_app
from clickthru.config import Settings
from clickthru.demo.recommender import Recommender, load_catalogue
from clickthru.demo.shop import Shop, create_shop
from clickthru.errors import StoreError
from clickthru.store.rows import SiteKey

ANY_INTERFACE = {"", "0.0.0.0", "::"}


class _Server(uvicorn.Server):
    """A server that leaves signals to ``run_demo``, which stops all servers together.

    Each ``uvicorn.Server`` would otherwise install its own SIGINT handler, and only the
    last one installed would see Ctrl+C.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # the name in older uvicorn versions
        pass


# The demo's own operator, on the demo's own file, listening on this machine only by default.
DEMO_USER = "demo"
DEMO_PASSWORD = "clickthru-demo"


def public_host(host: str) -> str:
    """The host to put in URLs a browser on this machine can open."""
    if host in ANY_INTERFACE:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def origins(host: str, port: int) -> list[str]:
    found = [f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://{host}:{port}"]
    return list(dict.fromkeys(found))


def signing_key(store: Store, shop: Shop, port: int, host: str) -> SiteKey:
    """Register the shop's site on first run; afterwards reuse it and its key."""
    wanted = origins(host, port)
    try:
        site = store.admin.site(shop.site)
    except StoreError:
        return store.admin.add_site(shop.site, wanted).site.signing_key
    if shop.url not in site.origins:
        click.echo(
            f"warning: site {shop.site} is registered for {', '.join(site.origins)}; the"
            f" collector will refuse clicks from {shop.url}. Use the earlier --shop-port, or"
            f" clickthru site origins {shop.site} --origin {shop.url}",
            err=True,
        )
    return site.signing_key


def check_free(host: str, ports: list[int]) -> None:
    """A clear message instead of a traceback when a port is taken."""
    for port in ports:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            # As uvicorn binds: SO_REUSEADDR, so a socket in TIME_WAIT does not count.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise click.ClickException(f"cannot listen on {host}:{port}: {error}") from None


def run_demo(settings: Settings, shop_port: int) -> None:
    host = public_host(settings.host)
    ports = [settings.port, shop_port, shop_port + 1]
    check_free(settings.host, ports)
    collector = f"http://{host}:{settings.port}"
    ink = Shop(
        site="ink-and-paper",
        title="Ink & Paper",
        tagline="New books, chosen with care.",
        url=f"http://{host}:{shop_port}",
        accent="#1f4e5f",
        second_hand=False,
    )
    second = Shop(
        site="second-chapter",
        title="Second Chapter",
        tagline="Second-hand books with a past.",
        url=f"http://{host}:{shop_port + 1}",
        accent="#7a4b2a",
        second_hand=True,
    )
    try:
        store = collector_store(settings)
        keys = {
            shop.site: signing_key(store, shop, port, host)
            for shop, port in ((ink, shop_port), (second, shop_port + 1))
        }
        access = store.access
        if DEMO_USER not in {user.name for user in access.users()}:
            access.add_user(DEMO_USER, DEMO_PASSWORD, operator=True, sites=[])
    except StoreError as error:
        raise click.ClickException(str(error)) from error
    recommender = Recommender(load_catalogue())
    apps: list[ASGIApp] = [
        create_app(settings, store),  # after the sites exist: its cache loads them at start
        create_shop(ink, second, keys[ink.site], collector, recommender),
        create_shop(second, ink, keys[second.site], collector, recommender),
    ]
    servers = [
        _Server(
            uvicorn.Config(app, host=settings.host, port=port, log_level="warning", lifespan="on")
        )
        for app, port in zip(apps, ports, strict=True)
    ]

    def started() -> None:
        click.echo(f"{ink.title:<15} {ink.url}/")
        click.echo(f"{second.title:<15} {second.url}/")
        click.echo(f"{'Collector':<15} {collector}/healthz  (store {settings.store})")
        click.echo(
            f"{'Dashboard':<15} {collector}/dashboard/  (user {DEMO_USER},"
            f" password {DEMO_PASSWORD})"
        )
        click.echo(
            f"Click a recommendation, then: clickthru --store {settings.store} report."
            " Ctrl+C stops."
        )

    with _stop_on_signals(servers):
        asyncio.run(_serve(servers, started))


async def _serve(servers: list[_Server], started: Callable[[], None]) -> None:
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            break  # one failed to start; gather below raises its error
        await asyncio.sleep(0.05)
    else:
        started()
    await asyncio.gather(*tasks)


@contextlib.contextmanager
def _stop_on_signals(servers: list[_Server]) -> Iterator[None]:
    """Ctrl+C (or SIGTERM) stops every server gracefully; a second one forces it."""

    def handle(signum: int, frame: FrameType | None) -> None:
        for server in servers:
            server.force_exit = server.should_exit
            server.should_exit = True

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
