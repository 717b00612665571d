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

RELATIVE = re.compile(r"^(\d+)([mhd])$")


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
    (30m, 24h, 7d). Raises ValueError with a message a person can act on."""
    now = time.time() if now is None else now
    relative = RELATIVE.match(text)
    if relative:
        seconds = int(relative[1]) * {"m": 60, "h": 3600, "d": 86400}[relative[2]]
        return int((now - seconds) * 1000)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use an ISO date or 30m, 24h, 7d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
