"""What the collector's own endpoints answer in JSON, as msgspec Structs: a refusal, the
acknowledgement of ``POST /e``, and ``/healthz``. The answers are encoded from these and the
OpenAPI document (``clickthru.openapi``) is made from their JSON Schema, so the two cannot
differ. (The reports' documents are in ``clickthru.reports.model``.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from starlette.responses import Response

Count = Annotated[int, msgspec.Meta(ge=0)]


class Refusal(msgspec.Struct, frozen=True, omit_defaults=True):
    """Why a request, or an event in it, was refused."""

    error: Annotated[
        str, msgspec.Meta(description="a short reason, for programs", examples=["bad_parameter"])
    ]
    detail: Annotated[str, msgspec.Meta(description="what to change, for people")] | None = None


class RejectedEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """An event of the batch that was refused (and kept, with its reason)."""

    index: Annotated[int, msgspec.Meta(ge=0, description="its place in the batch, from 0")]
    reason: Annotated[str, msgspec.Meta(examples=["token_bad_signature", "invalid_event"])]
    detail: str | None = None


class Acknowledgement(msgspec.Struct, frozen=True):
    """What `POST /e` stored, once it is committed: every event of the batch is accepted,
    a duplicate (already stored: a retry), or rejected."""

    accepted: Count
    duplicates: Count
    rejected: list[RejectedEvent]


class SpoolStatus(msgspec.Struct, frozen=True):
    """A spool in front of a shared PostgreSQL store."""

    collector: str
    backlog: Annotated[int, msgspec.Meta(ge=0, description="events and rejects not shipped")]
    max_backlog: Count
    full: bool
    shared_store: Literal["reachable", "unreachable"]
    shipped: Annotated[int, msgspec.Meta(ge=0, description="since this process began")]
    last_shipped: Annotated[float, msgspec.Meta(description="unix seconds")] | None
    last_error: str | None


class AggregationStatus(msgspec.Struct, frozen=True):
    """How far the report counters trail the stored events."""

    lag_events: Annotated[int, msgspec.Meta(ge=0, description="stored and not counted yet")]
    lag_seconds: Annotated[float, msgspec.Meta(ge=0, description="the oldest one's wait")]
    counted_until: Annotated[
        int, msgspec.Meta(ge=0, description="unix ms: every event received before it is counted")
    ]
    fresh: Annotated[bool, msgspec.Meta(description="false: the last reading (store away)")]
    counting_here: bool


class RetentionStatus(msgspec.Struct, frozen=True):
    """Raw rows purged past their retention, and the oldest kept."""

    purged: Annotated[
        dict[str, Count],
        msgspec.Meta(description="rows removed ever, by kind: events, rejects, event_ids, ..."),
    ]
    oldest_event: Annotated[int, msgspec.Meta(ge=0, description="unix ms")] | None
    oldest_reject: Annotated[int, msgspec.Meta(ge=0, description="unix ms")] | None
    purging_here: bool
    last_purge: Annotated[float, msgspec.Meta(description="unix seconds, here")] | None
    last_error: str | None


class StoreHealth(msgspec.Struct, frozen=True, omit_defaults=True):
    """`GET /healthz`: whether a durable write goes through now, and the store's state.
    With `ok` false (503), `error` and `detail` say why."""

    ok: bool
    write_failing: Annotated[str, msgspec.Meta(description="the last write's failure")] | None
    write_failures: Annotated[dict[str, Count], msgspec.Meta(description="by cause")]
    free_bytes: Annotated[int, msgspec.Meta(ge=0, description="on the store's disk")] | None
    aggregation: AggregationStatus | None
    error: (
        Annotated[
            Literal["store_unavailable", "write_failing", "disk_low", "spool_full"],
            msgspec.Meta(description="why not ok"),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    detail: str | msgspec.UnsetType = msgspec.UNSET
    spool: SpoolStatus | msgspec.UnsetType = msgspec.UNSET
    retention: RetentionStatus | msgspec.UnsetType | None = msgspec.UNSET


def store_health(status: dict[str, Any], problem: tuple[str, str] | None) -> StoreHealth:
    """``/healthz``'s answer from ``Store.status()`` and the first problem found. A field the
    status gains that these Structs lack is left out of the answer, never a reason for a
    load balancer to see a 500: the test suite checks that they have every one."""
    fields = {"ok": problem is None, **status}
    if problem is not None:
        fields["error"], fields["detail"] = problem
    return msgspec.convert(fields, StoreHealth)


def json_response(
    answer: msgspec.Struct, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """An answer as Starlette's JSON response (encoded by msgspec, as its schema says)."""
    return Response(msgspec.json.encode(answer), status, headers, "application/json")
