"""Text an export writes into a cell, made inert for spreadsheets.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (and
some also after a leading tab or carriage return), so a page URL, an item id or an origin
someone chose could run in the customer's spreadsheet (CSV injection). Such a text gets a
``'`` in front, which spreadsheets read as "this is text" and do not show. Numbers are
left as they are. Every CSV and NDJSON export applies it to every text column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

FORMULA_STARTS: Final = frozenset("=+-@\t\r")


def inert(value: object) -> object:
    """``value``, with a ``'`` in front if it is text a spreadsheet would run."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def inert_row(row: Iterable[object]) -> list[object]:
    return [inert(value) for value in row]
