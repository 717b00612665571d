"""``/api/v1``: the reports as JSON or CSV, and raw events as CSV or NDJSON, streamed.

Every answer is for the sites the caller may see: no credentials, 401; a site that is not
theirs, 403. Bad parameters get 400 with a JSON reason. Each endpoint reads its query only
through the parameters ``READS`` lists for it, which is what the OpenAPI document
(``clickthru.openapi``) says it takes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from clickthru.answers import Refusal, json_response
from clickthru.backend import Store
from clickthru.cells import inert, inert_row
from clickthru.clock import now_ms
from clickthru.dashboard.auth import Gate, Visitor
from clickthru.dashboard.parameters import (
    MOMENTS,
    Choice,
    Moment,
    Names,
    Parameter,
    Switch,
    Text,
    Whole,
)
from clickthru.params import MAX_INT64, BadParameter
from clickthru.reports import (
    CONVERSION_GROUPINGS,
    COUNT_FIELDS,
    EXPORT_COLUMNS,
    GROUPINGS,
    OUTCOME_COLUMNS,
    DataHealth,
    ExportedEvent,
    LatestClicks,
    Query,
    Reports,
    SiteList,
    conversion_table,
    experiment_table,
    outcome_cells,
)

T = TypeVar("T")
DEFAULT_SINCE = "7d"
MAX_LIMIT = 1000

SITE = Names("site", "A site to report on; repeat it for several. Default: every site you see.")
SINCE = Moment(
    "since", f"Where the range starts. {MOMENTS}. Default: {DEFAULT_SINCE}.", DEFAULT_SINCE
)
UNTIL = Moment("until", f"Where the range ends (not included). {MOMENTS}. Default: now.", None)
BOTS = Switch("bots", "Count bot-flagged events too (1); they are left out by default.")
ASKED = (SITE, SINCE, UNTIL, BOTS)  # every endpoint's question
BY = Choice(
    "by", "What each row is: a placement, an item, a position, a UTC day or hour.",
    GROUPINGS, "placement",
)  # fmt: skip
ROWS = Whole(
    "limit", "At most this many rows (by placement or item, the most clicked). Default: all.",
    1, MAX_LIMIT,
)  # fmt: skip
CLICKS = Whole("limit", "At most this many clicks.", 1, MAX_LIMIT, 20)
AFTER = Whole(
    "after", "Only clicks after this one (its seq): poll with the newest seq you have.",
    0, MAX_INT64, 0,
)  # fmt: skip
TABLE = Choice(
    "format", "JSON, or CSV: a report's rows; health's refused events by reason.",
    ("json", "csv"), "json",
)  # fmt: skip
EVENTS = Choice("format", "CSV, or NDJSON: one JSON object a line.", ("csv", "ndjson"), "csv")
BY_CLICK = Choice(
    "by", "What each row is: the clicked placement, item, position or variant, or a UTC day.",
    CONVERSION_GROUPINGS, "placement",
)  # fmt: skip
CONTROL = Text(
    "control", 'The variant the others are tested against. Default: "A" if there is one, else'
    " the first by name.",
)  # fmt: skip
VARIANTS = Choice("format", "JSON, or CSV: a row per variant.", ("json", "csv"), "json")
READS: dict[str, tuple[Parameter[Any], ...]] = {
    "sites": ASKED,
    "report": (*ASKED, BY, ROWS, TABLE),
    "health": (*ASKED, TABLE),
    "latest": (*ASKED, AFTER, CLICKS),
    "export": (*ASKED, EVENTS),
    "conversions": (*ASKED, BY_CLICK, ROWS, TABLE),
    "experiment": (*ASKED, CONTROL, VARIANTS),
    "outcomes": (*ASKED, EVENTS),
}


class Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail

    def response(self) -> Response:
        return json_response(Refusal(self.reason, self.detail), self.status)


@dataclass(frozen=True)
class Arguments:
    """A request's query, read through the parameters its endpoint declares."""

    query: QueryParams
    declared: tuple[Parameter[Any], ...]

    def __getitem__(self, parameter: Parameter[T]) -> T:
        if not any(parameter is known for known in self.declared):  # a bug, not the client's
            raise LookupError(f"{parameter.name} is not in READS for this endpoint")
        try:
            return parameter.read(self.query)
        except BadParameter as error:
            raise Refused(400, "bad_parameter", str(error)) from None


def visible_sites(store: Store, visitor: Visitor) -> list[str]:
    if visitor.user.operator:
        return [site.name for site in store.admin.sites()]
    return list(visitor.user.sites)


def query_for(
    visitor: Visitor,
    visible: list[str],
    asked: list[str],
    since: int | None,
    until: int | None,
    bots: bool,
) -> Query:
    """The sites, range and bot switch a request asks for, checked against who asks and
    the sites they see (``visible_sites``, read once per request by the caller)."""
    for site in asked:
        if not visitor.user.may_see(site):
            raise Refused(403, "forbidden", f"no access to the site {site!r}")
        if site not in visible:
            raise Refused(404, "unknown_site", f"no site named {site!r}")
    assert since is not None  # SINCE has a default
    until = now_ms() if until is None else until
    if since >= until:
        raise Refused(400, "bad_parameter", "since must be before until")
    return Query(tuple(asked or visible), since, until, bots)


def build_query(
    visitor: Visitor,
    visible: list[str],
    asked: list[str],
    since_text: str | None,
    until_text: str | None,
    bots: str | None,
) -> Query:
    """``query_for`` from the texts of a request (or a dashboard page's form)."""
    try:
        since, until, with_bots = SINCE.parse(since_text), UNTIL.parse(until_text), BOTS.parse(bots)
    except BadParameter as error:
        raise Refused(400, "bad_parameter", str(error)) from None
    return query_for(visitor, visible, asked, since, until, with_bots)


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

    async def _visitor_and_query(self, request: Request, args: Arguments) -> tuple[Visitor, Query]:
        visitor = await self.gate.visitor(request)
        if visitor is None:
            raise Refused(401, "unauthenticated", "sign in, or send Authorization: Bearer KEY")
        visible = await run_in_threadpool(visible_sites, self.store, visitor)
        asked = args[SITE]
        query = query_for(visitor, visible, asked, args[SINCE], args[UNTIL], args[BOTS])
        return visitor, query

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            endpoint = {
                "sites": self.sites,
                "report": self.report,
                "health": self.health,
                "latest": self.latest,
                "export": self.export,
                "conversions": self.conversions,
                "experiment": self.experiment,
                "outcomes": self.outcomes,
            }.get(name)
            if endpoint is None:
                raise Refused(404, "not_found", "no such report")
            return await endpoint(request, Arguments(request.query_params, READS[name]))
        except Refused as refused:
            return refused.response()

    async def sites(self, request: Request, args: Arguments) -> Response:
        _, query = await self._visitor_and_query(request, args)
        return json_response(SiteList(list(query.sites)))

    async def report(self, request: Request, args: Arguments) -> Response:
        _, query = await self._visitor_and_query(request, args)
        by, limit, table = args[BY], args[ROWS], args[TABLE]
        document = await run_in_threadpool(self.reports.document, query, by, limit)
        if table == "csv":
            header = (by, *COUNT_FIELDS)
            lines = (
                [row.key, *(getattr(row, field) for field in COUNT_FIELDS)] for row in document.rows
            )
            return csv_response(header, lines, f"clickthru-{by}")
        return json_response(document)

    async def health(self, request: Request, args: Arguments) -> Response:
        visitor, query = await self._visitor_and_query(request, args)
        table = args[TABLE]
        health = await run_in_threadpool(self.reports.health, query, visitor.user.operator)
        if table == "csv":
            return csv_response(
                ("reason", "count"), iter(health.rejects_by_reason), "clickthru-rejects"
            )
        return json_response(DataHealth.of(query, health))

    async def latest(self, request: Request, args: Arguments) -> Response:
        _, query = await self._visitor_and_query(request, args)
        after, limit = args[AFTER], args[CLICKS]
        assert after is not None and limit is not None  # both have defaults
        clicks = await run_in_threadpool(self.reports.latest_clicks, query, limit, after)
        return json_response(LatestClicks(clicks))

    async def export(self, request: Request, args: Arguments) -> Response:
        _, query = await self._visitor_and_query(request, args)
        rows = self.reports.export(query)
        if args[EVENTS] == "ndjson":
            encode = msgspec.json.encode

            def lines() -> Iterator[bytes]:
                for row in rows:
                    yield encode(ExportedEvent.of(inert_row(row))) + b"\n"

            return StreamingResponse(
                lines(),
                media_type="application/x-ndjson",
                headers={"content-disposition": 'attachment; filename="clickthru-events.ndjson"'},
            )
        return csv_response(EXPORT_COLUMNS, rows, "clickthru-events")

    async def conversions(self, request: Request, args: Arguments) -> Response:
        _, query = await self._visitor_and_query(request, args)
        by, limit = args[BY_CLICK], args[ROWS]
        document = await run_in_threadpool(self.reports.conversions, query, by, limit)
        if args[TABLE] == "csv":
            return csv_response(*conversion_table(document), f"clickthru-conversions-{by}")
        return json_response(document)

    async def experiment(self, request: Request, args: Arguments) -> Response:
        _, query = await self._visitor_and_query(request, args)
        document = await run_in_threadpool(self.reports.experiment, query, args[CONTROL])
        if args[VARIANTS] == "csv":
            return csv_response(*experiment_table(document), "clickthru-experiment")
        return json_response(document)

    async def outcomes(self, request: Request, args: Arguments) -> Response:
        _, query = await self._visitor_and_query(request, args)
        outcomes = self.reports.outcomes(query)
        if args[EVENTS] == "ndjson":
            encode = msgspec.json.encode

            def lines() -> Iterator[bytes]:
                for outcome in outcomes:
                    inert_texts = {
                        name: inert(getattr(outcome, name))
                        for name in ("list_id", "item", "placement", "variant")
                    }
                    yield encode(msgspec.structs.replace(outcome, **inert_texts)) + b"\n"

            return StreamingResponse(
                lines(),
                media_type="application/x-ndjson",
                headers={"content-disposition": 'attachment; filename="clickthru-outcomes.ndjson"'},
            )
        rows = (outcome_cells(outcome) for outcome in outcomes)
        return csv_response(OUTCOME_COLUMNS, rows, "clickthru-outcomes")
