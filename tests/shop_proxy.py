"""The shop's own reverse proxy in front of the shop and, at ``/_ct/``, of the collector
(first-party mode): a real nginx (HTTP/1.1, or HTTP/2 over TLS with a certificate made here)
or a real Caddy, each running the configuration shipped in ``deploy/``, included as the
README says.

    with ShopProxy("nginx", shop_port, collector_url, directory) as proxy:
        page.goto(f"{proxy.origin}/shop?endpoints=/_ct/")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx

from clickthru.backend import open_store
from tests.conftest import Collector, free_port, stop_group
from tests.faults import FaultyEndpoint
from tests.snippet.site import Page, Site, minter

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
NGINX_CONF = DEPLOY / "nginx" / "clickthru-first-party.conf"
CADDY_CONF = DEPLOY / "caddy" / "clickthru-first-party.caddy"
# How long the shipped configurations wait for a collector at most: connect (1 s) and the
# answer (2 s).
GIVES_UP_WITHIN = 3.0

Kind = Literal["nginx", "nginx-h2", "caddy"]
KINDS: tuple[Kind, ...] = ("nginx", "nginx-h2", "caddy")

NGINX_MAIN = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port}{tls};
        {certificate}
        set $clickthru_collector {collector};
        include {include};
        location / {{
            proxy_pass http://127.0.0.1:{shop};
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""
NGINX_TLS = "ssl_certificate {dir}/cert.pem; ssl_certificate_key {dir}/key.pem;"

CADDY_MAIN = """
{{
    admin off
    auto_https off
    storage file_system {dir}/caddy-data
}}
http://127.0.0.1:{port} {{
    bind 127.0.0.1
    import {include}
    handle {{
        reverse_proxy 127.0.0.1:{shop}
    }}
}}
"""


def self_signed(directory: Path) -> None:
    """A certificate for 127.0.0.1 in cert.pem and key.pem (the browser is told to accept it)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip


class ShopProxy:
    def __init__(self, kind: Kind, shop_port: int, collector_url: str, directory: Path) -> None:
        self.kind = kind
        self.shop_port = shop_port
        self.collector_url = collector_url
        self.directory = directory / kind
        self.port = free_port()
        scheme = "https" if kind == "nginx-h2" else "http"
        self.origin = f"{scheme}://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        values = {
            "dir": self.directory,
            "port": self.port,
            "shop": self.shop_port,
            "collector": self.collector_url,
        }
        env = dict(os.environ)
        if self.kind == "caddy":
            config = self.directory / "Caddyfile"
            config.write_text(CADDY_MAIN.format(include=CADDY_CONF, **values))
            env.update(CLICKTHRU_COLLECTOR=self.collector_url, HOME=str(self.directory))
            command = [_binary("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"]
        else:
            tls = self.kind == "nginx-h2"
            if tls:
                self_signed(self.directory)
            config = self.directory / "nginx.conf"
            config.write_text(
                NGINX_MAIN.format(
                    include=NGINX_CONF,
                    tls=" ssl http2" if tls else "",
                    certificate=NGINX_TLS.format(**values) if tls else "",
                    **values,
                )
            )
            command = [
                _binary("nginx"),
                "-p",
                str(self.directory),
                "-e",
                "stderr",
                "-c",
                str(config),
            ]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self._wait_until_serving()

    def _wait_until_serving(self, timeout: float = 15.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                with httpx.Client(verify=False, timeout=1) as client:
                    if client.get(f"{self.origin}/_ct/nothing").status_code == 404:
                        return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}\n{output}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not answer within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None

    def __enter__(self) -> ShopProxy:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _binary(name: str) -> str:
    """Debian's nginx is in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError(f"{name} is missing: scripts/test installs it")
    return found


@dataclass
class FirstPartyWorld:
    """The shop behind its own proxies, the collector behind a faulty endpoint at ``/_ct/``."""

    site: Site
    collector: Collector
    endpoint: FaultyEndpoint  # between the shop's proxies and the collector
    direct: FaultyEndpoint  # the collector reached directly: a second endpoint
    proxies: dict[Kind, ShopProxy]

    def url(self, kind: Kind, page: Page) -> str:
        return f"{self.proxies[kind].origin}/shop?{page.query()}"

    def stored(self, list_id: str) -> list[tuple[str, str]]:
        """The clicks stored for this list: (id, via)."""
        sql = "SELECT id, via FROM events WHERE kind = 'click' AND list_id = ?"
        with contextlib.closing(
            sqlite3.connect(f"file:{self.collector.db}?mode=ro", uri=True, timeout=10)
        ) as conn:
            return conn.execute(sql, (list_id,)).fetchall()


@contextlib.contextmanager
def first_party_world(
    directory: Path, kinds: tuple[Kind, ...] = KINDS
) -> Iterator[FirstPartyWorld]:
    with contextlib.ExitStack() as stack:
        site = Site(mint=lambda item, position: "")
        site.start()
        stack.callback(site.stop)
        endpoint_port = free_port()
        proxies = {
            kind: ShopProxy(kind, site.port, f"http://127.0.0.1:{endpoint_port}", directory)
            for kind in kinds
        }
        store = open_store(str(directory / "clickthru.db"))
        collector = Collector(directory / "clickthru.db")
        origins = [proxy.origin for proxy in proxies.values()]
        collector.sites["shop"] = store.admin.add_site("shop", origins)
        store.close()
        site.mint = minter(collector.sites["shop"])
        stack.callback(collector.stop)
        collector.start()
        endpoint = FaultyEndpoint(collector.port, port=endpoint_port)
        direct = FaultyEndpoint(collector.port)
        for started in (endpoint, direct, *proxies.values()):
            stack.callback(started.stop)
            started.start()
        yield FirstPartyWorld(site, collector, endpoint, direct, proxies)
