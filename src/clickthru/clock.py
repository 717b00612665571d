"""Time in one place: the units every table and report uses, and parsing of the moments a
person or a request names.

Stored times are unix milliseconds (``received_at``, ``created_at``); rollups bucket them
into UTC hours and days since 1970.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Final

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
DAY_SECONDS: Final = 86_400

# The moments a request may name, and a client's clock may say: from 1970 (stored times
# are unix ms, never negative) to the end of 2999 (far beyond any real time, well inside
# every integer and date type on the way to the store).
EARLIEST_MS: Final = 0
LATEST_MS: Final = 32_503_680_000_000 - 1  # 2999-12-31T23:59:59.999Z
MOMENT_RANGE: Final = "from 1970 to 2999"

# ASCII digits only ([0-9], not \d: str.isdigit and \d also take '²' or '٣').
RELATIVE = re.compile(r"([0-9]{1,7})([mhd])")
ISO_MOMENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?"
)
SPANS: Final = {"m": 60, "h": 3600, "d": 86400}


def now_ms() -> int:
    """The current time, unix ms."""
    return int(time.time() * 1000)


def utc_day(now: float | None = None) -> str:
    """The UTC day (YYYY-MM-DD) of a unix time in seconds, or of now."""
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def day_of(ms: int) -> str:
    """The UTC day (YYYY-MM-DD) of a unix time in ms."""
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def parse_moment(text: str, now: float | None = None) -> int:
    """Unix ms from an ISO date or date-time (UTC unless it says) or a span back from now
    (30m, 24h, 7d), between 1970 and 2999. Raises ValueError with a message a person can
    act on."""
    now = time.time() if now is None else now
    relative = RELATIVE.fullmatch(text)
    if relative:
        moment = int((now - int(relative[1]) * SPANS[relative[2]]) * 1000)
        if moment < EARLIEST_MS:
            raise ValueError(f"{text!r} reaches back before 1970")
        return moment
    if not ISO_MOMENT.fullmatch(text):
        raise ValueError(
            f"{_shown(text)} is not a time: use an ISO date or time {MOMENT_RANGE}"
            " (2024-11-28, 2024-11-28T10:00Z) or a span back from now (30m, 24h, 7d)"
        )
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        moment = int(parsed.timestamp() * 1000)
    except (ValueError, OverflowError) as error:  # 2024-13-01, 0000-01-01, 9999-12-31+14:00
        raise ValueError(f"{text!r} is not a time: {error}") from None
    if not EARLIEST_MS <= moment <= LATEST_MS:
        raise ValueError(f"{text!r} is out of range: a time is {MOMENT_RANGE}")
    return moment


def _shown(text: str) -> str:
    """An unreadable value in a message: quoted, and short."""
    return repr(text if len(text) <= 40 else text[:40] + "…")
