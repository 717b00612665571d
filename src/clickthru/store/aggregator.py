"""The aggregator: counts the stored events into the rollups, a few seconds behind the
acknowledgements, exactly.

It follows ``events`` (and ``rejects``) in ``seq`` order. Each pass counts the next range
and records the last ``seq`` it counted (the watermark) in the same transaction as the
counts, so a crash at any point counts nothing twice and skips nothing. Nothing commits a
row below a watermark later: SQLite has one writer, and on PostgreSQL shipments take
turns, so ``seq`` is handed out in commit order.

Only one aggregator counts a database at a time. Every collector process runs a
``Follower``; the one holding the database's lead counts, the others wait to take over.
Each pass also locks the watermark rows, so two aggregators can never count the same range.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from clickthru.clock import now_ms
from clickthru.store import rollups
from clickthru.store.background import BackgroundThread
from clickthru.store.database import Database, Lease

log = logging.getLogger(__name__)

FIRST_CHUNK = 2_000  # events in the first pass; later passes fit the database's budget
MOST_CHUNK = 100_000
IDLE = 0.1  # seconds between looks when everything is counted
RETRY_LEAD = 2.0  # seconds between attempts to take over the lead
MOST_BACKOFF = 5.0


@dataclass(frozen=True, slots=True)
class Lag:
    """How far the counters trail the stored events."""

    events: int  # events, rejects and retries stored, not counted yet
    seconds: float  # how long the oldest uncounted event has waited
    # Unix ms: every event received before this is counted. With nothing left to count,
    # just after the newest event stored (0: there is none).
    counted_until: int


class Aggregator:
    """``chunk``: events per pass, fixed; by default fitted to the database's budget."""

    def __init__(self, db: Database, *, chunk: int | None = None) -> None:
        self.db = db
        self.chunk = chunk or FIRST_CHUNK
        self._fit = chunk is None

    def count_some(self) -> int:
        """One pass: counts the next range of events, and the rejects and retries stored
        meanwhile; returns how many events and rejects it counted."""
        started = time.perf_counter()
        counted, events = self.db.write(self._pass)
        took = time.perf_counter() - started
        if self._fit and events >= self.chunk:  # a full pass: size the next to the budget
            fitted = self.chunk * self.db.count_budget / max(took, 1e-4)
            self.chunk = int(min(MOST_CHUNK, max(FIRST_CHUNK // 4, fitted)))
        return counted

    def catch_up(self) -> int:
        """Counts until nothing is left; returns how many it counted."""
        total = 0
        while counted := self.count_some():
            total += counted
        return total

    def _pass(self, conn: Any) -> tuple[int, int]:
        lock = self.db.lock_row
        # Locks the watermarks: a second aggregator waits here, then sees what this counted.
        marks = dict(conn.execute(f"SELECT name, seq FROM aggregation{lock}").fetchall())
        after = int(marks.get("events", 0))
        (top,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        upto = min(int(top), after + self.chunk)
        if upto > after:
            rollups.count(conn, after, upto)
            rollups.set_watermark(conn, "events", upto)
        rejects_after = int(marks.get("rejects", 0))
        (rejects_top,) = conn.execute("SELECT coalesce(max(seq), 0) FROM rejects").fetchone()
        if rejects_top > rejects_after:
            rollups.count_rejects(conn, rejects_after, rejects_top)
            rollups.set_watermark(conn, "rejects", rejects_top)
        (noted,) = conn.execute("SELECT coalesce(max(seq), 0) FROM pending_duplicates").fetchone()
        if noted:
            rollups.count_duplicates(conn, noted)
        return upto - after + max(0, rejects_top - rejects_after), upto - after

    def lag(self) -> Lag:
        """How far counting is behind: events, rejects and retries stored and not counted."""
        conn = self.db.connection()
        marks = dict(conn.execute("SELECT name, seq FROM aggregation").fetchall())
        after = int(marks.get("events", 0))
        (events,) = conn.execute("SELECT count(*) FROM events WHERE seq > ?", (after,)).fetchone()
        (rejects,) = conn.execute(
            "SELECT count(*) FROM rejects WHERE seq > ?", (int(marks.get("rejects", 0)),)
        ).fetchone()
        (retries,) = conn.execute("SELECT count(*) FROM pending_duplicates").fetchone()
        waiting = int(events) + int(rejects) + int(retries)
        if not events:  # every event is counted, up to the newest there is
            newest = conn.execute(
                "SELECT received_at FROM events WHERE seq <= ? ORDER BY seq DESC LIMIT 1", (after,)
            ).fetchone()
            return Lag(waiting, 0.0, int(newest[0]) + 1 if newest else 0)
        (oldest,) = conn.execute(
            "SELECT min(received_at) FROM events WHERE seq > ?", (after,)
        ).fetchone()
        return Lag(waiting, max(0, now_ms() - int(oldest)) / 1000, int(oldest))

    def rebuild(self) -> int:
        """Recompute the rollups from the raw events, and count on from there; returns how
        many events it counted."""

        def work(conn: Any) -> int:
            conn.execute(f"SELECT name FROM aggregation{self.db.lock_row}").fetchall()
            return rollups.rebuild(conn)

        return self.db.write(work)


class Follower(BackgroundThread):
    """Keeps counting in the background while this process holds the lead."""

    thread_name = "clickthru-aggregator"

    def __init__(self, aggregator: Aggregator) -> None:
        super().__init__()
        self.aggregator = aggregator
        self.leading = False
        self.last_error: str | None = None

    def run(self) -> None:
        lease: Lease | None = None
        wait = IDLE
        try:
            while not self.stopping.is_set():
                if lease is None:
                    lease = self._try_lead()
                    if lease is None:
                        self.stopping.wait(RETRY_LEAD)
                        continue
                try:
                    counted = self.aggregator.count_some()
                except Exception as error:  # keep following; the next pass tries again
                    if self.last_error is None:
                        log.warning("counting failed: %s", error, exc_info=True)
                    self.last_error = str(error)
                    wait = min(MOST_BACKOFF, wait * 2)
                    self.stopping.wait(wait)
                    continue
                self.last_error, wait = None, IDLE
                if not counted:
                    self.stopping.wait(IDLE)
        finally:
            self.leading = False
            if lease is not None:
                lease.release()

    def _try_lead(self) -> Lease | None:
        try:
            lease = self.aggregator.db.lead("aggregator")
        except Exception as error:  # the database is away: try again later
            self.last_error = str(error)
            return None
        self.leading = lease is not None
        return lease
