"""The ways an event arrives, as raw ASGI endpoints.

- ``POST /e``: beacons, fetches and server-to-server batches (JSON, one or an array).
- ``GET /e?...``: the image fallback, the event in the query string (``GET /p.gif?...``
  too, for snippets cached before it moved).
- ``POST /ping?t=TOKEN``: the HTML ``<a ping>`` attribute, for pages without JavaScript.

Each answers only after the store has committed what it accepted.
"""

from __future__ import annotations

import base64
import itertools
import logging
import re
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import msgspec

from clickthru import params
from clickthru.answers import Acknowledgement, RejectedEvent
from clickthru.collector import metrics
from clickthru.collector.asgi import (
    CORS,
    NO_STORE,
    BodyTooLarge,
    Disconnected,
    Headers,
    Receive,
    Scope,
    Send,
    error,
    header,
    header_text,
    method_not_allowed,
    read_body,
    respond,
    respond_json,
)
from clickthru.collector.guard import declared_length
from clickthru.collector.intake import Intake, Judged, Sender
from clickthru.config import Settings
from clickthru.events import IncomingEvent, new_event_id
from clickthru.proxies import TrustedProxies
from clickthru.store.rows import WriteResult
from clickthru.store.sink import Sink

log = logging.getLogger(__name__)

Response = tuple[int, bytes, Headers]  # status, body, headers

READABLE_TYPES = frozenset({b"", b"text/plain", b"application/json"})
PREFLIGHT = [
    *CORS,
    (b"access-control-allow-methods", b"POST"),
    (b"access-control-allow-headers", b"content-type"),
    (b"access-control-max-age", b"86400"),
]
# A browser says how it sent a request: a beacon with a text body goes no-cors, a fetch
# the snippet reads the answer of goes cors. The snippet saves its bytes by not saying.
FETCH_MODES = {b"cors": "fetch", b"no-cors": "beacon"}
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
GIF_HEADERS = [(b"content-type", b"image/gif"), *NO_STORE, *CORS]
PING_HEADERS = [*NO_STORE, *CORS]

PING_BODY_BYTES = 1024  # "PING"; nothing in it is read
# Events are objects in an array: JSON nested deeper than this is no batch of events, and
# is refused before it is decoded into Python objects (msgspec recurses per level).
MAX_JSON_DEPTH: Final = 32

_decode = msgspec.json.decode
# The common case in one pass: valid events straight into structs. Anything else falls
# back to a generic decode, so each event gets its own verdict. (Fields the schema does
# not know are skipped, not built; past Python's recursion limit that raises RecursionError.)
_decode_events = msgspec.json.Decoder(IncomingEvent | list[IncomingEvent]).decode
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_DEPTH_STEP = [1 if byte in b"[{" else -1 for byte in range(256)]


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets in strings not counted)."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


class Receiver:
    """What the three endpoints share: who sent it, judging, storing, counting."""

    def __init__(
        self, intake: Intake, sink: Sink, settings: Settings, proxies: TrustedProxies
    ) -> None:
        self.intake = intake
        self.sink = sink
        self.settings = settings
        self.proxies = proxies

    def sender(self, scope: Scope) -> Sender:
        raw_origin = header(scope, b"origin")
        origin = raw_origin.decode("latin-1") if raw_origin and raw_origin != b"null" else None
        if origin is None:
            # Image requests carry no Origin; the Referer's origin is the next best thing.
            referer = header(scope, b"referer")
            origin = _origin_of(referer.decode("latin-1")) if referer else None
        client = scope.get("client")
        ip = self.proxies.client(
            client[0] if client else "",
            header_text(scope, b"x-forwarded-for"),
            header_text(scope, b"forwarded"),
        )
        auth = header(scope, b"authorization")
        api_key = auth[7:].decode("latin-1") if auth and auth[:7].lower() == b"bearer " else None
        return Sender(
            origin,
            (header(scope, b"user-agent") or b"").decode("latin-1"),
            ip,
            api_key,
            FETCH_MODES.get(header(scope, b"sec-fetch-mode") or b""),
        )

    async def store_judged(self, send: Send, judged: Judged) -> WriteResult | None:
        """Commit and count; None once a 503 is answered (nothing stored, send again)."""
        try:
            result = await self.sink.write(judged.batch)
        except Exception as exc:
            log.error("store write failed: %s", exc)
            await error(send, 503, "store_unavailable", "not stored; send again later")
            return None
        metrics.ACCEPTED.inc(result.accepted)
        if result.duplicates:
            metrics.DUPLICATES.inc(result.duplicates)
        for rejection in judged.rejections:
            metrics.REJECTED.labels(rejection.reason).inc()
        return result

    async def store_one(
        self, send: Send, event: dict[str, Any], sender: Sender, via: str, stored: Response
    ) -> None:
        """One event from a request that cannot carry a JSON answer (image, ping): the
        ``stored`` answer once committed (or a duplicate), else the refusal's reason."""
        judged = self.intake.judge([event], sender, via=via)
        if await self.store_judged(send, judged) is None:
            return
        if judged.rejections:
            rejection = judged.rejections[0]
            await error(send, 400, rejection.reason, rejection.detail)
            return
        await respond(send, *stored)

    async def read_query(self, send: Send, scope: Scope, sender: Sender) -> dict[str, str] | None:
        """The query string's fields (the last of a repeated name); None once refused."""
        raw: bytes = scope["query_string"]
        try:
            params.check_query(raw)
        except params.QueryTooBig as refused:
            await self.refuse_request(send, sender, refused.status, refused.reason, refused.detail)
            return None
        return dict(parse_qsl(raw.decode("latin-1")))

    async def refuse_request(
        self, send: Send, sender: Sender, status: int, reason: str, detail: str, raw: bytes = b""
    ) -> None:
        """A request that cannot be read at all: recorded, counted, answered clearly."""
        metrics.REJECTED.labels(reason).inc()
        try:
            await self.sink.write(self.intake.reject_request(reason, detail, sender, raw))
        except Exception as exc:  # the refusal itself is what matters to the client
            log.warning("could not record refused request: %s", exc)
        await error(send, status, reason, detail)


class Pixel(Receiver):
    """``GET /p.gif?id=...&kind=click&token=...``: answers a 1x1 GIF once stored."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":  # not HEAD: a prefetcher's probe is not a click
            await method_not_allowed(send, "GET")
            return
        await self.pixel(scope, send)

    async def pixel(self, scope: Scope, send: Send) -> None:
        sender = self.sender(scope)
        query = await self.read_query(send, scope, sender)
        if query is not None:
            await self.store_one(send, query, sender, "img", (200, GIF, GIF_HEADERS))


class Beacon(Pixel):
    """``POST /e``; and ``GET /e?id=...``, the image fallback under a name that blocklists'
    image rules (``/p.gif?``, ``.gif``) do not match."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "OPTIONS":
            await respond(send, 204, b"", PREFLIGHT)
            return
        if method == "GET":
            await self.pixel(scope, send)
            return
        if method != "POST":
            await method_not_allowed(send, "POST", "GET", "OPTIONS")
            return
        sender = self.sender(scope)
        limit = self.settings.max_body_bytes
        content_type = (header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        if content_type not in READABLE_TYPES:
            await self.refuse_request(
                send, sender, 415, "unsupported_media_type", "send text/plain or application/json"
            )
            return
        too_large = f"the body may be at most {limit} bytes"
        if (declared_length(scope) or 0) > limit:  # refused unread
            await self.refuse_request(send, sender, 413, "body_too_large", too_large)
            return
        try:
            body = await read_body(receive, limit)
        except BodyTooLarge:
            await self.refuse_request(send, sender, 413, "body_too_large", too_large)
            return
        except Disconnected:
            return
        try:
            payload = _decode_events(body)
        except (msgspec.DecodeError, RecursionError):
            if json_depth(body) > MAX_JSON_DEPTH:
                detail = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
                await self.refuse_request(send, sender, 400, "invalid_json", detail, body)
                return
            try:
                payload = _decode(body)
            except msgspec.DecodeError as exc:
                await self.refuse_request(send, sender, 400, "invalid_json", str(exc), body)
                return
        if isinstance(payload, dict | IncomingEvent):
            items: list[Any] = [payload]
        elif isinstance(payload, list) and payload:
            items = payload
        else:
            await self.refuse_request(
                send, sender, 400, "not_an_event", "send an event object or an array of them", body
            )
            return
        most = self.settings.max_batch_events
        if len(items) > most:
            await self.refuse_request(
                send, sender, 413, "too_many_events", f"at most {most} events per request", body
            )
            return
        judged = self.intake.judge(items, sender)
        result = await self.store_judged(send, judged)
        if result is None:
            return
        rejected = [RejectedEvent(r.index, r.reason, r.detail or None) for r in judged.rejections]
        await respond_json(send, 200, Acknowledgement(result.accepted, result.duplicates, rejected))


class Ping(Receiver):
    """``POST /ping?t=TOKEN``, sent by the browser for ``<a ping>``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await method_not_allowed(send, "POST")
            return
        sender = self.sender(scope)
        try:
            if (declared_length(scope) or 0) > PING_BODY_BYTES:
                raise BodyTooLarge
            await read_body(receive, PING_BODY_BYTES)
        except BodyTooLarge:
            await self.refuse_request(send, sender, 413, "body_too_large", "a ping has no body")
            return
        except Disconnected:
            return
        query = await self.read_query(send, scope, sender)
        if query is None:
            return
        event = {
            "id": new_event_id(),  # a ping is sent once and never retried
            "kind": "click",
            "token": query.get("t", ""),
            "page": header_text(scope, b"ping-from"),
            "dest": header_text(scope, b"ping-to"),
        }
        await self.store_one(send, event, sender, "ping", (204, b"", PING_HEADERS))


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
