"""Reports for the terminal: the same document the API answers, as aligned text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clickthru.reports.model import Report

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
