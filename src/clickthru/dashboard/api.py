"""``/api/v1``: the reports as JSON or CSV, and raw events as CSV or NDJSON, streamed.

Every answer is for the sites the caller may see: no credentials, 401; a site that is not
theirs, 403. Bad parameters get 400 with a JSON reason.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from clickthru import params
from clickthru.backend import Store
from clickthru.cells import inert_row
from clickthru.clock import now_ms, parse_moment
from clickthru.dashboard.auth import Gate, Visitor
from clickthru.reports import (
    COUNT_FIELDS,
    EXPORT_COLUMNS,
    GROUPINGS,
    Grouping,
    Query,
    Reports,
)

DEFAULT_SINCE = "7d"
MAX_LIMIT = 1000


class Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail

    def response(self) -> Response:
        return JSONResponse({"error": self.reason, "detail": self.detail}, self.status)


def visible_sites(store: Store, visitor: Visitor) -> list[str]:
    if visitor.user.operator:
        return [site.name for site in store.admin.sites()]
    return list(visitor.user.sites)


def build_query(
    visitor: Visitor,
    visible: list[str],
    asked: list[str],
    since_text: str | None,
    until_text: str | None,
    bots: str | None,
) -> Query:
    """The sites, range and bot switch a request asks for, checked against who asks and
    the sites they see (``visible_sites``, read once per request by the caller)."""
    for site in asked:
        if not visitor.user.may_see(site):
            raise Refused(403, "forbidden", f"no access to the site {site!r}")
        if site not in visible:
            raise Refused(404, "unknown_site", f"no site named {site!r}")
    try:
        since = parse_moment(since_text or DEFAULT_SINCE)
        until = parse_moment(until_text) if until_text else now_ms()
    except ValueError as error:
        raise Refused(400, "bad_parameter", str(error)) from None
    if since >= until:
        raise Refused(400, "bad_parameter", "since must be before until")
    bots = bots or "0"
    if bots not in ("0", "1", "true", "false"):
        raise Refused(400, "bad_parameter", "bots is 0 or 1")
    return Query(tuple(asked or visible), since, until, bots in ("1", "true"))


def csv_response(header: Sequence[str], rows: Iterator[Sequence[object]], name: str) -> Response:
    """Rows as a CSV download, streamed, every text cell inert (``clickthru.cells``)."""

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in rows:
            writer.writerow(inert_row(row))
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}.csv"'},
    )


class ReportsAPI:
    def __init__(self, store: Store, gate: Gate) -> None:
        self.store = store
        self.gate = gate
        self.reports: Reports = store.reports

    async def _visitor_and_query(self, request: Request) -> tuple[Visitor, Query]:
        visitor = await self.gate.visitor(request)
        if visitor is None:
            raise Refused(401, "unauthenticated", "sign in, or send Authorization: Bearer KEY")
        params = request.query_params
        visible = await run_in_threadpool(visible_sites, self.store, visitor)
        query = build_query(
            visitor,
            visible,
            params.getlist("site"),
            params.get("since"),
            params.get("until"),
            params.get("bots"),
        )
        return visitor, query

    async def handle(self, request: Request) -> Response:
        try:
            endpoint = {
                "sites": self.sites,
                "report": self.report,
                "health": self.health,
                "latest": self.latest,
                "export": self.export,
            }.get(request.path_params["name"])
            if endpoint is None:
                raise Refused(404, "not_found", "no such report")
            return await endpoint(request)
        except Refused as refused:
            return refused.response()

    async def sites(self, request: Request) -> Response:
        _, query = await self._visitor_and_query(request)
        return JSONResponse({"sites": list(query.sites)})

    async def report(self, request: Request) -> Response:
        _, query = await self._visitor_and_query(request)
        by = request.query_params.get("by", "placement")
        if by not in GROUPINGS:
            raise Refused(400, "bad_parameter", f"by is one of {', '.join(GROUPINGS)}")
        grouping: Grouping = by
        limit = _limit(request)
        document = await run_in_threadpool(self.reports.document, query, grouping, limit)
        if request.query_params.get("format") == "csv":
            header = (by, *COUNT_FIELDS)
            lines = (
                [row["key"], *(row[field] for field in COUNT_FIELDS)] for row in document["rows"]
            )
            return csv_response(header, lines, f"clickthru-{by}")
        return JSONResponse(document)

    async def health(self, request: Request) -> Response:
        visitor, query = await self._visitor_and_query(request)
        health = await run_in_threadpool(self.reports.health, query, visitor.user.operator)
        if request.query_params.get("format") == "csv":
            return csv_response(
                ("reason", "count"), iter(health.rejects_by_reason), "clickthru-rejects"
            )
        return JSONResponse(
            {
                **_range(query),
                "events": health.events,
                "bot_events": health.bot_events,
                "bot_share": health.bot_share,
                "duplicates": health.duplicates,
                "rejected": health.rejected,
                "rejects_by_reason": dict(health.rejects_by_reason),
            }
        )

    async def latest(self, request: Request) -> Response:
        _, query = await self._visitor_and_query(request)
        try:
            after = params.integer(
                request.query_params.get("after"), "after (an event's seq)", 0, params.MAX_INT64, 0
            )
        except params.BadParameter as error:
            raise Refused(400, "bad_parameter", str(error)) from None
        clicks = await run_in_threadpool(
            self.reports.latest_clicks, query, _limit(request) or 20, after
        )
        return JSONResponse({"clicks": [msgspec.to_builtins(click) for click in clicks]})

    async def export(self, request: Request) -> Response:
        _, query = await self._visitor_and_query(request)
        rows = self.reports.export(query)
        if request.query_params.get("format", "csv") == "ndjson":
            encode = msgspec.json.encode

            def lines() -> Iterator[bytes]:
                for row in rows:
                    yield encode(dict(zip(EXPORT_COLUMNS, inert_row(row), strict=True))) + b"\n"

            return StreamingResponse(
                lines(),
                media_type="application/x-ndjson",
                headers={"content-disposition": 'attachment; filename="clickthru-events.ndjson"'},
            )
        return csv_response(EXPORT_COLUMNS, rows, "clickthru-events")


def _limit(request: Request) -> int | None:
    text = request.query_params.get("limit")
    if text is None:
        return None
    try:
        return params.integer(text, "limit", 1, MAX_LIMIT, 0)
    except params.BadParameter as error:
        raise Refused(400, "bad_parameter", str(error)) from None


def _range(query: Query) -> dict[str, Any]:
    return {
        "sites": list(query.sites),
        "since": query.since_ms,
        "until": query.until_ms,
        "bots": query.bots,
    }
