"""The dashboard's routes: sign-in, the report pages, the API and the static files."""

from __future__ import annotations

import math
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from clickthru.backend import Store
from clickthru.clock import DAY_MS, day_of, parse_moment
from clickthru.dashboard import pages
from clickthru.dashboard.api import Refused, ReportsAPI, build_query, visible_sites
from clickthru.dashboard.auth import (
    PREFIX,
    SECURITY_HEADERS,
    Gate,
    client_address,
    form_fields,
    safe_next,
)
from clickthru.dashboard.erasure import SiteErasure
from clickthru.dashboard.throttle import SignInThrottle
from clickthru.proxies import TrustedProxies
from clickthru.reports import Query, Reports

PAGES = ("overview", "placements", "items", "positions", "experiments", "health")
TOP_ITEMS = 20


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status, headers=SECURITY_HEADERS)


class Dashboard:
    def __init__(
        self, store: Store, secure_cookies: bool, proxies: TrustedProxies | None = None
    ) -> None:
        self.store = store
        self.gate = Gate(store.access, secure_cookies)
        self.reports: Reports = store.reports
        self.api = ReportsAPI(store, self.gate)
        self.throttle = SignInThrottle()
        self.proxies = proxies or TrustedProxies([])

    def routes(self) -> list[BaseRoute]:
        static = StaticFiles(packages=[("clickthru.dashboard", "static")])
        return [
            Route(f"{PREFIX}/sign-in", self.sign_in, methods=["GET", "POST"]),
            Route(f"{PREFIX}/sign-out", self.sign_out, methods=["POST"]),
            Mount(f"{PREFIX}/static", static, name="static"),
            Route(
                f"{PREFIX}/erase-site",
                SiteErasure(self.store, self.gate).erase_site,
                methods=["POST"],
            ),
            Route(f"{PREFIX}/", self.page),
            Route(PREFIX, lambda request: RedirectResponse(f"{PREFIX}/", 308)),
            Route(f"{PREFIX}/{{page}}", self.page),
            Route("/api/v1/{name}", self.api.handle),
        ]

    async def sign_in(self, request: Request) -> Response:
        token = self.gate.sign_in_token(request)
        error = None
        next_url = safe_next(request.query_params.get("next"))
        if request.method == "POST":
            form = await form_fields(request)
            next_url = safe_next(str(form.get("next", "")))
            sent = str(form.get("csrf", ""))
            if not sent or sent != request.cookies.get("ct_sign_in"):
                error = "The form expired; please sign in again."
            else:
                name = str(form.get("name", ""))
                address = client_address(request, self.proxies)
                wait = self.throttle.retry_after(name, address)
                if wait is not None:
                    return self._too_many_attempts(token, next_url, wait)
                self.throttle.started(address)
                user = None
                try:
                    user = await run_in_threadpool(
                        self.store.access.check_password, name, str(form.get("password", ""))
                    )
                finally:
                    self.throttle.finished(name, succeeded=user is not None)
                if user is None:
                    error = "Wrong name or password."
                else:
                    session_token, session = await run_in_threadpool(
                        self.store.access.start_session, user
                    )
                    response = RedirectResponse(next_url, 303, headers=SECURITY_HEADERS)
                    self.gate.set_session(response, session_token, session)
                    return response
        form_page = html(pages.render_sign_in(error, token, next_url), 400 if error else 200)
        self.gate.set_sign_in_token(form_page, token)
        return form_page

    def _too_many_attempts(self, token: str, next_url: str, wait: int) -> Response:
        later = f"{math.ceil(wait / 60)} minutes" if wait > 90 else f"{wait} seconds"
        error = f"Too many sign-in attempts; please try again in {later}."
        page = html(pages.render_sign_in(error, token, next_url), 429)
        page.headers["retry-after"] = str(wait)
        self.gate.set_sign_in_token(page, token)
        return page

    async def sign_out(self, request: Request) -> Response:
        visitor = await self.gate.visitor(request)
        form = await form_fields(request)
        if visitor is None or visitor.token is None:
            return self.gate.to_sign_in(request)
        if not self.gate.csrf_ok(visitor, str(form.get("csrf", ""))):
            return html(pages.render_error(403, "The form expired; reload the page."), 403)
        await run_in_threadpool(self.store.access.end_session, visitor.token)
        response = RedirectResponse(f"{PREFIX}/sign-in", 303, headers=SECURITY_HEADERS)
        self.gate.clear_session(response)
        return response

    async def page(self, request: Request) -> Response:
        name = request.path_params.get("page", "overview")
        if name not in PAGES:
            return html(pages.render_error(404, "No such page."), 404)
        visitor = await self.gate.visitor(request)
        if visitor is None or visitor.session is None:
            return self.gate.to_sign_in(request)
        sites = await run_in_threadpool(visible_sites, self.store, visitor)
        if not sites:
            return html(pages.render_error(403, "No site is shared with you yet."), 403)
        params = request.query_params
        chosen = params.get("site") or sites[0]
        until = params.get("until")
        try:
            if until and len(until) == 10:  # a date from the form: the whole day counts
                until = day_of(parse_moment(until) + DAY_MS)
            query = build_query(
                visitor, sites, [chosen], params.get("since"), until, params.get("bots")
            )
        except ValueError as error:
            return html(pages.render_error(400, str(error)), 400)
        except Refused as refused:
            return html(pages.render_error(refused.status, refused.detail), refused.status)
        data = await run_in_threadpool(self._data, name, query)
        freshness = await run_in_threadpool(self.reports.freshness)
        body = pages.render_page(
            name,
            user=visitor.user.name,
            is_operator=visitor.user.operator,
            sites=sites,
            site=chosen,
            since=day_of(query.since_ms),
            until=day_of(query.until_ms - 1),
            bots=query.bots,
            csrf_token=visitor.session.csrf,
            data=data,
            counted_until=freshness.counted_until,
        )
        return html(body)

    def _data(self, name: str, query: Query) -> dict[str, Any]:
        reports = self.reports
        if name == "overview":
            return {
                "totals": reports.totals(query),
                "series": reports.grouped(query, "day"),
                "latest": reports.latest_clicks(query, 20),
            }
        if name == "health":
            return {"health": reports.health(query)}
        if name == "experiments":
            return {"experiment": reports.experiment(query)}
        grouping = {"placements": "placement", "items": "item", "positions": "position"}[name]
        limit = TOP_ITEMS if name == "items" else None
        return {"rows": reports.grouped(query, grouping, limit)}  # type: ignore[arg-type]
