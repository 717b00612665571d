"""The few raw-ASGI helpers the hot endpoints use instead of a framework's request and
response objects: a beacon is a few hundred bytes, and per-request object churn is
what limits a Python collector."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from clickthru.answers import Refusal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Headers = list[tuple[bytes, bytes]]

CORS: Headers = [(b"access-control-allow-origin", b"*")]
NO_STORE: Headers = [(b"cache-control", b"no-store")]


class BodyTooLarge(Exception):
    pass


class Disconnected(Exception):
    """The client went away before its request was read: there is no one to answer."""


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a header (names are lower-case in ASGI)."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def header_text(scope: Scope, name: bytes) -> str | None:
    value = header(scope, name)
    return value.decode("latin-1") if value is not None else None


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; raises BodyTooLarge past ``limit`` bytes, Disconnected when
    the client leaves (or is cut off for being too slow) before it has sent it all."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


_encode = msgspec.json.Encoder().encode


JSON_ANSWER: Headers = [(b"content-type", b"application/json"), *NO_STORE, *CORS]


async def respond_json(send: Send, status: int, data: Any) -> None:
    await respond(send, status, _encode(data), JSON_ANSWER)


async def error(
    send: Send, status: int, reason: str, detail: str | None = None, headers: Headers | None = None
) -> None:
    """A clear refusal: status plus a JSON reason."""
    await respond(send, status, _encode(Refusal(reason, detail)), [*JSON_ANSWER, *(headers or [])])


async def method_not_allowed(send: Send, *allowed: str) -> None:
    """``405``, with the ``Allow`` header that names the methods there are."""
    methods = ", ".join(allowed)
    await error(send, 405, "method_not_allowed", f"use {methods}", [(b"allow", methods.encode())])
