"""A customer's site for browser tests: shop pages that embed the self-hosted ``ct.js``,
and a destination on another origin that the recommended links lead to.

One server answers both: ``http://127.0.0.1:PORT`` is the shop and
``http://localhost:PORT`` the destination, two origins as far as the browser goes.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from clickthru.collector.snippet import snippet_source
from clickthru.store.rows import NewSite
from tests.conftest import mint_token

Mint = Callable[[str, int], str]  # (item, position) -> token


def minter(new_site: NewSite) -> Mint:
    """Tokens for this site's links, as the recommendation service would sign them."""

    def mint(item: str, position: int) -> str:
        list_id = item.rsplit("-book-", 1)[0]  # the site names items "<list>-book-<n>"
        return mint_token(new_site, list_id=list_id, item=item, position=position)

    return mint


# The test's own hook, before the snippet: the moment of each click, in the browser's clock,
# handed to Playwright's binding where there is one, and kept in localStorage (the first since
# last read) for the drivers that read it back later (tests/browsers).
CLICK_CLOCK = """<script>
const at = (event) => {
  const time = performance.timeOrigin + event.timeStamp;
  window.clickedAt && clickedAt(time);
  try {
    localStorage.getItem('ct-test-clicked') || localStorage.setItem('ct-test-clicked', time);
  } catch {}  // a test that breaks localStorage
};
for (const type of ['click', 'auxclick', 'keydown']) addEventListener(type, at, true);
</script>"""


@dataclass
class Page:
    """What one shop page holds; each field is a query parameter of ``/shop``."""

    endpoints: str = ""  # data-endpoints; empty: no snippet on the page
    links: int = 4
    ping: str = ""  # an <a ping> URL for every link
    gpc: bool = False
    gap: int = 0  # pixels of empty page before each link (views tests)
    blank: bool = True  # a target=_blank twin beside each link
    forget: bool = False  # empty the outbox before the snippet loads: nothing to replay
    list_id: str = "list-1"
    landing: str = ""  # the origin the links lead to; empty: the destination (another origin)

    def query(self) -> str:
        return urlencode({k: int(v) if isinstance(v, bool) else v for k, v in vars(self).items()})


@dataclass
class Site:
    mint: Mint
    arrivals: list[tuple[str, float]] = field(default_factory=list)  # (path, unix seconds)
    server: ThreadingHTTPServer | None = None
    snippet: bytes | None = None  # another build of ct.js to serve (benchmarks)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def destination(self) -> str:
        return f"http://localhost:{self.port}"

    def url(self, page: Page) -> str:
        return f"{self.origin}/shop?{page.query()}"

    def arrived(self, path: str) -> bool:
        return any(p == path for p, _ in self.arrivals)

    def start(self) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/ct.js":
                    self.answer(200, site.snippet or snippet_source(), "text/javascript")
                elif parts.path == "/ctc.js":
                    self.answer(200, snippet_source("ctc.js"), "text/javascript")
                elif parts.path == "/order":
                    self.answer(200, site.order_page(parse_qs(parts.query)), "text/html")
                elif parts.path == "/shop":
                    self.answer(200, site.shop_page(parse_qs(parts.query)), "text/html")
                elif parts.path.startswith("/landing/"):
                    site.arrivals.append((parts.path, time.time()))
                    self.answer(200, b"<!doctype html><title>landed</title><p>landed", "text/html")
                else:
                    self.answer(404, b"not found", "text/plain")

            def answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.send_header("cache-control", "no-cache")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def shop_page(self, query: dict[str, list[str]]) -> bytes:
        def get(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        list_id = get("list_id", "list-1")
        gap = int(get("gap", "0"))
        blank = get("blank", "1") == "1"
        links = []
        for position in range(1, int(get("links", "4")) + 1):
            item = f"{list_id}-book-{position}"
            token = html.escape(self.mint(item, position))
            ping = f' ping="{html.escape(get("ping"))}?t={token}"' if get("ping") else ""
            href = f"{get('landing') or self.destination}/landing/{item}"
            row = f'<p style="margin-top:{gap}px"><a id="same-{position}" data-ct="{token}"'
            row += f' href="{href}"{ping}>Book {position}</a>'
            if blank:
                row += f' <a id="blank-{position}" data-ct="{token}" href="{href}-blank"'
                row += f' target="_blank"{ping}>(new tab)</a>'
            links.append(row)
        snippet = ""
        if get("endpoints"):
            options = "".join(f" data-{name}" for name in ("gpc",) if get(name) == "1")
            snippet = (
                f'<script async src="/ct.js" data-endpoints="{html.escape(get("endpoints"))}"'
                f"{options}></script>"
            )
        forget = ""
        if get("forget") == "1":
            forget = "<script>localStorage.removeItem('clickthru')</script>"
        page = (
            "<!doctype html><meta charset=utf-8><title>shop</title>"
            f"{CLICK_CLOCK}{forget}{snippet}<h1>Books</h1>{''.join(links)}"
        )
        return page.encode()

    def order_page(self, query: dict[str, list[str]]) -> bytes:
        """An order confirmation page: the order marked up for ctc.js, then ct.js."""
        order = {
            "order": query["order"][0],
            "value": float(query.get("value", ["23.50"])[0]),
            "currency": query.get("currency", ["GBP"])[0],
            "items": query.get("item", []),
        }
        endpoints = html.escape(query["endpoints"][0])
        markup = json.dumps(order).replace("<", "\\u003c")
        gpc = " data-gpc" if query.get("gpc") == ["1"] else ""
        page = (
            "<!doctype html><meta charset=utf-8><title>thank you</title>"
            f'<script type="application/json" data-ct-conversion>{markup}</script>'
            f'<script src="/ctc.js"{gpc}></script>'
            f'<script async src="/ct.js" data-endpoints="{endpoints}"{gpc}></script>'
            "<h1>Thank you for your order</h1>"
        )
        return page.encode()

    def order_url(
        self, endpoints: str, order: str, items: list[str], value: float = 23.5, gpc: bool = False
    ) -> str:
        query = urlencode([("endpoints", endpoints), ("order", order), ("value", value),
                           ("gpc", int(gpc)), *(("item", item) for item in items)])  # fmt: skip
        return f"{self.origin}/order?{query}"
