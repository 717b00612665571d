"""What a report is: the question (sites, range, bots), its rows and counts, and the
documents the API answers (``clickthru report --format json`` prints the same ``Report``).

The documents are msgspec Structs: the API encodes its answers from them, and the OpenAPI
document (``clickthru.openapi``) is made from their JSON Schema, so the two cannot differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

Grouping = Literal["placement", "item", "position", "day", "hour"]
GROUPINGS: tuple[Grouping, ...] = ("placement", "item", "position", "day", "hour")

Count = Annotated[int, msgspec.Meta(ge=0)]
UnixMs = Annotated[int, msgspec.Meta(ge=0, description="unix ms")]


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


class Click(msgspec.Struct, frozen=True):
    """One stored click, as the live table shows it."""

    seq: Annotated[int, msgspec.Meta(ge=1, description="arrival order; `after` in /latest")]
    received_at: UnixMs
    site: str
    placement: str
    item: str
    position: Annotated[int, msgspec.Meta(ge=1)]
    list_id: str
    page: str | None
    dest: str | None
    bot: bool


class ExportedEvent(msgspec.Struct, frozen=True):
    """One raw event, as a line of an NDJSON export (a CSV export has the same columns).
    Text a spreadsheet would run as a formula (starting with =, +, -, @, a tab or a carriage
    return) has a ' put in front."""

    seq: Annotated[int, msgspec.Meta(ge=1)]
    id: str
    kind: Literal["click", "view", "serve"]
    site: str
    list_id: str
    item: str
    position: Annotated[int, msgspec.Meta(ge=1)]
    placement: str
    received_at: UnixMs
    client_ts: Annotated[int, msgspec.Meta(description="the client's clock, unix ms")] | None
    page: str | None
    dest: str | None
    via: Literal["beacon", "fetch", "img", "ping", "server"] | None
    origin: str | None
    bot: Annotated[int, msgspec.Meta(ge=0, le=1, description="1: flagged as a bot")]

    @classmethod
    def of(cls, row: Sequence[object]) -> ExportedEvent:
        """From a row of ``Reports.export`` (the columns in this order), unchecked."""
        return cls(*row)  # type: ignore[arg-type]


EXPORT_COLUMNS: tuple[str, ...] = ExportedEvent.__struct_fields__  # CSV's columns too


class Figures(msgspec.Struct, frozen=True):
    """Counts as a report states them, with the CTR."""

    clicks: Count
    views: Count
    serves: Count
    unique_clicks: Annotated[int, msgspec.Meta(ge=0, description="each (list, item) once")]
    unique_views: Annotated[int, msgspec.Meta(ge=0, description="each (list, item) once")]
    ctr: Annotated[float, msgspec.Meta(ge=0, description="unique clicks / unique views")] | None

    @classmethod
    def of(cls, counts: Counts) -> Figures:
        return cls(
            counts.clicks,
            counts.views,
            counts.serves,
            counts.unique_clicks,
            counts.unique_views,
            counts.ctr,
        )


COUNT_FIELDS: tuple[str, ...] = Figures.__struct_fields__


class ReportRow(Figures, frozen=True):
    """One row of a report: what it counts (`key`) and its counts."""

    key: Annotated[
        str | int,
        msgspec.Meta(
            description="the placement, item or position; by day or hour, the bucket's start"
            " (unix ms)"
        ),
    ]

    @classmethod
    def of_row(cls, row: Row) -> ReportRow:
        return cls(**msgspec.structs.asdict(Figures.of(row.counts)), key=row.key)


class Asked(msgspec.Struct, frozen=True, kw_only=True):
    """The question a document answers: its sites, its range (since <= t < until) and
    whether bot-flagged events count."""

    sites: list[str]
    since: UnixMs
    until: UnixMs
    bots: bool


def asked(query: Query) -> dict[str, Any]:
    """A query as the fields of ``Asked``."""
    return {
        "sites": list(query.sites),
        "since": query.since_ms,
        "until": query.until_ms,
        "bots": query.bots,
    }


class Report(Asked, frozen=True, kw_only=True):
    """CTR, clicks and views, in total and grouped `by` placement, item, position, day or
    hour."""

    by: Grouping
    totals: Figures
    rows: list[ReportRow]
    # Counting trails storing by seconds: events received before this are counted.
    counted_until: Annotated[
        int, msgspec.Meta(ge=0, description="unix ms: every event received before it is counted")
    ]
    uncounted_events: Annotated[
        int, msgspec.Meta(ge=0, description="events stored and not counted yet")
    ]


class DataHealth(Asked, frozen=True, kw_only=True):
    """What arrived in the range: events stored, bots among them, duplicates, refusals."""

    events: Annotated[int, msgspec.Meta(ge=0, description="stored, bots included")]
    bot_events: Count
    bot_share: Annotated[float, msgspec.Meta(ge=0, le=1)] | None
    duplicates: Count
    rejected: Count
    rejects_by_reason: dict[str, Count]

    @classmethod
    def of(cls, query: Query, health: Health) -> DataHealth:
        return cls(
            **asked(query),
            events=health.events,
            bot_events=health.bot_events,
            bot_share=health.bot_share,
            duplicates=health.duplicates,
            rejected=health.rejected,
            rejects_by_reason=dict(health.rejects_by_reason),
        )


class LatestClicks(msgspec.Struct, frozen=True):
    """The latest clicks, newest first."""

    clicks: list[Click]


class SiteList(msgspec.Struct, frozen=True):
    """The sites a caller sees (or asked for, of those)."""

    sites: list[str]


# -- conversions and experiments -----------------------------------------------------------

ConversionGrouping = Literal["placement", "item", "position", "day", "variant"]
CONVERSION_GROUPINGS: tuple[ConversionGrouping, ...] = (
    "placement", "item", "position", "day", "variant",
)  # fmt: skip
Revenue = Annotated[
    dict[str, float],
    msgspec.Meta(description="per ISO 4217 currency, in its units: never added across them"),
]
Rate = Annotated[float, msgspec.Meta(ge=0)]


@dataclass(frozen=True, slots=True)
class Orders:
    """Orders counted together: how many, how they were told, what they earned."""

    conversions: int = 0
    confirmed: int = 0  # by the shop's server, with its API key
    page_reported: int = 0  # by the order's confirmation page
    bought_clicked: int = 0  # the clicked item was among those bought
    revenue: tuple[tuple[str, int], ...] = ()  # (currency, millionths), by currency

    def revenue_units(self) -> dict[str, float]:
        return {currency: micros / 1_000_000 for currency, micros in self.revenue}


class OrderFigures(msgspec.Struct, frozen=True):
    """Orders as a report states them. An order counts once, however often its page was
    loaded and whether or not the shop confirmed it too."""

    conversions: Count
    confirmed: Annotated[int, msgspec.Meta(ge=0, description="confirmed by the shop's server")]
    page_reported: Annotated[int, msgspec.Meta(ge=0, description="reported by the page")]
    bought_clicked: Annotated[
        int, msgspec.Meta(ge=0, description="orders that include the recommended item clicked")
    ]
    revenue: Revenue

    @classmethod
    def of(cls, orders: Orders) -> OrderFigures:
        return cls(
            orders.conversions,
            orders.confirmed,
            orders.page_reported,
            orders.bought_clicked,
            orders.revenue_units(),
        )


class ConversionRow(OrderFigures, frozen=True):
    """Attributed orders of one placement, item, position, day or variant, with the
    views they came from."""

    key: Annotated[
        str | int,
        msgspec.Meta(
            description="the placement, item, position or variant of the click; by day, the"
            " day's start (unix ms)"
        ),
    ]
    views: Annotated[int, msgspec.Meta(ge=0, description="unique views of the same key")]
    conversion_rate: (
        Annotated[float, msgspec.Meta(ge=0, description="conversions / unique views")] | None
    )


class ConversionReport(Asked, frozen=True, kw_only=True):
    """Orders attributed to recommended clicks, grouped `by` the click's placement, item,
    position or variant, or by the order's UTC day; unattributed orders in their own
    total. Ranges resolve to whole UTC days."""

    by: ConversionGrouping
    attributed: OrderFigures
    unattributed: OrderFigures
    rows: list[ConversionRow]
    counted_until: Annotated[
        int, msgspec.Meta(ge=0, description="unix ms: every event received before it is counted")
    ]
    uncounted_events: Annotated[
        int, msgspec.Meta(ge=0, description="events stored and not counted yet")
    ]


class VariantFigures(msgspec.Struct, frozen=True):
    """One variant of an experiment against the control."""

    variant: Annotated[str, msgspec.Meta(description='the token\'s variant; "" for none')]
    views: Annotated[int, msgspec.Meta(ge=0, description="unique views")]
    clicks: Annotated[int, msgspec.Meta(ge=0, description="unique clicks")]
    ctr: Rate | None
    ctr_low: Annotated[float, msgspec.Meta(ge=0, le=1, description="95 % Wilson interval")] | None
    ctr_high: Annotated[float, msgspec.Meta(ge=0, le=1)] | None
    ctr_p_value: (
        Annotated[
            float,
            msgspec.Meta(
                ge=0, le=1, description="two-proportion z-test of the CTR against the control"
            ),
        ]
        | None
    )
    conversions: Annotated[int, msgspec.Meta(ge=0, description="orders attributed to it")]
    conversion_rate: Annotated[float, msgspec.Meta(ge=0, description="conversions / views")] | None
    conversion_p_value: (
        Annotated[
            float, msgspec.Meta(ge=0, le=1, description="z-test of the conversion rate, likewise")
        ]
        | None
    )
    revenue: Revenue
    revenue_per_1000_views: Revenue


class Experiment(Asked, frozen=True, kw_only=True):
    """Each variant's views, clicks, CTR (with its 95 % Wilson interval), conversions,
    conversion rate and revenue per 1,000 views, with p-values against the control.
    Ranges resolve to whole UTC days."""

    control: Annotated[str, msgspec.Meta(description="the variant the others are tested against")]
    variants: list[VariantFigures]
    counted_until: Annotated[
        int, msgspec.Meta(ge=0, description="unix ms: every event received before it is counted")
    ]
    uncounted_events: Annotated[
        int, msgspec.Meta(ge=0, description="events stored and not counted yet")
    ]


class Outcome(msgspec.Struct, frozen=True):
    """What became of one recommended (list, item) served or viewed in the range: a row
    of the outcome export, for training. Everything in it happened in the range; orders
    count by the day they were first told, attributed to a click on this (list, item)."""

    site: str
    list_id: str
    item: str
    position: Annotated[int, msgspec.Meta(ge=0)]
    placement: str
    variant: Annotated[str, msgspec.Meta(description='"" without one')]
    served_at: UnixMs | None
    viewed_at: UnixMs | None
    clicked_at: UnixMs | None
    viewed: bool
    clicked: bool
    converted: Annotated[int, msgspec.Meta(ge=0, description="orders attributed to its clicks")]
    value: Revenue


OUTCOME_COLUMNS: tuple[str, ...] = Outcome.__struct_fields__
