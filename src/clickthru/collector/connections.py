"""What uvicorn does not bound about a connection, bounded: the collector's HTTP protocol.

uvicorn (with httptools) closes a connection idle for ``timeout_keep_alive`` seconds after
an answer, and nothing else: a connection that never sends a request, or sends one a
header line every few seconds (slowloris), or a body a byte at a time, stays open for as
long as the client likes, and the headers of a request may grow without end. Its
``limit_concurrency`` answers 503 to everyone once enough connections are open, so slow
clients holding connections would lock out everyone else.

This protocol adds, per connection:

- a deadline: a request must have arrived whole (head and body) within
  ``request_timeout`` seconds of its first byte, or of the connection opening; else it is
  answered ``408`` (or, when nothing was sent, closed);
- a bound on the head: at most ``max_head_bytes`` and ``max_headers``, else ``431``;
- a bound on open connections per worker: past ``max_connections``, the connection that
  has waited longest without a request in progress (idle or slow) is closed to make room,
  so slow clients cannot starve quick ones;

and answers the requests httptools cannot parse with a JSON reason. Everything else is
uvicorn's ``HttpToolsProtocol``, which this extends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import resource
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from clickthru.answers import Refusal

FILES_KEPT: Final = 128  # file descriptors left for the store, logs and the like


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    request_timeout: float = 10.0
    max_head_bytes: int = 64 * 1024
    max_headers: int = 100
    max_connections: int = 10_000


class _HeadTooLarge(Exception):
    pass


# Per server: its connections with no request in progress (idle, or still receiving one),
# oldest first; the first of them is closed when the server is full.
_WAITING: weakref.WeakKeyDictionary[ServerState, OrderedDict[BoundedHttpProtocol, None]] = (
    weakref.WeakKeyDictionary()
)


def raise_open_files_limit() -> int:
    """Let the process open as many files as the system allows it (the soft limit is often
    1024, far below the hard one), and return how many connections fit beside the rest."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return max(soft - FILES_KEPT, 1)


def _answer(status: int, phrase: str, reason: str, detail: str) -> bytes:
    body = msgspec.json.encode(Refusal(reason, detail))
    return b"".join(
        [
            f"HTTP/1.1 {status} {phrase}\r\n".encode(),
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above. Made by ``protocol(limits)``."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.deadline: asyncio.TimerHandle | None = None
        self.in_head = False  # a request has begun and its headers are not all in yet
        self.head_bytes = 0  # of its URL and header lines, as parsed
        self.head_received = 0  # of what arrived while in its head
        self.refusal: bytes | None = None
        self.waiting = _WAITING.setdefault(self.server_state, OrderedDict())

    # -- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            self._close_with(
                _answer(503, "Service Unavailable", "busy", "too many connections; try again")
            )
            return
        self.waiting[self] = None
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.in_head and not self.transport.is_closing():
            # A line still incomplete is held by the parser, unseen by the callbacks below.
            self.head_received += len(data)
            if self.head_received > self.limits.max_head_bytes:
                self._close_with(self._too_large())

    # -- the parser's events -------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head, self.head_bytes, self.head_received = True, 0, 0
        self.waiting.pop(self, None)
        self.waiting[self] = None  # still waiting, but from now
        if self.deadline is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_head(len(name) + len(value) + 4, len(self.headers) > self.limits.max_headers)

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self.waiting.pop(self, None)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self.waiting[self] = None  # idle now: uvicorn's keep-alive timeout runs

    def send_400_response(self, msg: str) -> None:
        """What httptools cannot parse (or a head over the limits): a JSON reason."""
        self._close_with(
            self.refusal
            or _answer(400, "Bad Request", "bad_request", "not a valid HTTP/1.1 request")
        )

    # -- deadlines and room --------------------------------------------------------------

    def _arm(self) -> None:
        self.deadline = self.loop.call_later(self.limits.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expire(self) -> None:
        """The request did not arrive in time (or room is needed): answer what can be
        answered, then close."""
        self.deadline = None
        self.waiting.pop(self, None)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # an answer is on its way: it cannot be replaced
                self.transport.close()
                return
            # The route is still reading the body: from now on it reads a disconnect, and
            # whatever it sends is dropped (uvicorn's send ignores a disconnected cycle).
            cycle.disconnected = True
            cycle.message_event.set()
        elif not self.in_head:
            self.transport.close()  # nothing of a new request has arrived: nothing to answer
            return
        self._close_with(
            _answer(
                408,
                "Request Timeout",
                "request_timeout",
                f"a request must arrive whole within {self.limits.request_timeout:g} s",
            )
        )

    def _make_room(self) -> bool:
        """Close the connection that has waited longest with no request in progress."""
        for oldest in self.waiting:
            if oldest is not self:
                oldest._expire()
                return True
        return False

    def _count_head(self, size: int, too_many: bool = False) -> None:
        self.head_bytes += size
        if too_many or self.head_bytes > self.limits.max_head_bytes:
            self.refusal = self._too_large()
            raise _HeadTooLarge  # stops the parser, which has uvicorn call send_400_response

    def _too_large(self) -> bytes:
        detail = (
            f"a request's head is at most {self.limits.max_head_bytes} bytes"
            f" and {self.limits.max_headers} header lines"
        )
        return _answer(431, "Request Header Fields Too Large", "head_too_large", detail)

    def _close_with(self, answer: bytes) -> None:
        self._disarm()
        self.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


def protocol(limits: ConnectionLimits) -> Any:
    """What uvicorn's ``http`` option takes: a factory of connections with these limits
    (picklable, for worker processes)."""
    return functools.partial(BoundedHttpProtocol, limits=limits)
