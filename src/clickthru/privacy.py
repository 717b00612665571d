"""Visitor keys: enough to count distinct visitors per day, never a raw IP.

The key is a keyed hash of (IP, user agent, site) under a salt that changes every UTC
day; yesterday's salt is deleted, so keys cannot be linked across days or reversed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable


class VisitorKeys:
    def __init__(self, daily_salt: Callable[[str], bytes]) -> None:
        self._daily_salt = daily_salt
        self._day = ""
        self._salt = b""

    def key(self, ip: str, user_agent: str, site: str, now: float | None = None) -> str:
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        if day != self._day:
            self._salt, self._day = self._daily_salt(day), day
        digest = hashlib.blake2b(
            f"{ip}\n{user_agent}\n{site}".encode(), key=self._salt, digest_size=8
        )
        return digest.hexdigest()
