-- What a store knows about itself; a collector's spool keeps its own id here, so the
-- shared store can tell which of its events it already has after a restart.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
