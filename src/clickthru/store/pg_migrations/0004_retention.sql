-- Retention, as in SQLite's 0007_retention.sql. event_ids holds every stored id here; the
-- purge lets ids go by age, hence the index.
CREATE INDEX event_ids_received ON event_ids (received_at);

ALTER TABLE firsts ADD COLUMN received_at bigint NOT NULL DEFAULT 0;
UPDATE firsts SET received_at = (extract(epoch FROM now()) * 1000)::bigint;
CREATE INDEX firsts_received ON firsts (received_at);

CREATE TABLE purged (
    kind  text NOT NULL,
    site  text NOT NULL,
    cutoff bigint NOT NULL,
    removed bigint NOT NULL,
    PRIMARY KEY (kind, site)
);

CREATE TABLE erased_sites (
    name_hash text PRIMARY KEY,
    erased_at bigint NOT NULL
);

CREATE INDEX rejects_site_received ON rejects (site, received_at);
