"""Reports for the terminal: the same document the API answers, as aligned text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from clickthru.reports.model import (
    OUTCOME_COLUMNS,
    ConversionReport,
    Experiment,
    Outcome,
    Report,
    VariantFigures,
)

COLUMNS = ("views", "clicks", "unique_views", "unique_clicks", "ctr")
HEADERS = ("views", "clicks", "unique views", "unique clicks", "CTR")


def _cell(field: str, value: Any) -> str:
    if field == "ctr":
        return "-" if value is None else f"{value * 100:.1f} %"
    return str(value)


def _key(by: str, key: Any) -> str:
    if by in ("day", "hour"):
        moment = datetime.fromtimestamp(key / 1000, UTC)
        return moment.date().isoformat() if by == "day" else moment.strftime("%Y-%m-%d %H:00")
    return str(key)


def report_table(document: Report) -> str:
    """A report document (``Reports.document``) as aligned columns."""
    by = document.by
    if not document.rows:
        return "no clicks or views in this range"
    cells: list[tuple[str, ...]] = [(by, *HEADERS)]
    cells += [
        (_key(by, row.key), *(_cell(field, getattr(row, field)) for field in COLUMNS))
        for row in document.rows
    ]
    cells.append(("total", *(_cell(field, getattr(document.totals, field)) for field in COLUMNS)))
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in cells
    ]
    rule = "  ".join("-" * width for width in widths)
    lines.insert(1, rule)
    lines.insert(len(lines) - 1, rule)
    if document.uncounted_events:
        moment = datetime.fromtimestamp(document.counted_until / 1000, UTC)
        lines.append(
            f"counted up to {moment:%Y-%m-%d %H:%M:%S} UTC;"
            f" {document.uncounted_events} events stored since are not counted yet"
        )
    return "\n".join(lines)


def _currencies(revenues: Iterable[dict[str, float]]) -> list[str]:
    return sorted({currency for revenue in revenues for currency in revenue})


def conversion_table(
    report: ConversionReport,
) -> tuple[list[str], Iterator[list[object]]]:
    """A conversion report's rows as CSV: one revenue column per currency."""
    currencies = _currencies(row.revenue for row in report.rows)
    header: list[str] = [report.by, "conversions", "confirmed", "page_reported", "bought_clicked",
              "views", "conversion_rate", *(f"revenue_{c}" for c in currencies)]  # fmt: skip
    rows: Iterator[list[object]] = (
        [row.key, row.conversions, row.confirmed, row.page_reported, row.bought_clicked,
         row.views, row.conversion_rate, *(row.revenue.get(c, 0) for c in currencies)]
        for row in report.rows
    )  # fmt: skip
    return header, rows


def experiment_table(report: Experiment) -> tuple[list[str], Iterator[list[object]]]:
    """An experiment's variants as CSV: revenue and revenue per 1,000 views per currency."""
    currencies = _currencies(variant.revenue for variant in report.variants)
    fields = [name for name in VariantFigures.__struct_fields__
              if name not in ("revenue", "revenue_per_1000_views")]  # fmt: skip
    header = [*fields, *(f"revenue_{c}" for c in currencies),
              *(f"revenue_per_1000_views_{c}" for c in currencies)]  # fmt: skip
    rows = (
        [*(getattr(variant, name) for name in fields),
         *(variant.revenue.get(c, 0) for c in currencies),
         *(variant.revenue_per_1000_views.get(c, 0) for c in currencies)]
        for variant in report.variants
    )  # fmt: skip
    return header, rows


def aligned(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Rows as aligned columns: text left, numbers right, rates to 4 significant digits."""

    def cell(value: object) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    cells = [tuple(header), *(tuple(cell(v) for v in row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                       for i, c in enumerate(row)).rstrip() for row in cells]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def outcome_cells(outcome: Outcome) -> list[object]:
    """An outcome as a CSV row: flags 0/1, its value per currency as "23.5 GBP; 10 EUR"."""
    cells: list[object] = [getattr(outcome, name) for name in OUTCOME_COLUMNS[:-1]]
    cells[9:11] = [int(outcome.viewed), int(outcome.clicked)]
    value = "; ".join(f"{amount:g} {currency}" for currency, amount in outcome.value.items())
    return [*cells, value]
