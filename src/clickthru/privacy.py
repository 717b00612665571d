"""Visitor keys: enough to count distinct visitors per day, never a raw IP.

The key is a keyed hash of (IP, user agent, site) under a salt that changes every UTC
day; yesterday's salt is deleted, so keys cannot be linked across days or reversed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from clickthru.clock import DAY_SECONDS, utc_day


class VisitorKeys:
    def __init__(self, daily_salt: Callable[[str], bytes]) -> None:
        self._daily_salt = daily_salt
        # (days since the epoch, salt), swapped as one so threads never mix them.
        self._current = (-1, b"")

    def prepare(self, now: float | None = None) -> None:
        """Read the day's salt ahead of requests (off the event loop, by the caller, every
        few seconds: a collector in front of a shared store may take its salt later)."""
        moment = time.time() if now is None else now
        self._current = (int(moment // DAY_SECONDS), self._daily_salt(utc_day(moment)))

    def key(self, ip: str, user_agent: str, site: str, now: float | None = None) -> str:
        moment = time.time() if now is None else now
        day, salt = self._current
        if (
            int(moment // DAY_SECONDS) != day
        ):  # only until the day's first prepare(): one quick read
            self.prepare(moment)
            salt = self._current[1]
        digest = hashlib.blake2b(f"{ip}\n{user_agent}\n{site}".encode(), key=salt, digest_size=8)
        return digest.hexdigest()
