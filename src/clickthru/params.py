"""Strict reading of what a request's URL says: the size of its query string, and the
integers in it. Shared by the collector, the API and the dashboard, so every route bounds
the same things the same way."""

from __future__ import annotations

import re
from typing import Final

# A query string longer than this, or with more fields, is refused before it is parsed.
# The image endpoint carries a whole event (a token of up to 1 KiB and two URLs) in it.
MAX_QUERY_BYTES: Final = 16 * 1024
MAX_QUERY_FIELDS: Final = 64
MAX_INT64: Final = 2**63 - 1  # the store's integers: SQLite INTEGER, PostgreSQL bigint

# ASCII digits only: int() and str.isdigit() also take '²', '٣', '+5', ' 5' and '5_0'.
DIGITS = re.compile(r"[0-9]{1,19}")


class BadParameter(ValueError):
    """A parameter a request cannot mean; the message says what it may be."""


class QueryTooBig(ValueError):
    """A query string over the limits; ``status`` and ``reason`` answer it."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def check_query(query_string: bytes) -> None:
    """Raise QueryTooBig for a query string over MAX_QUERY_BYTES or MAX_QUERY_FIELDS."""
    if len(query_string) > MAX_QUERY_BYTES:
        detail = f"a query string is at most {MAX_QUERY_BYTES} bytes"
        raise QueryTooBig(414, "query_too_long", detail)
    if query_string.count(b"&") >= MAX_QUERY_FIELDS:  # the only separator parse_qsl knows
        raise QueryTooBig(
            400, "too_many_parameters", f"a query string has at most {MAX_QUERY_FIELDS} fields"
        )


def integer(text: str | None, name: str, low: int, high: int, default: int) -> int:
    """``text`` as an integer from ``low`` to ``high``, or ``default`` when it is absent."""
    if text is None:
        return default
    if not DIGITS.fullmatch(text) or not low <= int(text) <= high:
        raise BadParameter(f"{name} is a whole number from {low} to {high}")
    return int(text)
