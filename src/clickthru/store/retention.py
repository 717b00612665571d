"""Retention: raw rows go once past their time; the counters (rollups) stay.

Each kind of row has a retention in whole UTC days (``[retention]`` in the settings, and
per site): raw events, rejects, dashboard sessions, and the two records that keep counting
exact, event ids and ``firsts``. A purge removes what was received before the start of
the UTC day that many days ago, and never an event or reject not counted yet.

It works in small batches, each a short write transaction of its own sized to a time
budget: on SQLite every batch goes through the one writer thread between group commits,
so an acknowledgement waits at most one batch. Where the database keeps days apart
(PostgreSQL's day partitions), days past every site's retention are dropped whole first.

Dedup stays exact: an id must be known for as long as its event can be sent again. The
snippet's outbox gives an event up after 5 days and a token lives 7 by default, so ids
are kept ``event_ids_days`` (8) from receipt: the ids of events purged sooner are kept in
``event_ids``, alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from clickthru.clock import DAY_MS, now_ms
from clickthru.config import Retention
from clickthru.store import rollups
from clickthru.store.background import BackgroundThread
from clickthru.store.database import Database, Lease

log = logging.getLogger(__name__)

KINDS = ("events", "rejects", "event_ids", "firsts", "sessions")
BUDGET = 0.010  # seconds a batch may hold the writer (an acknowledgement waits behind it)
FIRST_BATCH = 500
MOST_BATCH = 20_000
QUIET = 3.0  # between batches the writer is free at least this many times a batch's time
STATUS_EVERY = 10.0  # seconds between readings of the status, off the request path
STOP_WAIT = 5.0
RETRY_LEAD = 60.0

RECORD = (
    "INSERT INTO purged (kind, site, cutoff, removed) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (kind, site) DO UPDATE SET removed = purged.removed + excluded.removed,"
    " cutoff = CASE WHEN excluded.cutoff > purged.cutoff"
    " THEN excluded.cutoff ELSE purged.cutoff END"
)


@dataclass(frozen=True, slots=True)
class Step:
    """Rows of one kind (and site: '' for every site without one of its own) received
    before ``cutoff`` (unix ms)."""

    kind: str
    site: str
    cutoff: int


def day_start(ms: int) -> int:
    return ms - ms % DAY_MS


class Rules:
    """The settings' retention, as cutoffs at a moment."""

    def __init__(self, retention: Retention) -> None:
        self.retention = retention

    def days(self, kind: str, site: str = "") -> int:
        own = self.retention.sites.get(site)
        if kind == "events":
            return (own and own.events_days) or self.retention.events_days
        if kind == "rejects":
            return (own and own.rejects_days) or self.retention.rejects_days
        if kind == "sessions":
            return self.retention.sessions_days
        return self.retention.event_ids_days  # event_ids, firsts

    def own_rejects(self) -> list[str]:
        """The sites with a retention of rejects of their own."""
        return [name for name, own in self.retention.sites.items() if own.rejects_days]

    def cutoff(self, kind: str, site: str, now: int) -> int:
        if kind == "sessions":
            return now - self.days(kind) * DAY_MS
        return day_start(now) - self.days(kind, site) * DAY_MS

    def steps(self, sites: Sequence[str], now: int) -> list[Step]:
        """What to purge, in order: each site's events, rejects (those of a site with its
        own retention, then the rest), the id records, sessions."""
        own_rejects = self.own_rejects()
        steps = [Step("events", site, self.cutoff("events", site, now)) for site in sites]
        steps += [Step("rejects", site, self.cutoff("rejects", site, now)) for site in own_rejects]
        steps.append(Step("rejects", "", self.cutoff("rejects", "", now)))
        steps += [Step(kind, "", self.cutoff(kind, "", now)) for kind in KINDS[2:]]
        return steps

    def whole_days(self, sites: Sequence[str], now: int) -> int:
        """Before this, every site's events are past their retention."""
        return min(self.cutoff("events", site, now) for site in ["", *sites])


@dataclass
class PurgeStatus:
    purged: dict[str, int]  # rows removed, by kind, ever
    oldest: dict[str, int | None]  # unix ms of the oldest event and reject kept
    purging_here: bool = False
    last_purge: float | None = None  # unix s of the end of the last round here
    last_error: str | None = None

    def answer(self) -> dict[str, Any]:
        return {
            "purged": self.purged,
            "oldest_event": self.oldest.get("events"),
            "oldest_reject": self.oldest.get("rejects"),
            "purging_here": self.purging_here,
            "last_purge": self.last_purge,
            "last_error": self.last_error,
        }


@dataclass
class Purger:
    """Purges one database by ``rules``."""

    db: Database
    rules: Rules
    batch: int = FIRST_BATCH
    budget: float = BUDGET

    def sites(self) -> list[str]:
        return [name for (name,) in self.db.connection().execute("SELECT name FROM sites")]

    def plan(self, now: int | None = None) -> list[Step]:
        return self.rules.steps(self.sites(), now_ms() if now is None else now)

    def dry_run(self, now: int | None = None) -> dict[tuple[str, str], int]:
        """What a purge now would remove, by (kind, site); nothing is changed."""
        now = now_ms() if now is None else now
        conn = self.db.connection()
        found: dict[tuple[str, str], int] = {}
        before = self.rules.whole_days(self.sites(), now)
        whole = self.db.drop_days(before, dry_run=True)
        if whole:
            found["events", "(whole days)"] = whole
        for step in self.plan(now):
            sql, params = self._select(conn, step, "count(*)")
            if whole and step.kind == "events":  # not those of the whole days again
                sql, params = f"{sql} AND received_at >= ?", [*params, before]
            (count,) = conn.execute(sql, params).fetchone()
            if count:
                found[step.kind, step.site or "*"] = int(count)
        return found

    def purge(
        self, now: int | None = None, pause: Callable[[float], bool] | None = None
    ) -> dict[str, int]:
        """Purges everything past its retention, batch after batch; returns rows removed by
        kind. ``pause(seconds)`` is called between batches and stops the purge when it
        returns False."""
        now = now_ms() if now is None else now
        removed = dict.fromkeys(KINDS, 0)
        whole = self.db.drop_days(self.rules.whole_days(self.sites(), now))
        if whole:
            self.db.write(lambda conn: conn.execute(RECORD, ("events", "", 0, whole)))
            removed["events"] += whole
        for step in self.plan(now):
            while True:
                started = time.perf_counter()
                limit = self.batch
                count = self.db.write(partial(self._batch, step=step, limit=limit))
                took = time.perf_counter() - started
                removed[step.kind] += count
                if count >= limit:  # a full batch: size the next one to the budget
                    fitted = limit * self.budget / max(took, 1e-4)
                    self.batch = int(min(MOST_BATCH, max(FIRST_BATCH // 5, fitted)))
                if count < limit:
                    break
                if pause is not None and not pause(took):
                    return removed
        return removed

    # -- one batch ---------------------------------------------------------------------

    def _select(
        self, conn: Any, step: Step, what: str, limit: int | None = None
    ) -> tuple[str, list[Any]]:
        """The rows of a step (those counted already), as ``SELECT {what}``."""
        limited = f" LIMIT {int(limit)}" if limit else ""
        if step.kind == "events":
            mark = rollups.watermark(conn, "events")
            order = " ORDER BY received_at" if limit else ""
            return (
                f"SELECT {what} FROM events WHERE site = ? AND received_at < ? AND seq <= ?"
                f"{order}{limited}",
                [step.site, step.cutoff, mark],
            )
        if step.kind == "rejects":
            mark = rollups.watermark(conn, "rejects")
            if step.site:
                where, params = "site = ?", [step.site]
            else:
                own = self.rules.own_rejects()
                marks = ", ".join("?" * len(own))
                where = f"coalesce(site, '') NOT IN ({marks})" if own else "1 = 1"
                params = own
            return (
                f"SELECT {what} FROM rejects WHERE {where} AND received_at < ? AND seq <= ?"
                f"{limited}",
                [*params, step.cutoff, mark],
            )
        if step.kind == "sessions":
            return (
                f"SELECT {what} FROM sessions WHERE expires_at < ? OR created_at < ?{limited}",
                [now_ms(), step.cutoff],
            )
        return f"SELECT {what} FROM {step.kind} WHERE received_at < ?{limited}", [step.cutoff]

    def _batch(self, conn: Any, *, step: Step, limit: int) -> int:
        if step.kind == "events":
            count = self._events(conn, step, limit)
        else:
            key = {
                "rejects": "seq",
                "sessions": "token_hash",
                "event_ids": "id",
                "firsts": "site, list_id, item, kind",
            }[step.kind]
            sql, params = self._select(conn, step, key, limit)
            deleted = conn.execute(f"DELETE FROM {step.kind} WHERE ({key}) IN ({sql})", params)
            count = deleted.rowcount
        done = count < limit
        if count or done:
            conn.execute(RECORD, (step.kind, step.site, step.cutoff if done else 0, count))
        return int(count)

    def _events(self, conn: Any, step: Step, limit: int) -> int:
        sql, params = self._select(conn, step, "seq, received_at", limit)
        rows = conn.execute(sql, params).fetchall()
        if not rows:
            return 0
        seqs = [seq for seq, _ in rows]
        low, high = min(r for _, r in rows), max(r for _, r in rows)
        # The time bounds let PostgreSQL look in the batch's days' partitions alone.
        within = f"seq IN ({', '.join('?' * len(seqs))}) AND received_at >= ? AND received_at <= ?"
        keep_ids_from = self.rules.cutoff("event_ids", "", now_ms())
        if high >= keep_ids_from:  # these ids may still come again: keep them
            conn.execute(
                "INSERT INTO event_ids (id, received_at) SELECT id, received_at FROM events"
                f" WHERE {within} AND received_at >= ? ON CONFLICT (id) DO NOTHING",
                [*seqs, low, high, keep_ids_from],
            )
        conn.execute(f"DELETE FROM events WHERE {within}", [*seqs, low, high])
        return len(seqs)

    # -- status ------------------------------------------------------------------------

    def status(self) -> PurgeStatus:
        """Rows purged and the oldest kept, read now."""
        conn = self.db.connection()
        purged = dict.fromkeys(KINDS, 0)
        for kind, removed in conn.execute("SELECT kind, sum(removed) FROM purged GROUP BY kind"):
            purged[kind] = int(removed)
        oldest_event = None
        for site in self.sites():  # min by the (site, received_at) index, site by site
            (first,) = conn.execute(
                "SELECT min(received_at) FROM events WHERE site = ?", (site,)
            ).fetchone()
            if first is not None and (oldest_event is None or first < oldest_event):
                oldest_event = int(first)
        (oldest_reject,) = conn.execute("SELECT min(received_at) FROM rejects").fetchone()
        return PurgeStatus(
            purged, {"events": oldest_event, "rejects": oldest_reject and int(oldest_reject)}
        )


class Purging(BackgroundThread):
    """Purges in the background, at a quiet rate, while this process holds the lead (one
    process per database purges), when ``enabled``; and reads the status every few
    seconds, so that /healthz and /metrics never wait on the store for it."""

    thread_name = "clickthru-purger"

    def __init__(self, purger: Purger, every: float, enabled: bool = True) -> None:
        super().__init__()
        self.purger = purger
        self.every = every
        self.enabled = enabled
        self.leading = False
        self.last_purge: float | None = None
        self.last_error: str | None = None
        self.latest: PurgeStatus | None = None

    def _pause(self, took: float) -> bool:
        return not self.stopping.wait(max(0.02, took * QUIET))

    def stop(self) -> None:
        """Stops without waiting long for a reading a shared store that hangs holds up
        (the thread is a daemon, and stops once the store answers or the line is cut)."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)
            self._thread = None

    def run(self) -> None:
        lease: Lease | None = None
        try_lead = next_round = time.monotonic()
        try:
            while not self.stopping.is_set():
                if self.enabled and lease is None and time.monotonic() >= try_lead:
                    try:
                        lease = self.purger.db.lead("purger")
                    except Exception as error:  # the database is away: later
                        self.last_error = str(error)
                    self.leading = lease is not None
                    try_lead = time.monotonic() + RETRY_LEAD
                if lease is not None and time.monotonic() >= next_round:
                    self._round()
                    next_round = time.monotonic() + self.every
                try:
                    self.latest = self.purger.status()
                except Exception as error:  # the database is away: the last reading stays
                    log.debug("reading the retention status failed: %s", error)
                self.stopping.wait(STATUS_EVERY)
        finally:
            self.leading = False
            if lease is not None:
                lease.release()

    def _round(self) -> None:
        try:
            removed = self.purger.purge(pause=self._pause)
        except Exception as error:  # keep the collector going; the next round retries
            log.warning("purging failed: %s", error)
            self.last_error = str(error)
            return
        self.last_error = None
        self.last_purge = time.time()
        if any(removed.values()):
            said = ", ".join(f"{n} {k}" for k, n in removed.items() if n)
            log.info("purged %s", said)

    def status(self) -> dict[str, Any] | None:
        """The last reading (None before the first)."""
        if self.latest is None:
            return None
        found = self.latest.answer()
        found.update(
            purging_here=self.leading, last_purge=self.last_purge, last_error=self.last_error
        )
        return found
