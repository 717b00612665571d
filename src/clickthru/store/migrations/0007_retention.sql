-- Retention. Raw rows are purged once past their retention (store/retention.py); the
-- counters (rollups) stay. An event id must still be known after its raw row is gone, for
-- as long as the event could be sent again: the ids of events purged sooner than that are
-- kept here, alone (events.id keeps the others unique).
CREATE TABLE event_ids (
    id          TEXT PRIMARY KEY,
    received_at INTEGER NOT NULL             -- unix ms; the id goes once past its window
) WITHOUT ROWID;
CREATE INDEX event_ids_received ON event_ids(received_at);

-- When a (list, item) pair was first seen, so that pairs no event can come for any more
-- are forgotten. Pairs known now count from the upgrade.
ALTER TABLE firsts ADD COLUMN received_at INTEGER NOT NULL DEFAULT 0;
UPDATE firsts SET received_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
CREATE INDEX firsts_received ON firsts(received_at);

-- What was purged, per kind and site ('' for kinds without one): everything received
-- before `cutoff` is gone; `removed` is how many rows went in all.
CREATE TABLE purged (
    kind  TEXT NOT NULL,                     -- events | rejects | event_ids | firsts | sessions
    site  TEXT NOT NULL,
    cutoff INTEGER NOT NULL,
    removed INTEGER NOT NULL,
    PRIMARY KEY (kind, site)
);

-- Sites erased, by the SHA-256 of their name (never the name): their events still in a
-- collector's spool are dropped when they are shipped.
CREATE TABLE erased_sites (
    name_hash TEXT PRIMARY KEY,
    erased_at INTEGER NOT NULL
);

-- Purging walks rejects by site and time.
CREATE INDEX rejects_site_received ON rejects(site, received_at);
