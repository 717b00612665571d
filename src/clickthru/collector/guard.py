"""The collector's outermost layer: every request is bounded before a route reads it, and
an exception no route expected is logged with its traceback and answered with a plain
``500`` that says nothing about the inside, once, and only if no answer has started."""

from __future__ import annotations

import http
import logging
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from clickthru import params
from clickthru.answers import Refusal, json_response
from clickthru.collector.asgi import Message, Receive, Scope, Send, error, header
from clickthru.collector.metrics import UNEXPECTED
from clickthru.dashboard import auth

# Off the intake paths nothing takes a body but the sign-in and sign-out forms.
MAX_FORM_BYTES: Final = auth.MAX_FORM_BYTES

log = logging.getLogger(__name__)


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None without one; a value no body could have
    (not ASCII digits, or more digits than any real length) counts as huge."""
    value = header(scope, b"content-length")
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        return 2**63
    return int(value)


async def guarded(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app``; an exception it lets out is logged and, while nothing has been sent
    yet, answered ``500 internal_error``. After an answer has started nothing more can be
    said: the server closes the connection."""
    started = False

    async def tracked(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await app(scope, receive, tracked)
    except ClientDisconnect:  # gone (or cut off for being slow) mid-request: no one to answer
        return
    except Exception:
        log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
        UNEXPECTED.inc()
        if not started:
            await error(send, 500, "internal_error", "the collector failed; it is logged")


class Bounded:
    """Refuses, before the route sees it, a request whose query string is over the limits
    or whose declared body is bigger than a form (the intake paths bound their own, and
    record what they refuse)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            params.check_query(scope.get("query_string", b""))
        except params.QueryTooBig as refused:
            await error(send, refused.status, refused.reason, refused.detail)
            return
        length = declared_length(scope)
        if length is not None and length > MAX_FORM_BYTES:
            detail = f"the body may be at most {MAX_FORM_BYTES} bytes"
            await error(send, 413, "body_too_large", detail)
            return
        await self.app(scope, receive, send)


async def internal_error(request: Request, exc: Exception) -> Response:
    """Starlette's answer to an exception in a route (the traceback is logged by
    ``guarded``, which the exception reaches next)."""
    return json_response(Refusal("internal_error", "the collector failed; it is logged"), 500)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, wrong method) as JSON reasons too."""
    assert isinstance(exc, HTTPException)
    reason = http.HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    return json_response(Refusal(reason, exc.detail), exc.status_code, exc.headers)


EXCEPTION_HANDLERS: dict[Any, Any] = {HTTPException: http_error, Exception: internal_error}
