"""The event sink: what a ``2xx`` promises. A batch is on disk, once, when ``write``
returns.

The acknowledging transaction holds the events (deduplicated by id), the rejects and a
note of each retry, nothing else: counting follows behind, in the aggregator. On SQLite,
batches waiting together share one transaction and its fsync (group commit). Spools ship
here with ``ship``: numbered shipments, so one sent again after a crash changes nothing.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol

from clickthru.clock import now_ms
from clickthru.store.database import Database, Groupable
from clickthru.store.rows import Batch, WriteResult, hash_site

ERASED = "SELECT name_hash FROM erased_sites"
NOTE_DUPLICATE = "INSERT INTO pending_duplicates (site, received_at) VALUES (?, ?)"
SHIPPED = "SELECT seq FROM forwarded WHERE collector = ?"
RECORD_SHIPPED = (
    "INSERT INTO forwarded (collector, seq, at) VALUES (?, ?, ?)"
    " ON CONFLICT (collector) DO UPDATE SET seq = excluded.seq, at = excluded.at"
)


class Sink(Protocol):
    """What a collector acknowledges with: this sink, or a spool's in front of it."""

    async def write(self, batch: Batch) -> WriteResult: ...
    async def check(self) -> None: ...


class EventSink:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def write(self, batch: Batch) -> WriteResult:
        """Commit the batch durably; resolves after the commit."""
        self.db.prepare(batch.events)
        store = partial(self._store, batch)
        together = Groupable(self._store_many, batch)
        return await self.db.write_async(store, events=len(batch.events), group=together)

    async def check(self) -> None:
        """Raise unless a durable write goes through right now (it takes the write lock and
        commits a real change, so a full disk shows here too)."""
        await self.db.write_async(_heartbeat)

    def ship(self, collector: str, number: int, batch: Batch) -> WriteResult:
        """Store shipment ``number`` of ``collector``'s spool: all of it or nothing, once.

        When this collector has shipped ``number`` or beyond already, nothing is done and
        the answer is ``WriteResult(0, 0)``: the spool may be trimmed all the same."""
        self.db.prepare(batch.events)
        return self.db.write(partial(self._ship, collector, number, batch))

    def shipped(self, collector: str) -> int | None:
        """How far ``collector``'s spool has been shipped here (None: never)."""
        row = self.db.connection().execute(SHIPPED, (collector,)).fetchone()
        return None if row is None else int(row[0])

    def _ship(self, collector: str, number: int, batch: Batch, conn: Any) -> WriteResult:
        self.db.take_turn(conn)
        row = conn.execute(SHIPPED, (collector,)).fetchone()
        if row is not None and row[0] >= number:
            return WriteResult(0, 0)  # committed before; the spool did not hear of it
        erased = {name_hash for (name_hash,) in conn.execute(ERASED)}
        if erased:  # what a spool acknowledged for a site erased since: dropped here
            batch = Batch(
                [e for e in batch.events if hash_site(e.site) not in erased],
                [r for r in batch.rejects if hash_site(r.site or "") not in erased],
                [r for r in batch.retries if hash_site(r.site) not in erased],
            )
        result = self._store(batch, conn)
        conn.execute(RECORD_SHIPPED, (collector, number, now_ms()))
        return result

    def _store(self, batch: Batch, conn: Any) -> WriteResult:
        return self._store_many(conn, [batch])[0]

    def _store_many(self, conn: Any, batches: list[Batch]) -> list[WriteResult]:
        """Batches waiting together: one insert for all their events; each learns its own
        result. The first of an id (in the order the batches came) is the one stored."""
        self.db.take_turn(conn)
        events = [event for batch in batches for event in batch.events]
        new = self.db.insert_events(conn, events) if events else set()
        results, rejects, retries = [], [], []
        for batch in batches:
            duplicates = 0
            for event in batch.events:
                if event.id in new:
                    new.discard(event.id)
                else:
                    duplicates += 1
                    retries.append((event.site, event.received_at))
            results.append(WriteResult(len(batch.events) - duplicates, duplicates))
            rejects += batch.rejects
            retries += batch.retries
        if rejects:
            self.db.insert_rejects(conn, rejects)
        if retries:
            conn.executemany(NOTE_DUPLICATE, retries)
        return results


def _heartbeat(conn: Any) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('heartbeat', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(now_ms()),),
    )
