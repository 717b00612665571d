"""What a report is: the question (sites, range, bots), its rows and counts, and the
document the API answers and ``clickthru report --format json`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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
