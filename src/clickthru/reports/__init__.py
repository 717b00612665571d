"""Reports: CTR, clicks and views read from the rollups, never from raw events.

Every question names the sites it may see (access control happens before, in whoever asks)
and a time range. Hourly counters answer questions by hour, day or placement; daily
counters answer by item and position, so those ranges resolve to whole UTC days.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Grouping = Literal["placement", "item", "position", "day", "hour"]
GROUPINGS: tuple[Grouping, ...] = ("placement", "item", "position", "day", "hour")


@dataclass(frozen=True, slots=True)
class Query:
    sites: tuple[str, ...]
    since_ms: int
    until_ms: int
    bots: bool = False  # bot-flagged events are left out unless asked for


@dataclass(frozen=True, slots=True)
class Counts:
    clicks: int = 0
    views: int = 0
    serves: int = 0
    unique_clicks: int = 0  # each (list, item) once
    unique_views: int = 0

    @property
    def ctr(self) -> float | None:
        """Clicks per view, each (list, item) counted once; None without views."""
        return self.unique_clicks / self.unique_views if self.unique_views else None


@dataclass(frozen=True, slots=True)
class Row:
    key: str | int  # the placement, item or position; or the bucket's start, unix ms
    counts: Counts


@dataclass(frozen=True, slots=True)
class Health:
    events: int  # stored, bots included
    bot_events: int
    duplicates: int
    rejected: int
    rejects_by_reason: tuple[tuple[str, int], ...]

    @property
    def bot_share(self) -> float | None:
        return self.bot_events / self.events if self.events else None


@dataclass(frozen=True, slots=True)
class Click:
    seq: int
    received_at: int
    site: str
    placement: str
    item: str
    position: int
    list_id: str
    page: str | None
    dest: str | None
    bot: bool


EXPORT_COLUMNS = (
    "seq", "id", "kind", "site", "list_id", "item", "position", "placement", "received_at",
    "client_ts", "page", "dest", "via", "origin", "bot",
)  # fmt: skip


class Reports(Protocol):
    def totals(self, query: Query) -> Counts: ...
    def grouped(self, query: Query, by: Grouping, limit: int | None = None) -> list[Row]: ...
    def health(self, query: Query, include_unattributed: bool = False) -> Health: ...
    def latest_clicks(self, query: Query, limit: int = 20, after_seq: int = 0) -> list[Click]: ...
    def export(self, query: Query) -> Iterator[Sequence[object]]: ...


COUNT_FIELDS = ("clicks", "views", "serves", "unique_clicks", "unique_views", "ctr")


def counts_json(counts: Counts) -> dict[str, Any]:
    return {
        "clicks": counts.clicks,
        "views": counts.views,
        "serves": counts.serves,
        "unique_clicks": counts.unique_clicks,
        "unique_views": counts.unique_views,
        "ctr": counts.ctr,
    }


def report_document(
    reports: Reports, query: Query, by: Grouping, limit: int | None = None
) -> dict[str, Any]:
    """One report as the API answers it and ``clickthru report --format json`` prints it."""
    rows = reports.grouped(query, by, limit)
    return {
        "sites": list(query.sites),
        "since": query.since_ms,
        "until": query.until_ms,
        "bots": query.bots,
        "by": by,
        "totals": counts_json(reports.totals(query)),
        "rows": [{"key": row.key, **counts_json(row.counts)} for row in rows],
    }
