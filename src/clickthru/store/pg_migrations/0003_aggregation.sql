-- Counting follows the events (see SQLite's 0006_aggregation.sql): shipments store events
-- and rejects only; one aggregator at a time (an advisory lock) adds them to the rollups
-- in its own transactions, with the last seq it counted. Shipments take turns, so seq is
-- handed out in commit order and a follower of seq never skips a row committed late.
CREATE TABLE aggregation (
    name text PRIMARY KEY,
    seq  bigint NOT NULL,
    at   bigint NOT NULL
);
INSERT INTO aggregation (name, seq, at) SELECT 'events', coalesce(max(seq), 0), 0 FROM events;
INSERT INTO aggregation (name, seq, at) SELECT 'rejects', coalesce(max(seq), 0), 0 FROM rejects;

CREATE TABLE pending_duplicates (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site        text NOT NULL,
    received_at bigint NOT NULL
);

-- The aggregator reads events by seq.
CREATE INDEX events_seq ON events (seq);

-- What a store knows about itself (as in SQLite): the health check's heartbeat.
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
