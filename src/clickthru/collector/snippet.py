"""``GET /ct.js``: the snippet, with an ETag, caching and gzip prepared once; and
``GET /ctc.js``, its conversion reader for order confirmation pages."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources

from clickthru.collector.asgi import (
    CORS,
    Receive,
    Scope,
    Send,
    header,
    method_not_allowed,
    respond,
)

# An hour: a fix reaches every page soon, while most page views hit the browser cache.
CACHE_CONTROL = b"public, max-age=3600"


def snippet_source(name: str = "ct.js") -> bytes:
    return (resources.files("clickthru.snippet") / name).read_bytes()


class Snippet:
    def __init__(self, source: bytes | None = None) -> None:
        self.plain = snippet_source() if source is None else source
        self.gzipped = gzip.compress(self.plain, compresslevel=9, mtime=0)
        self.etag = b'"' + hashlib.sha256(self.plain).hexdigest()[:20].encode() + b'"'
        self.headers = [
            (b"content-type", b"text/javascript; charset=utf-8"),
            (b"cache-control", CACHE_CONTROL),
            (b"etag", self.etag),
            (b"vary", b"accept-encoding"),
            *CORS,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await method_not_allowed(send, "GET", "HEAD")
            return
        if header(scope, b"if-none-match") == self.etag:
            await respond(send, 304, b"", self.headers)
            return
        if b"gzip" in (header(scope, b"accept-encoding") or b""):
            await respond(send, 200, self.gzipped, [*self.headers, (b"content-encoding", b"gzip")])
        else:
            await respond(send, 200, self.plain, self.headers)
