-- Customer sites, their signing keys and the API key for server-to-server events.
CREATE TABLE sites (
    name         TEXT PRIMARY KEY,
    origins      TEXT NOT NULL,          -- JSON array of allowed page origins
    api_key_hash TEXT NOT NULL,          -- sha256 hex of the API key; the key itself is shown once
    created_at   INTEGER NOT NULL        -- unix ms
);

CREATE TABLE site_keys (
    site       TEXT NOT NULL REFERENCES sites(name),
    key_id     TEXT NOT NULL,
    secret     TEXT NOT NULL,            -- hex; needed in clear to verify HMACs
    created_at INTEGER NOT NULL,
    retired_at INTEGER,                  -- set when a second rotation retires it
    PRIMARY KEY (site, key_id)
);

-- One row per distinct event id: the unique key is what makes retries harmless.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,     -- arrival order, for tailing and forwarding
    id          TEXT NOT NULL UNIQUE,    -- client-made event id
    kind        TEXT NOT NULL,           -- click | view | serve
    site        TEXT NOT NULL,           -- from the verified token, as are the next six
    list_id     TEXT NOT NULL,
    item        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    placement   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,        -- token issue time, unix s
    client_ts   INTEGER,                 -- what the browser said, unix ms; not trusted
    received_at INTEGER NOT NULL,        -- unix ms
    page        TEXT,
    dest        TEXT,
    via         TEXT,                    -- beacon | fetch | img | ping | server
    origin      TEXT,
    bot         INTEGER NOT NULL,
    visitor     TEXT                     -- daily-rotating salted hash; never a raw IP
);
CREATE INDEX events_site_received ON events(site, received_at);

-- Nothing is dropped silently: every refused event is kept with its reason.
CREATE TABLE rejects (
    seq         INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT,
    site        TEXT,
    origin      TEXT,
    input       TEXT                     -- truncated copy of what was sent
);
CREATE INDEX rejects_received ON rejects(received_at);

-- Salts for visitor keys, one per UTC day; old ones are deleted so keys cannot be re-linked.
CREATE TABLE salts (
    day  TEXT PRIMARY KEY,
    salt BLOB NOT NULL
);
