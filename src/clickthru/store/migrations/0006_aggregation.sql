-- Counting follows the events instead of being done in the transaction that acknowledges
-- them. The aggregator adds events to the rollups in its own transactions and records,
-- in the same transaction, the last seq it counted: a crash counts nothing twice and
-- skips nothing. Until now the counters were kept at ingest, so everything stored so far
-- is counted already.
CREATE TABLE aggregation (
    name TEXT PRIMARY KEY,                 -- events | rejects
    seq  INTEGER NOT NULL,                 -- the last seq counted
    at   INTEGER NOT NULL                  -- when, unix ms
);
INSERT INTO aggregation (name, seq, at) SELECT 'events', coalesce(max(seq), 0), 0 FROM events;
INSERT INTO aggregation (name, seq, at) SELECT 'rejects', coalesce(max(seq), 0), 0 FROM rejects;

-- A retry leaves no event row behind; the sink notes it here, and the aggregator moves it
-- into duplicate_counts and deletes it.
CREATE TABLE pending_duplicates (
    seq         INTEGER PRIMARY KEY,
    site        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
