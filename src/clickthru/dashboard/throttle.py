"""Sign-in attempts, limited. Each password check is a scrypt hash (about 50 ms of CPU and
16 MiB), so unlimited attempts would invite both password guessing and CPU exhaustion:

- per account, failed attempts (a guesser trying one account from many addresses);
- per client address, every password check (one client trying many accounts, or just
  keeping the CPU busy);
- across all, password checks at the same time (many clients at once).

Past a limit the answer is ``429`` with ``Retry-After``, before any hashing. The counts
live in the process: with several workers each keeps its own.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Final

MAX_KEYS: Final = 10_000  # accounts or addresses remembered; the least recent go first


@dataclass(frozen=True, slots=True)
class Limit:
    attempts: int
    seconds: float


FAILURES_PER_ACCOUNT: Final = Limit(10, 15 * 60)
CHECKS_PER_ADDRESS: Final = Limit(30, 15 * 60)
CHECKS_AT_ONCE: Final = 4
BUSY_RETRY_SECONDS: Final = 1


class Window:
    """When each key (an account, an address) last counted, within a sliding window."""

    def __init__(self, limit: Limit, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` may count again; None when it may now."""
        times = self._times.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.limit.seconds:
            times.popleft()
        if len(times) < self.limit.attempts:
            return None
        return times[0] + self.limit.seconds - now

    def count(self, key: str, now: float) -> None:
        times = self._times.pop(key, None) or deque(maxlen=self.limit.attempts)
        times.append(now)
        self._times[key] = times  # the most recent last
        while len(self._times) > self.max_keys:
            self._times.popitem(last=False)

    def forget(self, key: str) -> None:
        self._times.pop(key, None)


class SignInThrottle:
    def __init__(
        self,
        per_account: Limit = FAILURES_PER_ACCOUNT,
        per_address: Limit = CHECKS_PER_ADDRESS,
        at_once: int = CHECKS_AT_ONCE,
    ) -> None:
        self.accounts = Window(per_account)
        self.addresses = Window(per_address)
        self.at_once = at_once
        self.checking = 0

    def retry_after(self, account: str, address: str, now: float | None = None) -> int | None:
        """Whole seconds to wait before this attempt may be checked; None: check it now."""
        now = time.monotonic() if now is None else now
        waits = [
            self.accounts.retry_after(account, now),
            self.addresses.retry_after(address, now),
            BUSY_RETRY_SECONDS if self.checking >= self.at_once else None,
        ]
        longest = max((wait for wait in waits if wait is not None), default=None)
        return None if longest is None else max(1, math.ceil(longest))

    def started(self, address: str, now: float | None = None) -> None:
        """A password check begins (call ``finished`` after it, whatever happens)."""
        self.checking += 1
        self.addresses.count(address, time.monotonic() if now is None else now)

    def finished(self, account: str, succeeded: bool, now: float | None = None) -> None:
        self.checking -= 1
        if succeeded:
            self.accounts.forget(account)
        else:
            self.accounts.count(account, time.monotonic() if now is None else now)
