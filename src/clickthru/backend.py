"""The one place that decides SQLite or PostgreSQL, and assembles the store's roles over
it. Nothing else in clickthru asks which database it has.

- A SQLite path (``clickthru.db``, ``sqlite:///path.db``): everything in one file.
- A PostgreSQL URL, for administration, reports and tools: the shared store itself.
- A PostgreSQL URL with a spool: a collector. It acknowledges events into its own SQLite
  spool and forwards them; it reads sites and salts from the spool's copy, and reports,
  users and administration from PostgreSQL.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from clickthru.access import Access
from clickthru.config import Retention
from clickthru.reports.sql import Reports
from clickthru.store.aggregator import Aggregator, Follower, Lag
from clickthru.store.database import CommitObserver, Database, FailureObserver
from clickthru.store.retention import Purger, Purging, Rules
from clickthru.store.sink import EventSink, Sink
from clickthru.store.sites import SiteAdmin

log = logging.getLogger(__name__)

LAG_WAIT = 1.0  # seconds /healthz waits for the lag; a shared store that is away must not stall it


class Background(Protocol):
    """Work that runs beside the requests for the store's life (the spool's forwarder)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def sync(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


@dataclass
class Store:
    sink: Sink
    lookups: SiteAdmin  # sites and salts as requests read them
    admin: SiteAdmin  # sites and keys as operators change them
    reports: Reports
    access: Access
    aggregator: Aggregator
    sink_db: Database  # the database that acknowledges (a spool, with a shared store)
    databases: tuple[Database, ...]
    purger: Purger
    spool: Background | None = None
    follower: Follower | None = field(default=None, init=False)
    purging: Purging | None = field(default=None, init=False)
    _lag: LagProbe = field(init=False)

    def __post_init__(self) -> None:
        self._lag = LagProbe(self.aggregator)

    def start(
        self,
        *,
        aggregate: bool = True,
        on_commit: CommitObserver | None = None,
        on_failure: FailureObserver | None = None,
        purge: bool = False,
    ) -> None:
        """Start what runs beside the requests: the spool's forwarder, counting
        (``aggregate``; one process per database counts, the others stand by), reading
        the retention status, and purging (``purge``; one process per database)."""
        self.sink_db.health.commit_observer = on_commit
        self.sink_db.health.failure_observer = on_failure
        if self.spool is not None:
            self.spool.start()
        if aggregate:
            self.follower = Follower(self.aggregator)
            self.follower.start()
        every = self.purger.rules.retention.purge_every
        self.purging = Purging(self.purger, every, enabled=purge)
        self.purging.start()

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        if self.purging is not None:
            self.purging.stop()
            self.purging = None
        if self.spool is not None:
            self.spool.stop()
        self._lag.close()
        for db in self.databases:
            db.close()

    def maintain(self) -> None:
        """Every few seconds, off the event loop: a spool copies the shared store's sites
        and salt of the day."""
        if self.spool is not None:
            self.spool.sync()

    def status(self) -> dict[str, Any]:
        """What /healthz and /metrics tell: write health, free space, the spool, the lag."""
        health = self.sink_db.health
        found: dict[str, Any] = {
            "write_failing": health.failing,
            "write_failures": dict(health.failures),
            "free_bytes": self.sink_db.free_bytes(),
        }
        if self.spool is not None:
            found["spool"] = self.spool.status()
        lag, fresh = self._lag.read()
        found["aggregation"] = (
            {
                "lag_events": lag.events,
                "lag_seconds": lag.seconds,
                "counted_until": lag.counted_until,
                "fresh": fresh,  # false: the shared store did not answer; the last reading
                "counting_here": bool(self.follower and self.follower.leading),
            }
            if lag is not None
            else None
        )
        found["retention"] = self._retention()
        return found

    def _retention(self) -> dict[str, Any] | None:
        """Rows purged and the oldest kept, as last read beside the requests (a store that
        does not answer must not hold up /healthz)."""
        return self.purging.status() if self.purging is not None else None


class LagProbe:
    """Reads the aggregation lag on a thread of its own, one reading at a time, and waits
    at most LAG_WAIT for it: when the shared store hangs, /healthz answers with the last
    reading instead of hanging too."""

    def __init__(self, aggregator: Aggregator) -> None:
        self._aggregator = aggregator
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="clickthru-lag")
        self._lock = threading.Lock()
        self._reading: concurrent.futures.Future[Lag] | None = None
        self._last: Lag | None = None

    def read(self) -> tuple[Lag | None, bool]:
        """The lag, and whether it was read just now."""
        with self._lock:
            if self._reading is None or self._reading.done():
                self._reading = self._pool.submit(self._aggregator.lag)
            reading = self._reading
        try:
            self._last = reading.result(LAG_WAIT)
        except concurrent.futures.TimeoutError:
            return self._last, False
        except Exception as error:  # the shared store is away: say so, do not fail
            log.warning("reading the aggregation lag failed: %s", error)
            return self._last, False
        return self._last, True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        # A store may be used again after close(); threads start only when a reading does.
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="clickthru-lag")
        self._reading = None


def _over(
    db: Database,
    *,
    sink: Sink,
    sink_db: Database,
    lookups: SiteAdmin | None = None,
    spool: Background | None = None,
    retention: Retention | None = None,
) -> Store:
    """The roles over the database reports and administration use (``db``), with the
    sink (and the sites requests read) of the one that acknowledges."""
    admin = SiteAdmin(db)
    return Store(
        sink=sink,
        lookups=lookups or admin,
        admin=admin,
        reports=Reports(db),
        access=Access(db),
        aggregator=Aggregator(db),
        purger=Purger(db, Rules(retention or Retention())),
        sink_db=sink_db,
        databases=(sink_db, db) if sink_db is not db else (db,),
        spool=spool,
    )


def open_store(
    url: str,
    *,
    spool: str | None = None,
    collector_name: str = "",
    spool_max_events: int = 5_000_000,
    commit_max_rows: int = 5000,
    retention: Retention | None = None,
) -> Store:
    """Open a store from a SQLite path or URL, or a PostgreSQL URL (with ``spool``: a
    collector's spool in front of it)."""
    if not is_postgres(url):
        from clickthru.store.sqlite import SQLiteDatabase

        # sqlite:///abs/path.db -> /abs/path.db; sqlite://rel.db -> rel.db
        db = SQLiteDatabase(url.removeprefix("sqlite://"), max_group_events=commit_max_rows)
        return _over(db, sink=EventSink(db), sink_db=db, retention=retention)
    from clickthru.store.postgres import PostgresDatabase

    central = PostgresDatabase(url)
    if spool is None:
        return _over(central, sink=EventSink(central), sink_db=central, retention=retention)
    import socket

    from clickthru.store.spool import Spool
    from clickthru.store.sqlite import SQLiteDatabase

    spool_db = SQLiteDatabase(spool, max_group_events=commit_max_rows)
    spooled = Spool(
        spool_db,
        central,
        name=collector_name or socket.gethostname(),
        max_backlog=spool_max_events,
    )
    return _over(
        central,
        sink=spooled.sink,
        sink_db=spool_db,
        lookups=spooled.copy,
        spool=spooled,
        retention=retention,
    )
