-- The shared store: SQLite's schema (store/migrations) in PostgreSQL's types, so that the
-- same portable SQL (rollups, reports, access) runs on both. Times are unix ms in bigint;
-- flags are integer 0/1, which the reports sum; counters are integer, so that sum() of
-- them is a bigint (a Python int), not a numeric (a Decimal). Applied by postgres.migrate.

-- Customer sites, their signing keys and the API key for server-to-server events.
CREATE TABLE sites (
    name         text PRIMARY KEY,
    origins      text NOT NULL,              -- JSON array of allowed page origins
    api_key_hash text NOT NULL,              -- sha256 hex of the API key, shown once
    created_at   bigint NOT NULL
);

CREATE TABLE site_keys (
    site       text NOT NULL REFERENCES sites (name),
    key_id     text NOT NULL,
    secret     text NOT NULL,                -- hex; needed in clear to verify HMACs
    created_at bigint NOT NULL,
    retired_at bigint,                       -- set when a second rotation retires it
    PRIMARY KEY (site, key_id)
);

-- Events, one partition per UTC day (events_20261101), made by the writer as days come, so
-- that an old day can be detached or dropped whole. DEFAULT catches an event of a day with
-- no partition (one dropped by hand, say); it should stay empty.
CREATE TABLE events (
    seq         bigint GENERATED ALWAYS AS IDENTITY,  -- commit order: writers take turns
    id          text NOT NULL,               -- client-made event id, unique by event_ids
    kind        text NOT NULL,               -- click | view | serve
    site        text NOT NULL,               -- from the verified token, as are the next six
    list_id     text NOT NULL,
    item        text NOT NULL,
    position    bigint NOT NULL,             -- bigint: whatever SQLite took, this takes
    placement   text NOT NULL,
    key_id      text NOT NULL,
    issued_at   bigint NOT NULL,             -- token issue time, unix s
    client_ts   bigint,                      -- what the browser said; not trusted
    received_at bigint NOT NULL,
    page        text,
    dest        text,
    via         text,                        -- beacon | fetch | img | ping | server
    origin      text,
    bot         integer NOT NULL,
    visitor     text                         -- daily-rotating salted hash; never a raw IP
) PARTITION BY RANGE (received_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_site_received ON events (site, received_at);

-- One row per event id stored: the unique key that makes every retry harmless. It cannot be
-- on events, where a unique key must include the partition's day; received_at says which
-- partition holds the event, and lets old ids go with their day.
CREATE TABLE event_ids (
    id          text PRIMARY KEY,
    received_at bigint NOT NULL
);

-- Nothing is dropped silently: every refused event is kept with its reason.
CREATE TABLE rejects (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at bigint NOT NULL,
    reason      text NOT NULL,
    detail      text,
    site        text,
    origin      text,
    input       text                         -- truncated copy of what was sent
);
CREATE INDEX rejects_received ON rejects (received_at);

-- Salts for visitor keys, one per UTC day, shared by every collector; old ones are deleted.
CREATE TABLE salts (
    day  text PRIMARY KEY,
    salt bytea NOT NULL
);

-- How far each collector's spool has been shipped here, written in the shipment's own
-- transaction: a shipment retried after its commit (the spool not trimmed yet) is skipped.
CREATE TABLE forwarded (
    collector text PRIMARY KEY,              -- the spool's name, as the forwarder gives it
    seq       bigint NOT NULL,               -- the highest spool seq committed here
    at        bigint NOT NULL                -- when, unix ms
);

-- Rollups: the counters reports read, as in SQLite's 0002_rollups.sql (see there).
CREATE TABLE rollup_hourly (
    site          text NOT NULL,
    hour          bigint NOT NULL,           -- received_at / 3,600,000
    placement     text NOT NULL,
    bot           integer NOT NULL,
    clicks        integer NOT NULL,
    views         integer NOT NULL,
    serves        integer NOT NULL,
    unique_clicks integer NOT NULL,
    unique_views  integer NOT NULL,
    PRIMARY KEY (site, hour, placement, bot)
);

CREATE TABLE rollup_items (
    site          text NOT NULL,
    day           bigint NOT NULL,           -- received_at / 86,400,000
    placement     text NOT NULL,
    item          text NOT NULL,
    bot           integer NOT NULL,
    clicks        integer NOT NULL,
    views         integer NOT NULL,
    serves        integer NOT NULL,
    unique_clicks integer NOT NULL,
    unique_views  integer NOT NULL,
    PRIMARY KEY (site, day, placement, item, bot)
);

CREATE TABLE rollup_positions (
    site          text NOT NULL,
    day           bigint NOT NULL,
    placement     text NOT NULL,
    position      bigint NOT NULL,
    bot           integer NOT NULL,
    clicks        integer NOT NULL,
    views         integer NOT NULL,
    serves        integer NOT NULL,
    unique_clicks integer NOT NULL,
    unique_views  integer NOT NULL,
    PRIMARY KEY (site, day, placement, position, bot)
);

-- The (list, item) pairs already clicked or viewed: what makes a click or view "unique".
CREATE TABLE firsts (
    site    text NOT NULL,
    list_id text NOT NULL,
    item    text NOT NULL,
    kind    text NOT NULL,
    PRIMARY KEY (site, list_id, item, kind)
);

-- Refused events per reason; site '' when the request never got as far as a token.
CREATE TABLE reject_counts (
    site   text NOT NULL,
    hour   bigint NOT NULL,
    reason text NOT NULL,
    count  integer NOT NULL,
    PRIMARY KEY (site, hour, reason)
);

-- Events sent again and stored once; a rebuild leaves this alone.
CREATE TABLE duplicate_counts (
    site  text NOT NULL,
    hour  bigint NOT NULL,
    count integer NOT NULL,
    PRIMARY KEY (site, hour)
);

-- Who may read reports, as in SQLite's 0003_access.sql. "user" is quoted: in PostgreSQL a
-- bare user is the current_user function, not a column.
CREATE TABLE users (
    name          text PRIMARY KEY,
    password_hash text NOT NULL,             -- scrypt, with its parameters and salt
    operator      integer NOT NULL,          -- 1: every site; 0: the sites in user_sites
    created_at    bigint NOT NULL
);

CREATE TABLE user_sites (
    "user" text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    site   text NOT NULL REFERENCES sites (name),
    PRIMARY KEY ("user", site)
);

CREATE TABLE sessions (
    token_hash text PRIMARY KEY,
    "user"     text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf       text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);

CREATE TABLE read_keys (
    key_hash   text PRIMARY KEY,
    "user"     text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created_at bigint NOT NULL
);
