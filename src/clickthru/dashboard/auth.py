"""Who is asking, and what they may see.

A browser signs in with a name and password and gets a session cookie (HttpOnly,
SameSite=Lax; Secure when ``secure_cookies`` is set). Its forms carry the session's CSRF
token; the sign-in form, before there is a session, a double-submit cookie. Scripts use
``Authorization: Bearer ctr_...``, a read-only key. Nothing here is needed by the
collector's public endpoints.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from clickthru.access import Access, Session, User
from clickthru.proxies import TrustedProxies

MAX_FORM_BYTES = 4096
MAX_FORM_FIELDS = 10
SESSION_COOKIE = "ct_session"
SIGN_IN_COOKIE = "ct_sign_in"  # the double-submit CSRF token of the sign-in form
PREFIX = "/dashboard"
# Every dashboard answer: no framing, no inline script, nothing cached, no referrer leaks.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in person (with a session) or a script (with a read key)."""

    user: User
    session: Session | None
    token: str | None = None


class Gate:
    def __init__(self, access: Access, secure_cookies: bool) -> None:
        self.access = access
        self.secure = secure_cookies

    async def visitor(self, request: Request) -> Visitor | None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            user = await run_in_threadpool(self.access.key_user, auth[7:].strip())
            return Visitor(user, None) if user else None
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        session = await run_in_threadpool(self.access.session, token)
        return Visitor(session.user, session, token) if session else None

    def csrf_ok(self, visitor: Visitor, sent: str | None) -> bool:
        expected = visitor.session.csrf if visitor.session else ""
        # As bytes: compare_digest refuses str with anything but ASCII in it.
        return bool(sent and expected) and hmac.compare_digest(
            expected.encode(), (sent or "").encode()
        )

    def to_sign_in(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target)}", 303)

    def sign_in_token(self, request: Request) -> str:
        return request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(24)

    def set_sign_in_token(self, response: Response, token: str) -> None:
        response.set_cookie(
            SIGN_IN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure,
            path=PREFIX, max_age=3600,
        )  # fmt: skip

    def set_session(self, response: Response, token: str, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE, token, httponly=True, samesite="lax", secure=self.secure, path="/",
            max_age=session.expires_at // 1000 - int(time.time()),
        )  # fmt: skip
        response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a small urlencoded form (sign-in, sign-out); nothing else is posted.
    A bigger body, or one with more fields, is no form of ours: it reads as empty, unread
    past MAX_FORM_BYTES."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        return dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS))
    except ValueError:  # more fields than that
        return {}


def client_address(request: Request, proxies: TrustedProxies) -> str:
    """The client's address; behind a trusted proxy, the one it saw (``proxies.py``)."""
    peer = request.client.host if request.client else ""
    headers = request.headers
    return proxies.client(peer, headers.get("x-forwarded-for"), headers.get("forwarded"))


# A dashboard page and its filters, in characters no browser reads as another host or as
# a step up the path (no "//", "\\", ".." or "%2e"): never an open redirect.
SAFE_NEXT = re.compile(rf"{PREFIX}/[a-z-]*(?:\?[A-Za-z0-9_.~%&=+:,-]*)?", re.ASCII)


_ENCODED_STEPS = frozenset({"%2e", "%2f", "%5c"})  # ".", "/" and "\\", percent-encoded


def _escapes(target: str) -> set[str]:
    return set(re.findall(r"%..", target.lower()))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard page as asked, else the overview."""
    if target and SAFE_NEXT.fullmatch(target) and not _ENCODED_STEPS & _escapes(target):
        return target
    return f"{PREFIX}/"
