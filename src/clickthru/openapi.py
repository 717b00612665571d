"""The OpenAPI 3.1 document of the collector's HTTP API, served at
``GET /api/v1/openapi.json``.

It is made from the code's own schemas, so it cannot drift from what the code does:
msgspec's JSON Schema of the event the intake decodes (``events.IncomingEvent``) and of
every JSON answer, which the endpoints encode from the same Structs (``answers``,
``reports.model``); the reports API's query parameters as the API reads them
(``dashboard.api.READS``); the limits from the collector's settings. What is written here
is only prose and the map of routes, and the test suite runs schemathesis over the
document against the real app (``tests/test_openapi.py``).
"""

from __future__ import annotations

import copy
import re
from typing import Any, Final

import msgspec

from clickthru import __version__, params
from clickthru.answers import Acknowledgement, Refusal, StoreHealth
from clickthru.collector.receivers import MAX_JSON_DEPTH, PING_BODY_BYTES
from clickthru.config import Settings
from clickthru.dashboard.api import READS
from clickthru.dashboard.auth import SESSION_COOKIE
from clickthru.events import IncomingConversion, IncomingEvent
from clickthru.reports import (
    ConversionReport,
    DataHealth,
    Experiment,
    ExportedEvent,
    LatestClicks,
    Outcome,
    Report,
    SiteList,
)

PATH: Final = "/api/v1/openapi.json"
REF: Final = "#/components/schemas/{name}"
SCHEMAS: Final = (
    IncomingEvent,
    IncomingConversion,
    Acknowledgement,
    Refusal,
    StoreHealth,
    Report,
    DataHealth,
    LatestClicks,
    SiteList,
    ExportedEvent,
    ConversionReport,
    Experiment,
    Outcome,
)

# What each refusal means, for the document; the JSON body always says which (`error`).
REFUSALS: Final = {
    "400": "bad_parameter or too_many_parameters: `detail` says what to change.",
    "401": "unauthenticated: no session cookie and no valid read key.",
    "403": "forbidden: a site that is not shared with you.",
    "404": "unknown_site: no site of that name.",
    "405": "method_not_allowed: `Allow` names the methods there are.",
    "413": "body_too_large.",
    "414": f"query_too_long: a query string is at most {params.MAX_QUERY_BYTES} bytes.",
    "415": "unsupported_media_type: send text/plain or application/json.",
    "408": "request_timeout: the request did not arrive whole in time (answered by the"
    " server, before any route).",
    "431": "head_too_large: the request line and headers are over the server's limits"
    " (answered by the server, before any route).",
    "503": "store_unavailable: nothing was stored; send it again later.",
}
EVENT_REFUSED: Final = (
    "The event was refused, and is kept with its reason: `error` says which (token_missing,"
    " token_malformed, token_bad_signature, token_unknown_key, token_expired, invalid_event,"
    " origin_not_allowed, …; for a conversion bad_currency, negative_value, unknown_click,"
    " unknown_site, conversion_bad_api_key); or too_many_parameters."
)
NO_PARAMETERS: Final = {
    "400": f"too_many_parameters: a query string has at most {params.MAX_QUERY_FIELDS} fields."
}
API_REFUSALS: Final = ("400", "401", "403", "404", "405", "414")
# What the server answers on any route, before the route sees the request.
BY_THE_SERVER: Final = ("408", "431")
TAGS: Final = [
    {"name": "events", "description": "What browsers and the recommendation service send."},
    {"name": "reports", "description": "CTR, clicks, views and raw events, of your sites."},
    {"name": "operations", "description": "For load balancers, monitoring and pages."},
]
SECURITY: Final = {
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The dashboard's session: sign in at /dashboard/sign-in.",
    },
    "readKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A read-only key (ctr_…), from `clickthru user key NAME`: it sees what"
        " its user sees.",
    },
    "siteKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The site's API key, from `clickthru site add`: only for serve events,"
        " sent by the recommendation service, and for conversions the shop's server confirms.",
    },
}


def document(settings: Settings) -> dict[str, Any]:
    """The whole document, for a collector with these settings (its limits)."""
    _, schemas = msgspec.json.schema_components(SCHEMAS, ref_template=REF)
    paths = {
        **_event_paths(settings, schemas[IncomingEvent.__name__]),
        **_report_paths(),
        **_operation_paths(),
    }
    described: dict[str, Any] = _ecma(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "clickthru",
                "version": __version__,
                "summary": "Click-through tracking for recommendation services.",
                "description": "Events come in at /e, /p.gif and /ping; reports go out at"
                ' /api/v1. Every refusal is a status with a JSON reason, `{"error",'
                ' "detail"}`. Reports trail the stored events by the aggregation lag: each'
                " report says up to when it is counted (`counted_until`). Any route may also"
                " be answered 503 busy when the server holds as many connections as it may."
                " Through a shop's first-party proxy (`first_party_proxies`), only the event routes"
                " and /ct.js are served: anything else is answered 404 not_public.",
            },
            "tags": TAGS,
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": SECURITY},
        }
    )
    return described


def _ref(struct: type[msgspec.Struct]) -> dict[str, str]:
    return {"$ref": REF.format(name=struct.__name__)}


def _json(struct: type[msgspec.Struct]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(struct)}}


def _refusals(*statuses: str, said: dict[str, str] | None = None) -> dict[str, Any]:
    """The refusals a route may answer (and the server's own), described as ``REFUSALS``
    or as ``said``."""
    answers: dict[str, Any] = {}
    for status in sorted({*statuses, *BY_THE_SERVER}):
        described = (said or {}).get(status, REFUSALS[status])
        answers[status] = {"description": described, "content": _json(Refusal)}
        if status == "405":
            answers[status]["headers"] = {"Allow": {"schema": {"type": "string"}}}
    return answers


def _text(media_type: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _event_paths(settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    one = {"oneOf": [_ref(IncomingEvent), _ref(IncomingConversion)]}
    batch = {
        "oneOf": [
            *one["oneOf"],
            {
                "type": "array",
                "items": one,
                "minItems": 1,
                "maxItems": settings.max_batch_events,
            },
        ]
    }
    # The image fallback takes the event's fields as query parameters, as they are.
    event_fields = event["properties"]
    required = set(event["required"])
    as_query = [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _not_null(schema),
        }
        for name, schema in event_fields.items()
    ]

    def image(said: str) -> dict[str, Any]:
        return {
            "tags": ["events"],
            "summary": "Send one event as an image request",
            "description": "The fallback for pages that cannot send a beacon: the event's"
            f" fields in the query string. Answers a 1x1 GIF once stored. {said}",
            "parameters": as_query,
            "responses": {
                "200": {
                    "description": "Stored (or already stored).",
                    "content": {"image/gif": {"schema": {"type": "string"}}},
                },
                **_refusals("400", "405", "414", "503", said={"400": EVENT_REFUSED}),
            },
        }

    return {
        "/e": {
            "get": image("Blocklists' image rules (`/p.gif?`, `.gif`) do not match this path."),
            "post": {
                "tags": ["events"],
                "summary": "Send events",
                "description": "One event or an array of them, from a browser (sendBeacon or"
                " fetch) or, for serve events, from the recommendation service with its site's"
                " API key. A conversion (an order) comes from its confirmation page, or from"
                " the shop's server with the site's API key; both of one order merge."
                " The answer comes once everything accepted is committed. One bad"
                " event never costs the others: it is listed in `rejected` (and kept with its"
                f" reason). At most {settings.max_body_bytes} bytes and"
                f" {settings.max_batch_events} events a request. A browser's events must come"
                " from an origin of the token's site (Origin, else Referer).",
                "security": [{}, {"siteKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": batch},
                        "text/plain": {
                            "schema": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": batch,
                            }
                        },
                    },
                },
                "responses": {
                    "200": {"description": "Committed.", "content": _json(Acknowledgement)},
                    **_refusals(
                        "400",
                        "405",
                        "413",
                        "415",
                        "503",
                        said={
                            "400": "invalid_json (also JSON nested deeper than"
                            f" {MAX_JSON_DEPTH} levels) or not_an_event: the body is no event"
                            " and no array of them. A bad event in a batch is answered 200,"
                            " in `rejected`.",
                            "413": "body_too_large (from Content-Length, before it is read),"
                            " or too_many_events.",
                        },
                    ),
                },
            },
            "options": {
                "tags": ["events"],
                "summary": "CORS preflight",
                "responses": {"204": {"description": "POST with Content-Type is allowed."}},
            },
        },
        "/p.gif": {"get": image("The same as `GET /e?…`, for snippets cached before it moved.")},
        "/ping": {
            "post": {
                "tags": ["events"],
                "summary": "Receive an <a ping>",
                "description": 'What a browser sends for `<a ping="/ping?t=TOKEN">` when the'
                " link is followed: a click, on pages without JavaScript. Its body (PING) is"
                f" not read, and may be at most {PING_BODY_BYTES} bytes.",
                "parameters": [
                    {
                        "name": "t",
                        "in": "query",
                        "required": True,
                        "description": "The link's token.",
                        "schema": event_fields["token"],
                    },
                    *(
                        {
                            "name": name,
                            "in": "header",
                            "description": description,
                            "schema": _not_null(event_fields[field]),
                        }
                        for name, field, description in (
                            ("Ping-From", "page", "The page (sent by the browser)."),
                            ("Ping-To", "dest", "The link's target (sent by the browser)."),
                        )
                    ),
                ],
                "responses": {
                    "204": {"description": "Stored."},
                    **_refusals("400", "405", "413", "414", "503", said={"400": EVENT_REFUSED}),
                },
            }
        },
    }


def _report_paths() -> dict[str, Any]:
    answers: dict[str, dict[str, Any]] = {
        "sites": {"200": {"description": "The sites you see.", "content": _json(SiteList)}},
        "report": {
            "200": {
                "description": "The report (format=csv: its rows as CSV).",
                "content": {**_json(Report), "text/csv": {"schema": {"type": "string"}}},
            }
        },
        "health": {
            "200": {
                "description": "What arrived (format=csv: refused events by reason).",
                "content": {**_json(DataHealth), "text/csv": {"schema": {"type": "string"}}},
            }
        },
        "latest": {"200": {"description": "Newest first.", "content": _json(LatestClicks)}},
        "conversions": {
            "200": {
                "description": "The report (format=csv: its rows, a revenue column per currency).",
                "content": {
                    **_json(ConversionReport),
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        },
        "outcomes": {
            "200": {
                "description": "Streamed, by site, list and item: CSV with a header row, or"
                " NDJSON, one Outcome a line.",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            }
        },
        "experiment": {
            "200": {
                "description": "The variants (format=csv: a row each).",
                "content": {**_json(Experiment), "text/csv": {"schema": {"type": "string"}}},
            }
        },
        "export": {
            "200": {
                "description": "Streamed, oldest first: CSV with a header row, or NDJSON, one"
                " ExportedEvent a line.",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            }
        },
    }
    summaries = {
        "sites": "The sites you see",
        "report": "CTR, clicks and views, in total and grouped",
        "health": "Events, bots, duplicates and refused events by reason",
        "latest": "The latest clicks",
        "export": "The raw events",
        "conversions": "Orders, conversion rate and revenue per currency, grouped",
        "experiment": "Variants against the control: CTR, conversions, revenue, p-values",
        "outcomes": "What became of each recommended (list, item): for training",
    }
    return {
        f"/api/v1/{name}": {
            "get": {
                "tags": ["reports"],
                "summary": summaries[name],
                "security": [{"session": []}, {"readKey": []}],
                "parameters": [parameter.described() for parameter in parameters],
                "responses": {**answers[name], **_refusals(*API_REFUSALS)},
            }
        }
        for name, parameters in READS.items()
    }


def _operation_paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": {
                "tags": ["operations"],
                "summary": "Whether a durable write goes through now",
                "responses": {
                    "200": {"description": "It does.", "content": _json(StoreHealth)},
                    "503": {
                        "description": "It does not: `error` says why. Take the collector out.",
                        "content": _json(StoreHealth),
                    },
                    **_refusals("400", "405", "414", said=NO_PARAMETERS),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "summary": "Prometheus metrics",
                "responses": {
                    "200": _text("text/plain", "The Prometheus text format."),
                    **_refusals("400", "405", "414", said=NO_PARAMETERS),
                },
            }
        },
        "/ct.js": {
            "get": {
                "tags": ["operations"],
                "summary": "The browser snippet",
                "parameters": [
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _text("text/javascript", "The snippet (gzip if accepted)."),
                    "304": {"description": "Not modified: the ETag matched."},
                    **_refusals("405"),
                },
            }
        },
        "/ctc.js": {
            "get": {
                "tags": ["operations"],
                "summary": "The conversion reader, for order confirmation pages",
                "parameters": [
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _text("text/javascript", "The reader (gzip if accepted)."),
                    "304": {"description": "Not modified: the ETag matched."},
                    **_refusals("405"),
                },
            }
        },
        PATH: {
            "get": {
                "tags": ["operations"],
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_refusals("400", "405", "414", said=NO_PARAMETERS),
                },
            }
        },
    }


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional field's schema without its ``null``: a query parameter is there or not."""
    options = schema.get("anyOf")
    if options is None:
        return schema
    kept = [option for option in options if option != {"type": "null"}]
    return kept[0] if len(kept) == 1 else {"anyOf": kept}


def _ecma(node: Any) -> Any:
    """The document with every pattern in ECMA-262's dialect, which JSON Schema uses: Python's
    end of text ``\\Z`` is ECMA's ``$`` (Python's ``$`` also matches before a final newline,
    ECMA's does not). The patterns are written to mean the same in both otherwise."""
    node = copy.deepcopy(node)
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            pattern = item.get("pattern")
            if isinstance(pattern, str):
                item["pattern"] = re.sub(r"\\Z$", "$", pattern)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return node
