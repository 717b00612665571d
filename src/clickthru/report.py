"""Plain-text reports for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from clickthru.store import ClickCount

HEADERS = ("site", "placement", "item", "position", "clicks", "views")


def click_table(rows: Sequence[ClickCount]) -> str:
    """Clicks (and views) per site, placement, item and position, as aligned columns."""
    if not rows:
        return "no clicks or views in this range"
    cells = [HEADERS, *[tuple(str(value) for value in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    numeric = {3, 4, 5}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    total = sum(row.clicks for row in rows)
    lines.append(f"\n{total} clicks, {sum(row.views for row in rows)} views")
    return "\n".join(lines)
