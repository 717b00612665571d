"""A faulty network endpoint for browser tests: a fixed 127.0.0.1 port in front of a real
upstream HTTP server, switchable at any time between being up, slow, hanging, answering 500,
refusing connections and dropping SYNs.

    with FaultyEndpoint(collector.port) as endpoint:
        page.goto(shop_url_using(endpoint.url))
        endpoint.set_mode("drop")
        ...

Connections already open when the mode changes follow the new mode as far as TCP allows:
proxied connections keep flowing between "up" and "slow", go silent (held open, nothing
forwarded) in "hang" and "drop", as behind a firewall, and are closed in "error" and "refuse".
Held connections are closed as soon as the mode is neither "hang" nor "drop", so browsers see a
failure and free their connection slots.

Every request a client sends through it is logged (`requests`): when its head arrived, the mode
then in force, its path and body, so a test can count what a browser sent and when.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, cast

Mode = Literal["up", "slow", "hang", "error", "refuse", "drop"]
MODES: tuple[Mode, ...] = ("up", "slow", "hang", "error", "refuse", "drop")

_Kind = Literal["proxy", "held", "error"]
# What a connection accepted in each mode does; None: no listener that accepts in that mode.
_KIND: dict[Mode, _Kind | None] = {
    "up": "proxy",
    "slow": "proxy",
    "hang": "held",
    "error": "error",
    "refuse": None,
    "drop": "held",
}

HOST = "127.0.0.1"
ERROR_BODY = b'{"error":"internal"}'
ERROR_RESPONSE = (
    b"HTTP/1.1 500 Internal Server Error\r\n"
    b"content-type: application/json\r\n"
    b"access-control-allow-origin: *\r\n"
    b"content-length: " + str(len(ERROR_BODY)).encode() + b"\r\n"
    b"connection: close\r\n"
    b"\r\n" + ERROR_BODY
)
MAX_HEAD = 64 * 1024
FILL_CONNECT_TIMEOUT = 0.2  # a filler connect slower than this means SYNs are being dropped
MAX_FILLERS = 64
CALL_TIMEOUT = 10.0  # for calls from the test thread into the loop


@dataclass(frozen=True)
class Request:
    """One request as the endpoint read it."""

    at: float  # time.time() when its head had arrived
    mode: Mode  # in force then: "up" and "slow" reached the upstream server
    path: str
    body: bytes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class FaultyEndpoint:
    """A TCP endpoint on 127.0.0.1:`port` whose behaviour the test switches with `set_mode`.

    Runs its own asyncio loop in a daemon thread; every public method is called from the test's
    thread. Modes:

    - "up": a transparent TCP proxy to 127.0.0.1:`upstream_port`.
    - "slow": the same, with every upstream chunk held back `slow_seconds` from its arrival.
    - "hang": accepts and reads, never answers, never closes.
    - "error": reads each request, answers 500 with a small JSON body and CORS, closes.
    - "refuse": nothing listens: connects fail with ECONNREFUSED.
    - "drop": connects get no answer at all (the kernel drops the SYNs), as behind a firewall.
    """

    def __init__(
        self, upstream_port: int, port: int | None = None, *, slow_seconds: float = 3.0
    ) -> None:
        self.upstream_port = upstream_port
        self.port: int = _free_port() if port is None else port
        self.url: str = f"http://{HOST}:{self.port}"
        self.slow_seconds = slow_seconds  # read per chunk, so changing it takes effect at once
        self._mode: Mode = "up"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Only touched from the loop's thread.
        self._lock: asyncio.Lock | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._drop_listener: socket.socket | None = None
        self._fillers: list[socket.socket] = []
        self.requests: list[Request] = []  # appended from the loop's thread

    @property
    def mode(self) -> Mode:
        return self._mode

    def start(self) -> None:
        """Listen in mode "up"; returns once connects are accepted."""
        if self._thread is not None:
            raise RuntimeError("FaultyEndpoint already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._mode = "up"
        self._thread = threading.Thread(
            target=self._run, name=f"FaultyEndpoint:{self.port}", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._open())
        except BaseException:
            self.stop()
            raise

    def set_mode(self, mode: Mode) -> None:
        """Switch to `mode`; returns once the new mode is in force for new connections."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}, expected one of {', '.join(MODES)}")
        if self._loop is None:
            raise RuntimeError("FaultyEndpoint not started")
        self._call(self._switch(mode))

    def stop(self) -> None:
        """Close every socket and end the loop's thread; the port is free afterwards."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if thread.is_alive():
                self._call(self._close_everything())
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
            thread.join(CALL_TIMEOUT)
            self._loop = self._thread = None

    def __enter__(self) -> FaultyEndpoint:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FaultyEndpoint({self.url} -> :{self.upstream_port}, mode={self._mode!r})"

    # The loop's thread.

    def _call(self, coro: Coroutine[object, object, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT)

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _open(self) -> None:
        self._lock = asyncio.Lock()
        self._server = await self._serve()

    async def _switch(self, mode: Mode) -> None:
        assert self._lock is not None
        async with self._lock:
            if mode == self._mode:
                return
            self._mode = mode
            for client in list(self._clients):
                client.switch(_KIND[mode])
            if mode != "drop":
                self._undrop()
            if _KIND[mode] is None or mode == "drop":
                if self._server is not None:
                    # Closes the listening socket at once (no wait_closed: it waits for held
                    # connections on Python 3.12+).
                    self._server.close()
                    self._server = None
            elif self._server is None:
                self._server = await self._serve()
            if mode == "drop" and self._drop_listener is None:
                await self._drop()

    async def _close_everything(self) -> None:
        for client in list(self._clients):
            client.transport.abort()
        if self._server is not None:
            self._server.close()
            self._server = None
        self._undrop()
        # Let the transports' connection_lost callbacks run, so their sockets are closed
        # before the loop is.
        for _ in range(3):
            await asyncio.sleep(0)

    async def _bind(self, backlog: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Same port again and again, while old connections on it linger in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, self.port))
                sock.listen(backlog)
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            sock.setblocking(False)
            return sock

    async def _serve(self) -> asyncio.Server:
        sock = await self._bind(backlog=128)
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _Client(self), sock=sock)

    async def _drop(self) -> None:
        # Linux drops a SYN, with no answer, when the listener's accept queue is full. listen(0)
        # leaves room for one connection; nobody ever accepts, and our own connections fill it.
        listener = await self._bind(backlog=0)
        self._drop_listener = listener
        loop = asyncio.get_running_loop()
        for _ in range(MAX_FILLERS):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            self._fillers.append(filler)  # kept, also when its connect hangs: closed on leaving
            try:
                await asyncio.wait_for(
                    loop.sock_connect(filler, (HOST, self.port)), FILL_CONNECT_TIMEOUT
                )
            except TimeoutError:
                return  # SYNs are dropped now
        self._undrop()
        raise RuntimeError(
            f"{MAX_FILLERS} connections to a listen(0) socket all completed: this kernel does not"
            " drop SYNs on a full accept queue, so mode 'drop' cannot work here"
        )

    def _undrop(self) -> None:
        # The listener first: its queued connections are reset rather than left half-open.
        if self._drop_listener is not None:
            self._drop_listener.close()
            self._drop_listener = None
        for filler in self._fillers:
            filler.close()
        self._fillers.clear()


class _Client(asyncio.Protocol):
    """One accepted connection; what it does follows `kind`, which a mode switch may change."""

    def __init__(self, endpoint: FaultyEndpoint) -> None:
        self.endpoint = endpoint
        self.kind: _Kind = "held"
        self.transport: asyncio.Transport = cast(asyncio.Transport, None)
        self.request = bytearray()  # "error": the request read so far
        self.unlogged = bytearray()  # what the client sent that is not in the log yet
        self.logged_head: tuple[float, Mode, str, int] | None = None  # when, mode, path, length
        # "proxy": the upstream connection, what the client sent before it was up, and the
        # chunks for the client that wait for their time, in order (None: upstream closed).
        self.upstream: asyncio.Transport | None = None
        self.upstream_protocol: _Upstream | None = None
        self.connecting: asyncio.Task[tuple[asyncio.Transport, _Upstream]] | None = None
        self.early: list[bytes] = []
        self.early_eof = False
        self.due: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        kind = _KIND[self.endpoint._mode]
        if kind is None:
            # Accepted by the kernel just before the listener closed.
            self.transport.abort()
            return
        self.kind = kind
        self.endpoint._clients.add(self)
        if kind == "proxy":
            self._connect_upstream()

    def connection_lost(self, exc: Exception | None) -> None:
        self.endpoint._clients.discard(self)
        self._unproxy()

    def data_received(self, data: bytes) -> None:
        self._log(data)
        if self.kind == "proxy":
            if self.upstream is not None:
                self.upstream.write(data)
            else:
                self.early.append(data)
        elif self.kind == "error":
            self.request += data
            self._answer_error_when_read()
        # "held": read and forgotten.

    def eof_received(self) -> bool:
        if self.kind != "proxy":
            return False  # the client is gone: close
        if self.upstream is None:
            self.early_eof = True
        elif self.upstream.can_write_eof():
            self.upstream.write_eof()
        return True  # half-closed: the answer may still come

    # Flow control: a slow reader on one side pauses reading from the other.
    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    def switch(self, kind: _Kind | None) -> None:
        if self.transport.is_closing() or kind == self.kind:
            return
        if self.kind == "proxy" and kind == "held":
            self._unproxy()  # silent from now on, as behind a firewall
            self.kind = "held"
            self.transport.resume_reading()
        else:
            self.transport.close()

    def _connect_upstream(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = _Upstream(self)
        self.upstream_protocol = protocol
        self.connecting = loop.create_task(
            loop.create_connection(lambda: protocol, HOST, self.endpoint.upstream_port)
        )
        self.connecting.add_done_callback(self._upstream_connected)

    def _upstream_connected(self, task: asyncio.Task[tuple[asyncio.Transport, _Upstream]]) -> None:
        self.connecting = None
        if task.cancelled():
            return
        if task.exception() is not None:
            self.transport.close()  # no upstream: the client sees the connection close
            return
        upstream, _ = task.result()
        if self.kind != "proxy" or self.transport.is_closing():
            upstream.close()
            return
        self.upstream = upstream
        for data in self.early:
            upstream.write(data)
        self.early.clear()
        if self.early_eof and upstream.can_write_eof():
            upstream.write_eof()

    def _unproxy(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        if self.upstream_protocol is not None:
            self.upstream_protocol.client = None  # its connection_lost must not reach us
            self.upstream_protocol = None
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.due.clear()
        self.early.clear()

    def deliver(self, data: bytes | None) -> None:
        """A chunk from upstream (None: upstream closed), for the client when its time comes."""
        loop = asyncio.get_running_loop()
        delay = self.endpoint.slow_seconds if self.endpoint._mode == "slow" else 0.0
        self.due.append((loop.time() + delay, data))
        if self.timer is None:
            self._flush()

    def _flush(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        while self.due:
            when, data = self.due[0]
            if when > loop.time():
                # Later chunks wait behind this one, whatever their own time: order is kept.
                self.timer = loop.call_at(when, self._flush)
                return
            self.due.popleft()
            if data is None:
                self.transport.close()
                return
            self.transport.write(data)

    def _log(self, data: bytes) -> None:
        """Cuts what the client sends into requests (Content-Length bodies) for the log."""
        self.unlogged += data
        while True:
            if self.logged_head is None:
                head_end = self.unlogged.find(b"\r\n\r\n")
                if head_end < 0:
                    if len(self.unlogged) > MAX_HEAD:
                        self.unlogged.clear()
                    return
                head = bytes(self.unlogged[:head_end]).decode("latin-1").split("\r\n")
                length = 0
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length" and value.strip().isdigit():
                        length = int(value.strip())
                path = head[0].split(" ")[1] if head[0].count(" ") >= 2 else ""
                self.logged_head = (time.time(), self.endpoint._mode, path, length)
                del self.unlogged[: head_end + 4]
            at, mode, path, length = self.logged_head
            if len(self.unlogged) < length:
                return
            self.endpoint.requests.append(Request(at, mode, path, bytes(self.unlogged[:length])))
            del self.unlogged[:length]
            self.logged_head = None

    def _answer_error_when_read(self) -> None:
        head_end = self.request.find(b"\r\n\r\n")
        if head_end < 0:
            if len(self.request) > MAX_HEAD:
                self.transport.close()
            return
        length = 0
        for line in bytes(self.request[:head_end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    self.transport.close()
                    return
        # The whole body first: closing with unread data would reset the connection, and the
        # client could lose the answer.
        if len(self.request) < head_end + 4 + length:
            return
        self.transport.write(ERROR_RESPONSE)
        self.transport.close()
        self.request.clear()


class _Upstream(asyncio.Protocol):
    """The proxy's connection to the upstream server, for one client connection."""

    def __init__(self, client: _Client) -> None:
        self.client: _Client | None = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.client is not None:
            self.client.deliver(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None:
            self.client.deliver(None)
            self.client.upstream = None
            self.client.upstream_protocol = None
            self.client = None

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.transport.resume_reading()
